package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func counterValue(tb testing.TB, c prometheus.Counter) float64 {
	tb.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		tb.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestNewRegistersHeraldNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Connections.Inc()
	m.Evictions.WithLabelValues(EvictHeartbeat).Inc()
	m.Delivery.Observe(0.01)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "herald_") {
			t.Errorf("metric %q lacks the herald_ prefix", mf.GetName())
		}
		names[mf.GetName()] = true
	}
	for _, want := range []string{"herald_connections", "herald_connects_total", "herald_rejects_total",
		"herald_evictions_total", "herald_frames_in_total", "herald_frames_out_total",
		"herald_delivery_seconds", "herald_unread_sync_total"} {
		if !names[want] {
			t.Errorf("missing %s", want)
		}
	}
	// A second New on the same registry reuses the collectors.
	m2 := New(reg)
	m2.Evictions.WithLabelValues(EvictHeartbeat).Inc()
	if got := counterValue(t, m.Evictions.WithLabelValues(EvictHeartbeat)); got != 2 {
		t.Fatalf("shared eviction counter = %v, want 2", got)
	}
	_ = New(nil) // unregistered collectors work too
}
