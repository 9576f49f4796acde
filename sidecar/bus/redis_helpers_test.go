package bus_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldhq/herald/sidecar/bus"
	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/sidecar/store"
	"github.com/heraldhq/herald/testing/rediskit"
)

// waitTimeout bounds every wait for a condition: generous, for a loaded
// 2-core CI machine running the race detector.
const waitTimeout = 60 * time.Second

// recorder keeps every event a store hands to OnCommit, in order.
type recorder struct {
	mu     sync.Mutex
	events []notification.Event
}

func (r *recorder) onCommit(evs []notification.Event) {
	r.mu.Lock()
	r.events = append(r.events, evs...)
	r.mu.Unlock()
}

func (r *recorder) all() []notification.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notification.Event(nil), r.events...)
}

// created returns the IDs of the created events of user, in event order.
func (r *recorder) created(user string) []string {
	var ids []string
	for _, ev := range r.all() {
		if ev.UserID == user && ev.Kind == notification.KindCreated {
			ids = append(ids, ev.Notification.ID)
		}
	}
	return ids
}

// ofKind returns the events of user of one kind.
func (r *recorder) ofKind(user string, k notification.Kind) []notification.Event {
	var out []notification.Event
	for _, ev := range r.all() {
		if ev.UserID == user && ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// logSink collects a node's logs; the test fails on an error-level line it
// did not allow.
type logSink struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	allowed []string
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) allow(substr string) {
	s.mu.Lock()
	s.allowed = append(s.allowed, substr)
	s.mu.Unlock()
}

func (s *logSink) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.buf.String()), "\n")
}

// contains reports whether any log line contains substr.
func (s *logSink) contains(substr string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Contains(s.buf.String(), substr)
}

// unexpectedErrors returns the error lines that no allowed substring matches.
func (s *logSink) unexpectedErrors() []string {
	var out []string
	s.mu.Lock()
	allowed := append([]string(nil), s.allowed...)
	s.mu.Unlock()
	for _, l := range s.lines() {
		if !strings.Contains(l, "[ERROR]") {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || strings.Contains(l, a)
		}
		if !ok {
			out = append(out, l)
		}
	}
	return out
}

// node is one replica in a test: a real store file and a Redis bus.
type node struct {
	t     testing.TB
	id    string
	srv   *rediskit.Server
	store *store.Store
	rec   *recorder
	logs  *logSink
	log   hclog.Logger
	mod   func(*bus.RedisOptions)

	counts sync.Map // user ID → int, this node's "sockets"
	tap    atomic.Pointer[func([]notification.Event)]

	mu     sync.Mutex
	bus    *bus.Redis
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	cur    atomic.Pointer[bus.Redis]
}

// newNode opens a store and starts a bus on srv. mod may change the bus options.
func newNode(t testing.TB, srv *rediskit.Server, id string, mod func(*bus.RedisOptions)) *node {
	t.Helper()
	n := &node{t: t, id: id, srv: srv, rec: &recorder{}, logs: &logSink{}, mod: mod}
	n.log = hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Debug, Output: n.logs})
	st, err := store.Open(store.Options{
		Path:       filepath.Join(t.TempDir(), "herald.db"),
		Replicated: true,
		OnCommit: func(evs []notification.Event) {
			n.rec.onCommit(evs)
			if f := n.tap.Load(); f != nil {
				(*f)(evs)
			}
			if b := n.cur.Load(); b != nil {
				b.Kick()
			}
		},
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	n.store = st
	if err := st.SetNodeID(context.Background(), id); err != nil {
		t.Fatalf("set node id: %v", err)
	}
	t.Cleanup(func() {
		n.stopBus()
		if err := st.Close(); err != nil {
			t.Errorf("%s: close store: %v", id, err)
		}
		if bad := n.logs.unexpectedErrors(); len(bad) > 0 {
			t.Errorf("%s: unexpected error logs:\n%s", id, strings.Join(bad, "\n"))
		}
		if t.Failed() {
			lines := n.logs.lines()
			if len(lines) > 60 {
				lines = lines[len(lines)-60:]
			}
			t.Logf("%s: last logs:\n%s", id, strings.Join(lines, "\n"))
		}
	})
	n.startBus()
	return n
}

// testOptions are short intervals so that tests run fast.
func (n *node) options() bus.RedisOptions {
	o := bus.RedisOptions{
		URL:              n.srv.URL(),
		Store:            n.store,
		Logger:           n.log,
		LocalCount:       n.count,
		PollInterval:     500 * time.Millisecond,
		HealthInterval:   300 * time.Millisecond,
		TailBlock:        200 * time.Millisecond,
		PresenceInterval: 500 * time.Millisecond,
		BackoffMin:       20 * time.Millisecond,
		BackoffMax:       300 * time.Millisecond,
	}
	if n.mod != nil {
		n.mod(&o)
	}
	return o
}

// startBus starts a new bus on the node's store, with a fresh registry.
func (n *node) startBus() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.bus != nil {
		n.t.Fatalf("%s: bus already running", n.id)
	}
	reg := prometheus.NewRegistry()
	o := n.options()
	o.Registerer = reg
	b, err := bus.NewRedis(o)
	if err != nil {
		n.t.Fatalf("%s: new bus: %v", n.id, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	n.bus, n.reg, n.cancel, n.done = b, reg, cancel, done
	n.cur.Store(b)
	// Resume the watches of the "sockets" this node holds.
	n.counts.Range(func(k, v any) bool {
		if v.(int) > 0 {
			b.Watch(k.(string))
		}
		return true
	})
}

// stopBus cancels the bus and waits for Run to return.
func (n *node) stopBus() {
	n.t.Helper()
	n.mu.Lock()
	b, cancel, done := n.bus, n.cancel, n.done
	n.bus = nil
	n.mu.Unlock()
	if b == nil {
		return
	}
	n.cur.Store(nil)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			n.t.Errorf("%s: Run: %v", n.id, err)
		}
	case <-time.After(waitTimeout):
		n.t.Errorf("%s: Run did not return within %v of cancel", n.id, waitTimeout)
	}
}

// logged reports whether the node logged a line containing substr.
func (n *node) logged(substr string) bool { return n.logs.contains(substr) }

func (n *node) b() *bus.Redis {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.bus
}

func (n *node) count(user string) int {
	v, ok := n.counts.Load(user)
	if !ok {
		return 0
	}
	return v.(int)
}

// open simulates a socket of user opening on the node.
func (n *node) open(user string) {
	c := n.count(user) + 1
	n.counts.Store(user, c)
	if c == 1 {
		n.b().Watch(user)
	}
}

// close simulates a socket of user closing on the node.
func (n *node) close(user string) {
	c := n.count(user) - 1
	n.counts.Store(user, c)
	if c == 0 {
		n.b().Unwatch(user)
	}
}

// metric returns the value of a counter or gauge in the node's current
// registry, summed over the series whose labels include all of labels.
func (n *node) metric(name string, labels ...string) float64 {
	n.t.Helper()
	n.mu.Lock()
	reg := n.reg
	n.mu.Unlock()
	mfs, err := reg.Gather()
	if err != nil {
		n.t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabels(m, labels) {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, lp := range m.GetLabel() {
			found = found || (lp.GetName() == kv[i] && lp.GetValue() == kv[i+1])
		}
		if !found {
			return false
		}
	}
	return true
}

// create creates n notifications for user on the node, one commit each,
// and returns their IDs in creation order.
func (n *node) create(user string, count int) []string {
	n.t.Helper()
	ids := make([]string, 0, count)
	for i := range count {
		got, err := n.store.Create(context.Background(), []notification.Draft{{
			UserID: user, Type: "task.assigned", Title: fmt.Sprintf("%s #%d from %s", user, i, n.id),
		}})
		if err != nil {
			n.t.Fatalf("%s: create: %v", n.id, err)
		}
		ids = append(ids, got[0].ID)
	}
	return ids
}

// createBatch creates count notifications for user in commits of 100.
func (n *node) createBatch(user string, count int) []string {
	n.t.Helper()
	var ids []string
	for len(ids) < count {
		k := min(100, count-len(ids))
		drafts := make([]notification.Draft, k)
		for i := range drafts {
			drafts[i] = notification.Draft{UserID: user, Type: "t", Title: fmt.Sprintf("#%d", len(ids)+i)}
		}
		got, err := n.store.Create(context.Background(), drafts)
		if err != nil {
			n.t.Fatalf("%s: create: %v", n.id, err)
		}
		for _, g := range got {
			ids = append(ids, g.ID)
		}
	}
	return ids
}

func (n *node) unread(user string) int {
	n.t.Helper()
	c, err := n.store.UnreadCount(user)
	if err != nil {
		n.t.Fatalf("%s: unread count: %v", n.id, err)
	}
	return c
}

func (n *node) outboxDepth() int {
	n.t.Helper()
	d, err := n.store.OutboxDepth()
	if err != nil {
		n.t.Fatalf("%s: outbox depth: %v", n.id, err)
	}
	return d
}

// waitReady waits until the node's bus reports ready.
func (n *node) waitReady() {
	n.t.Helper()
	waitFor(n.t, n.id+" ready", func() error { return n.b().Ready() })
}

// waitFor polls cond until it returns nil, failing the test with cond's
// last error after waitTimeout.
func waitFor(t testing.TB, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	delay := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(delay) // polling pace, not synchronisation
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// exactlyOnce checks that ids each occur once in got, and nothing else does.
func exactlyOnce(got, ids []string) error {
	seen := make(map[string]int, len(got))
	for _, id := range got {
		seen[id]++
	}
	missing := 0
	for _, id := range ids {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			return fmt.Errorf("id %s delivered %d times", id, seen[id])
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d ids missing (%d events)", missing, len(ids), len(got))
	}
	if len(got) != len(ids) {
		return fmt.Errorf("%d events for %d ids", len(got), len(ids))
	}
	return nil
}

// errIf returns an error made of format when bad is true.
func errIf(bad bool, format string, args ...any) error {
	if bad {
		return fmt.Errorf(format, args...)
	}
	return nil
}

var errNotYet = errors.New("not yet")
