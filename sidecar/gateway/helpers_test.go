package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldhq/herald/sidecar/auth"
	"github.com/heraldhq/herald/sidecar/metrics"
	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/sidecar/store"
	"github.com/heraldhq/herald/testing/wsclient"
)

// waitTimeout is the generous deadline of every wait in these tests.
const waitTimeout = 20 * time.Second

var testSecret = []byte("gateway-test-secret-0123456789abcdef")

// logBuffer collects log output from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// size returns the memory the buffer holds.
func (b *logBuffer) size() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return uint64(b.buf.Cap())
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// recordingInterest records Watch and Unwatch calls in order.
type recordingInterest struct {
	mu    sync.Mutex
	calls []string
}

func (r *recordingInterest) Watch(u string)   { r.add("watch " + u) }
func (r *recordingInterest) Unwatch(u string) { r.add("unwatch " + u) }
func (r *recordingInterest) add(s string) {
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}

func (r *recordingInterest) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// env is a gateway on a real store file, served by a real HTTP server.
type env struct {
	t        testing.TB
	st       *store.Store
	gw       *Gateway
	srv      *httptest.Server
	url      string
	verifier *auth.Verifier
	m        *metrics.Metrics
	reg      *prometheus.Registry
	interest *recordingInterest
	logs     *logBuffer
	// allowErrors lets error-level log lines pass the end-of-test check.
	allowErrors atomic.Bool
	shutOnce    sync.Once
}

// newEnv starts a store, a gateway with opts (Logger, Metrics are set here)
// and an HTTP server, all stopped at the end of the test.
func newEnv(t testing.TB, opts Options) *env {
	t.Helper()
	return newEnvLeeway(t, opts, auth.DefaultLeeway)
}

// newEnvLeeway is newEnv with the verifier's leeway chosen.
func newEnvLeeway(t testing.TB, opts Options, leeway time.Duration) *env {
	t.Helper()
	return newEnvWith(t, opts, leeway, nil)
}

// newEnvWith is newEnv with the verifier's leeway chosen and, when wrap is
// not nil, the gateway given wrap(the real store) as its Store.
func newEnvWith(t testing.TB, opts Options, leeway time.Duration, wrap func(*store.Store) Store) *env {
	t.Helper()
	e := &env{t: t, interest: &recordingInterest{}, logs: &logBuffer{}}
	var gwp atomic.Pointer[Gateway]
	st, err := store.Open(store.Options{
		Path: filepath.Join(t.TempDir(), "herald.db"),
		OnCommit: func(evs []notification.Event) {
			if g := gwp.Load(); g != nil {
				g.OnCommit(evs)
			}
		},
	})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	e.st = st
	e.reg = prometheus.NewRegistry()
	e.m = metrics.New(e.reg)
	opts.Metrics = e.m
	logger := hclog.New(&hclog.LoggerOptions{Name: "gateway", Output: e.logs, Level: hclog.Trace})
	opts.Logger = logger
	e.verifier = auth.NewHS256Verifier(testSecret, leeway)
	var gst Store = st
	if wrap != nil {
		gst = wrap(st)
	}
	gw, err := New(opts, gst, e.verifier, e.interest)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.gw = gw
	gwp.Store(gw)
	e.srv = httptest.NewUnstartedServer(gw)
	e.srv.Config.ErrorLog = auth.RedactingLogger(logger.Named("http"))
	e.srv.Start()
	e.url = "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/ws"
	t.Cleanup(func() {
		e.shutdown()
		e.srv.Close()
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
		if !e.allowErrors.Load() && strings.Contains(e.logs.String(), "[ERROR]") {
			t.Errorf("unexpected error-level log lines:\n%s", e.logs.String())
		}
	})
	return e
}

// shutdown shuts the gateway down once.
func (e *env) shutdown() {
	e.shutOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := e.gw.Shutdown(ctx); err != nil && !errors.Is(err, ErrShutdown) {
			e.t.Errorf("Shutdown: %v", err)
		}
	})
}

// token returns a valid token for user.
func (e *env) token(user string) string {
	e.t.Helper()
	tok, _, err := auth.NewHS256Issuer(testSecret).Issue(user, time.Hour)
	if err != nil {
		e.t.Fatalf("issue: %v", err)
	}
	return tok
}

// signed returns a token with exactly these claims.
func signed(tb testing.TB, claims jwt.MapClaims) string {
	tb.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(testSecret)
	if err != nil {
		tb.Fatalf("sign: %v", err)
	}
	return tok
}

// dial connects a recording client for user and waits for its unread_sync.
func (e *env) dial(user string, opts wsclient.Options) (*wsclient.Client, wsclient.Frame) {
	e.t.Helper()
	c := e.dialNoSync(user, opts)
	f, err := c.WaitType(frameUnreadSync, waitTimeout)
	if err != nil {
		e.t.Fatalf("dial %s: no unread_sync: %v", user, err)
	}
	return c, f
}

// dialNoSync connects a recording client for user without waiting.
func (e *env) dialNoSync(user string, opts wsclient.Options) *wsclient.Client {
	e.t.Helper()
	if opts.Token == "" {
		opts.Token = e.token(user)
	}
	c, _, err := wsclient.Dial(e.url, opts)
	if err != nil {
		e.t.Fatalf("dial %s: %v", user, err)
	}
	e.t.Cleanup(c.Abandon)
	return c
}

// create stores n notifications for user and returns them.
func (e *env) create(user string, n int) []notification.Notification {
	e.t.Helper()
	drafts := make([]notification.Draft, n)
	for i := range drafts {
		drafts[i] = notification.Draft{UserID: user, Type: "test", Title: fmt.Sprintf("n%d", i)}
	}
	ns, err := e.st.Create(context.Background(), drafts)
	if err != nil {
		e.t.Fatalf("create: %v", err)
	}
	return ns
}

// eventually polls cond until it holds, failing the test after waitTimeout.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// counter reads a counter's value.
func counter(tb testing.TB, c prometheus.Counter) float64 {
	tb.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		tb.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// gauge reads a gauge's value.
func gauge(tb testing.TB, g prometheus.Gauge) float64 {
	tb.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		tb.Fatal(err)
	}
	return m.GetGauge().GetValue()
}

// syncFrame is the decoded unread_sync frame.
type syncFrame struct {
	Type          string                      `json:"type"`
	Notifications []notification.Notification `json:"notifications"`
	UnreadCount   int                         `json:"unread_count"`
	Truncated     bool                        `json:"truncated"`
	Seq           uint64                      `json:"seq"`
}

// liveFrame is any decoded server frame other than unread_sync.
type liveFrame struct {
	Type          string                      `json:"type"`
	Notification  *notification.Notification  `json:"notification"`
	Notifications []notification.Notification `json:"notifications"`
	IDs           []string                    `json:"ids"`
	UnreadCount   int                         `json:"unread_count"`
	Seq           uint64                      `json:"seq"`
	Next          string                      `json:"next"`
	Code          string                      `json:"code"`
	Message       string                      `json:"message"`
	Ref           string                      `json:"ref"`
}

func decodeSync(tb testing.TB, f wsclient.Frame) syncFrame {
	tb.Helper()
	var s syncFrame
	if err := f.Decode(&s); err != nil {
		tb.Fatalf("decode unread_sync: %v", err)
	}
	return s
}

func decodeLive(tb testing.TB, f wsclient.Frame) liveFrame {
	tb.Helper()
	var l liveFrame
	if err := f.Decode(&l); err != nil {
		tb.Fatalf("decode %s: %v", f.Type, err)
	}
	return l
}

// notificationIDs returns the ids of the notification frames c received.
func notificationIDs(tb testing.TB, c *wsclient.Client) []string {
	tb.Helper()
	var ids []string
	for _, f := range c.Frames() {
		if f.Type == frameNotification {
			ids = append(ids, decodeLive(tb, f).Notification.ID)
		}
	}
	return ids
}

// notificationDraft is notification.Draft, shortened for tests.
type notificationDraft = notification.Draft

// allIDs returns the ids of all of user's notifications, oldest first.
func (e *env) allIDs(user string) []string {
	e.t.Helper()
	var ids []string
	q := store.ListQuery{UserID: user, Limit: 100}
	for {
		p, err := e.st.List(q)
		if err != nil {
			e.t.Fatalf("list: %v", err)
		}
		for _, n := range p.Notifications {
			ids = append(ids, n.ID)
		}
		if p.Next == "" {
			break
		}
		q.Before = p.Next
	}
	slices.Reverse(ids)
	return ids
}
