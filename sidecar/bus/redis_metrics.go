package bus

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/sidecar/store"
)

// Results of herald_bare_messages_total.
const (
	bareAccepted    = "accepted"
	bareInvalidUTF8 = "invalid_utf8"
	bareInvalidJSON = "invalid_json"
	bareInvalid     = "invalid"
	bareError       = "error"
)

// Results of herald_remote_changes_total.
const (
	remoteApplied   = "applied"
	remoteUnchanged = "unchanged"
	// remoteOwn: this replica's own echo, already in its store (normal).
	remoteOwn = "own"
	// remoteOwnApplied: a change bearing this replica's node ID that its
	// store lacked, so it changed state here: the data directory was
	// replaced, or two replicas share --node-id. Logged at warn.
	remoteOwnApplied = "own_applied"
	remoteInvalid    = "invalid"
	remoteError      = "error"
)

// redisMetrics are the bus's Prometheus metrics.
type redisMetrics struct {
	redisUp    prometheus.Gauge
	streamLag  prometheus.Gauge
	gaps       prometheus.Counter
	bare       *prometheus.CounterVec
	remote     *prometheus.CounterVec
	shipped    prometheus.Counter
	shipErrors prometheus.Counter
	reconnects prometheus.Counter
	outbox     prometheus.Collector
}

func newRedisMetrics(reg prometheus.Registerer, st *store.Store) (*redisMetrics, error) {
	m := &redisMetrics{
		redisUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_redis_up",
			Help: "1 while Redis answers PING, else 0.",
		}),
		streamLag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_stream_lag",
			Help: "Seconds the catch-up is behind the newest stream entry; 0 at the end.",
		}),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_stream_gaps_total",
			Help: "Times the stream cursor had fallen out of the retention window.",
		}),
		bare: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_bare_messages_total",
			Help: "Bare notification messages received on the live channels, by result.",
		}, []string{"result"}),
		remote: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_remote_changes_total",
			Help: "Changes received from Redis, by path (live, stream) and result; " +
				"own is this replica's echo, own_applied a change bearing its node id that it lacked.",
		}, []string{"path", "result"}),
		shipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_outbox_shipped_total",
			Help: "Outbox records shipped to Redis.",
		}),
		shipErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_outbox_ship_errors_total",
			Help: "Failed attempts to ship outbox records to Redis.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_live_reconnects_total",
			Help: "Times the live Pub/Sub subscription came back after a loss.",
		}),
		outbox: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "herald_outbox_depth",
			Help: "Local changes waiting to be shipped to Redis.",
		}, func() float64 {
			n, err := st.OutboxDepth()
			if err != nil {
				return 0
			}
			return float64(n)
		}),
	}
	results := []string{bareAccepted, bareInvalidUTF8, bareInvalidJSON, bareInvalid, bareError}
	for _, r := range results {
		m.bare.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.redisUp, m.streamLag, m.gaps, m.bare, m.remote,
		m.shipped, m.shipErrors, m.reconnects, m.outbox} {
		errs = append(errs, reg.Register(c))
	}
	return m, errors.Join(errs...)
}
