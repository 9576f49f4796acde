package gateway

import (
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/heraldhq/herald/sidecar/notification"
)

// countingClient counts the data frames it receives and nothing else, so
// that the benchmark measures the server, not a recording client.
type countingClient struct {
	gws.BuiltinEventHandler
	frames atomic.Int64
}

func (c *countingClient) OnMessage(_ *gws.Conn, m *gws.Message) {
	m.Close()
	c.frames.Add(1)
}

func (c *countingClient) OnPing(s *gws.Conn, p []byte) { _ = s.WritePong(p) }

// wait polls until the client counted n frames, failing after waitTimeout.
func (c *countingClient) wait(tb testing.TB, n int64) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for c.frames.Load() < n {
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d frames after %s", c.frames.Load(), n, waitTimeout)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

func dialCounting(tb testing.TB, e *env, user string) *countingClient {
	tb.Helper()
	cc := &countingClient{}
	u := e.url + "?token=" + url.QueryEscape(e.token(user))
	conn, _, err := gws.NewClient(cc, &gws.ClientOption{Addr: u, Logger: nopLog{}})
	if err != nil {
		tb.Fatalf("dial: %v", err)
	}
	go conn.ReadLoop()
	tb.Cleanup(func() { _ = conn.NetConn().Close() })
	return cc
}

type nopLog struct{}

func (nopLog) Error(...any) {}

// BenchmarkFanout pushes created events for one user with N sockets
// through OnCommit, each event's frame encoded once, and waits until every
// socket received every frame. It reports frames written per second.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("sockets=%d", n), func(b *testing.B) {
			e := newEnv(b, Options{MaxConnsPerUser: n, WriteQueueFrames: 1 << 20, WriteQueueBytes: 1 << 30,
				Heartbeat: time.Minute})
			clients := make([]*countingClient, n)
			for i := range clients {
				clients[i] = dialCounting(b, e, "fan")
			}
			for _, c := range clients { // the unread_sync
				c.wait(b, 1)
			}
			n0 := notification.Notification{ID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", UserID: "fan", Type: "task.assigned",
				Title: "Task 17 assigned to you", Body: strings.Repeat("b", 200), Link: "/tasks/17",
				CreatedAt: time.Now()}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				e.gw.OnCommit([]notification.Event{{UserID: "fan", Seq: uint64(i + 1),
					Kind: notification.KindCreated, Notification: &n0, UnreadCount: i + 1}})
			}
			for _, c := range clients {
				c.wait(b, int64(b.N+1))
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "frames/s")
		})
	}
}

// BenchmarkEncodeEvent is the per-event encoding cost, paid once per event
// whatever the number of sockets.
func BenchmarkEncodeEvent(b *testing.B) {
	n := notification.Notification{ID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", UserID: "42", Type: "task.assigned",
		Title: "Task 17 assigned to you", Body: strings.Repeat("b", 200), Link: "/tasks/17",
		CreatedAt: time.Now()}
	ev := notification.Event{UserID: "42", Seq: 7, Kind: notification.KindCreated, Notification: &n, UnreadCount: 3}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := encodeEvent(&ev); err != nil {
			b.Fatal(err)
		}
	}
}
