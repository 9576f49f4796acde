// Package gateway is Herald's real-time edge: it authenticates WebSocket
// requests, keeps the ConnectionManager (user ID → live sockets), sends each
// new socket its unread_sync, pushes the store's committed events to every
// socket of their user, answers client frames, pings clients and evicts the
// silent, the slow and the expired.
//
// Life of a socket: ServeHTTP checks the request (method and upgrade
// headers, Origin, token) before the upgrade, so refusals are plain HTTP
// statuses; after the upgrade one goroutine, owned by the Gateway, registers
// the socket, sends unread_sync, then runs gws's read loop until the socket
// ends. Frames to a socket go through gws's single-writer queue, bounded by
// the gateway (see conn).
//
// Close codes: 1008 when the token expires or when a new socket would pass
// MaxConnsPerUser (that new socket is closed, the others stay), 1009 for a
// client frame over MaxFrameBytes, 1011 when the store fails the sync, 1012
// on Shutdown, 1013 when a socket's write queue overflows.
//
// Lock order: a conn's mutex may be held while taking a manager shard's
// mutex (closing unregisters), never the reverse; Interest is called with a
// shard mutex held. Gateway.mu and Gateway.socketsMu are taken alone.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/lxzan/gws"
	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/sidecar/auth"
	"github.com/heraldhq/herald/sidecar/metrics"
	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/sidecar/store"
)

// Store is what the gateway needs of the store; *store.Store satisfies it.
type Store interface {
	Unread(userID string, limit int) (store.Snapshot, error)
	MarkRead(ctx context.Context, userID string, ids []string) ([]string, int, error)
	MarkAllRead(ctx context.Context, userID string) (int, error)
	List(q store.ListQuery) (store.Page, error)
}

var _ Store = (*store.Store)(nil)

// Interest hears when this replica gets its first socket of a user and when
// it loses the last one (the bus subscribes and unsubscribes). Its methods
// are called with a manager shard lock held and must not block.
type Interest interface {
	Watch(userID string)
	Unwatch(userID string)
}

// ErrShutdown is returned by Shutdown when called more than once.
var ErrShutdown = errors.New("gateway: already shut down")

// Gateway serves /ws. Create it with New; it is safe for concurrent use.
type Gateway struct {
	opts     Options
	origins  []origin
	store    Store
	verifier *auth.Verifier
	refused  *refusedTokens
	manager  *ConnectionManager
	upgrader *gws.Upgrader
	log      hclog.Logger
	nextID   atomic.Uint64
	// warnLimit rate-limits warnings logged on hot paths.
	warnLimit *rate.Limiter

	// baseCtx is the parent of every socket's context; Shutdown cancels it.
	baseCtx    context.Context
	cancelBase context.CancelFunc

	mu     sync.RWMutex // guards closed and orders wg.Add before wg.Wait
	closed bool
	wg     sync.WaitGroup // ServeHTTP calls and socket goroutines

	socketsMu sync.Mutex
	sockets   map[*conn]struct{} // every socket whose goroutine runs, registered or not

	janitorStop chan struct{}
	janitorDone chan struct{}

	stats struct {
		// bufferedEvents counts events that reached a socket while it
		// synced (kept or dropped by goLive); tests read it.
		bufferedEvents atomic.Int64
	}
}

// New returns a Gateway and starts its heartbeat goroutine; call Shutdown
// to stop it. st and verifier are required; interest may be nil.
func New(opts Options, st Store, verifier *auth.Verifier, interest Interest) (*Gateway, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("gateway: invalid options: %w", err)
	}
	if st == nil || verifier == nil {
		return nil, errors.New("gateway: store and verifier are required")
	}
	origins, _ := parseOrigins(opts.AllowedOrigins)
	g := &Gateway{
		opts:        opts,
		origins:     origins,
		store:       st,
		verifier:    verifier,
		refused:     newRefusedTokens(time.Now),
		manager:     newConnectionManager(opts.MaxConnsPerUser, interest),
		log:         opts.Logger,
		warnLimit:   rate.NewLimiter(1, 5),
		sockets:     make(map[*conn]struct{}),
		janitorStop: make(chan struct{}),
		janitorDone: make(chan struct{}),
	}
	g.baseCtx, g.cancelBase = context.WithCancel(context.Background())
	g.upgrader = gws.NewUpgrader(&handler{g: g}, &gws.ServerOption{
		// Each frame is buffered whole: keep the limit small. gws closes
		// with 1009 past it.
		ReadMaxPayloadSize: opts.MaxFrameBytes,
		// Invalid UTF-8 gets a bad_request frame (PROTOCOL.md) rather than
		// gws's 1007 close; we check it in decodeRequest.
		CheckUtf8Enabled: false,
		// Client frames are handled in order, one at a time.
		ParallelEnabled: false,
		// A panic in a handler closes that socket, not the process.
		Recovery: gws.Recovery,
		Logger:   gwsLogger{opts.Logger},
		// No compression: frames are small JSON, and deflate would cost
		// 8+ KiB per socket with context takeover.
		PermessageDeflate: gws.PermessageDeflate{Enabled: false},
		HandshakeTimeout:  opts.HandshakeTimeout,
		// Outgoing frames are built by us and bounded by the sync frame cap.
		WriteMaxPayloadSize: max(opts.MaxSyncFrameBytes, opts.WriteQueueBytes),
	})
	if len(origins) == 0 {
		g.log.Warn("no allowed origins configured: any browser origin may open /ws")
	}
	go g.janitor()
	return g, nil
}

// idleWriteDeadline is how long after its last write a socket may still
// take a close frame written by gws's reader. Pings refresh it every
// Heartbeat, so it stays in the future for a live socket.
func (g *Gateway) idleWriteDeadline() time.Duration { return 2*g.opts.Heartbeat + g.opts.WriteTimeout }

// Count returns how many live sockets the user holds on this replica.
func (g *Gateway) Count(userID string) int { return g.manager.Count(userID) }

// Connections returns the number of live sockets on this replica.
func (g *Gateway) Connections() int { return g.manager.Len() }

// enter admits one ServeHTTP call unless the gateway is shut down.
func (g *Gateway) enter() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

// ServeHTTP upgrades a request for /ws. Refusals happen before the upgrade:
// 405 for a method other than GET, 426 for a request without WebSocket
// upgrade headers, 403 for an origin not allowed, 401 for a missing or bad
// token, 429 for a token refused too often lately (see refusedTokens), 503
// once Shutdown started. No refusal reads the store.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !g.enter() {
		g.refuse(w, r, http.StatusServiceUnavailable, "server shutting down", metrics.RejectShuttingDown)
		return
	}
	handedOff := false
	defer func() {
		if !handedOff {
			g.wg.Done()
		}
	}()

	// Check the request, cheapest first.
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		g.refuse(w, r, http.StatusMethodNotAllowed, "method not allowed", metrics.RejectNotWebSocket)
		return
	}
	if !isUpgrade(r) {
		w.Header().Set("Upgrade", "websocket")
		g.refuse(w, r, http.StatusUpgradeRequired, "websocket upgrade required", metrics.RejectNotWebSocket)
		return
	}
	if !g.originAllowed(r.Header.Get("Origin")) {
		g.refuse(w, r, http.StatusForbidden, "origin not allowed", metrics.RejectOrigin)
		return
	}
	token := tokenOf(r)
	if wait, ok := g.refused.throttled(token); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		g.refuse(w, r, http.StatusTooManyRequests, "token refused too often; get a fresh token",
			metrics.RejectThrottled)
		return
	}
	claims, err := g.verifier.Verify(token)
	if err != nil {
		g.refused.record(token)
		g.log.Debug("token refused", "remote_addr", r.RemoteAddr, "error", err,
			"token_fp", fingerprint(token))
		g.refuse(w, r, http.StatusUnauthorized, err.Error(), metrics.RejectUnauthorized)
		return
	}

	// Upgrade, and hand the socket to its own goroutine.
	socket, err := g.upgrader.Upgrade(w, r)
	if err != nil {
		// gws answered 400 itself. Its errors name no part of the URL.
		g.opts.Metrics.Rejects.WithLabelValues(metrics.RejectHandshake).Inc()
		g.log.Debug("upgrade failed", "remote_addr", r.RemoteAddr, "error", err)
		return
	}
	c := g.newConn(socket, r, claims, token)
	handedOff = true
	go g.run(c)
}

// refuse answers a request that is not upgraded.
func (g *Gateway) refuse(w http.ResponseWriter, r *http.Request, status int, reason, metric string) {
	g.opts.Metrics.Rejects.WithLabelValues(metric).Inc()
	g.log.Debug("request refused", "remote_addr", r.RemoteAddr, "status", status, "reason", reason)
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, reason, status)
}

// isUpgrade reports whether r asks for a WebSocket upgrade.
func isUpgrade(r *http.Request) bool {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	for _, v := range strings.Split(r.Header.Get("Connection"), ",") {
		if strings.EqualFold(strings.TrimSpace(v), "upgrade") {
			return true
		}
	}
	return false
}

// tokenOf returns the request's token: the `token` query parameter, else an
// `Authorization: Bearer` header.
func tokenOf(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "bearer") {
		return strings.TrimSpace(cred)
	}
	return ""
}

// fingerprint names a token in logs without revealing it.
func fingerprint(token string) string {
	if token == "" {
		return ""
	}
	return auth.Fingerprint(token)
}

// originAllowed applies the allow-list to an Origin header value. No header
// (not a browser) is allowed; with an empty list every origin is.
func (g *Gateway) originAllowed(value string) bool {
	if value == "" || len(g.origins) == 0 {
		return true
	}
	o, ok := canonicalOrigin(value)
	if !ok {
		return false
	}
	for _, a := range g.origins {
		if a == o {
			return true
		}
	}
	return false
}

// newConn builds the gateway's state for an upgraded socket.
func (g *Gateway) newConn(socket *gws.Conn, r *http.Request, claims auth.Claims, token string) *conn {
	c := &conn{
		g:         g,
		id:        strconv.FormatUint(g.nextID.Add(1), 36),
		userID:    claims.UserID,
		remote:    r.RemoteAddr,
		tokenFP:   fingerprint(token),
		socket:    socket,
		expiresAt: claims.ExpiresAt.Add(g.verifier.Leeway()),
		started:   time.Now(),
	}
	c.limiter = newLimiter(g.opts.ClientFrameRate, g.opts.ClientFrameBurst)
	c.jobsDone = sync.NewCond(&c.mu)
	c.ctx, c.cancel = context.WithCancel(g.baseCtx)
	socket.Session().Store(sessionKey, c)
	return c
}

// run owns one socket: it registers it, sends unread_sync, reads until the
// socket ends, then waits for its queued writes.
func (g *Gateway) run(c *conn) {
	defer g.wg.Done()
	defer c.cancel()
	g.socketsMu.Lock()
	g.sockets[c] = struct{}{}
	g.socketsMu.Unlock()
	defer func() {
		g.socketsMu.Lock()
		delete(g.sockets, c)
		g.socketsMu.Unlock()
	}()
	_ = c.socket.SetReadDeadline(time.Now().Add(2 * g.opts.Heartbeat))
	switch err := g.register(c); {
	case errors.Is(err, errTooManyConns):
		g.opts.Metrics.Rejects.WithLabelValues(metrics.RejectUserLimit).Inc()
		g.log.Debug("too many connections", "conn_id", c.id, "user_id", c.userID)
		c.close(ClosePolicy, "too many connections", "", false)
	case err != nil:
		c.close(CloseRestart, "server restart", "", false)
	default:
		g.sync(c)
	}
	c.socket.ReadLoop()
	c.waitJobs()
}

// register adds c to the manager and counts it.
func (g *Gateway) register(c *conn) error {
	if err := g.manager.Add(c); err != nil {
		return err
	}
	c.registered.Store(true)
	g.opts.Metrics.Connections.Inc()
	g.opts.Metrics.Connects.Inc()
	g.log.Debug("connect", "conn_id", c.id, "user_id", c.userID, "remote_addr", c.remote,
		"token_fp", c.tokenFP)
	return nil
}

// unregister removes c from the manager, once.
func (g *Gateway) unregister(c *conn) {
	if c.registered.CompareAndSwap(true, false) && g.manager.Remove(c) {
		g.opts.Metrics.Connections.Dec()
	}
}

// sync sends unread_sync to a registered socket. The socket was registered
// first, so every event committed from then on reached it (buffered while
// syncing); the snapshot reflects the events up to its Seq, and goLive sends
// only the buffered events after that Seq: nothing is missed, nothing twice.
func (g *Gateway) sync(c *conn) {
	snap, err := g.store.Unread(c.userID, g.opts.SyncLimit)
	if err != nil {
		g.log.Error("unread sync failed", "conn_id", c.id, "user_id", c.userID, "error", err)
		c.close(CloseInternal, "internal error", metrics.EvictInternal, false)
		return
	}
	frame, kept, err := encodeSync(&snap, g.opts.MaxSyncFrameBytes)
	if err != nil {
		g.log.Error("unread sync failed", "conn_id", c.id, "user_id", c.userID, "error", err)
		c.close(CloseInternal, "internal error", metrics.EvictInternal, false)
		return
	}
	g.opts.Metrics.UnreadSync.Inc()
	g.opts.Metrics.UnreadSyncBytes.Observe(float64(len(frame)))
	g.log.Trace("unread sync", "conn_id", c.id, "user_id", c.userID, "notifications", kept,
		"unread", snap.UnreadCount, "bytes", len(frame), "seq", snap.Seq)
	c.goLive(frame, snap.Seq)
}

// OnCommit is the store's commit hook: it pushes each event to the local
// sockets of its user. Each event's frame is encoded once, only when the
// user has a socket here, and the same bytes are queued to every socket.
// It never blocks on I/O; a socket whose queue is full is closed.
func (g *Gateway) OnCommit(events []notification.Event) {
	now := time.Now()
	for i := range events {
		ev := &events[i]
		conns := g.manager.Conns(ev.UserID)
		if len(conns) == 0 {
			continue
		}
		data, err := encodeEvent(ev)
		if err != nil {
			g.log.Error("drop event", "user_id", ev.UserID, "seq", ev.Seq, "error", err)
			continue
		}
		f := outFrame{op: gws.OpcodeText, data: data, seq: ev.Seq, commit: now}
		for _, c := range conns {
			c.deliver(f)
		}
	}
}

// Shutdown stops accepting (later requests get 503), closes every socket
// with 1012 after the frames already queued to it, and waits for the
// sockets' goroutines. When ctx ends first, the remaining sockets are
// dropped without a close frame and ctx's error is returned once their
// goroutines have exited (at once: their connections are closed).
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return ErrShutdown
	}
	g.closed = true
	g.mu.Unlock()

	close(g.janitorStop)
	<-g.janitorDone
	conns := g.manager.Drain()
	for _, c := range conns {
		c.close(CloseRestart, "server restart", metrics.EvictShutdown, true)
	}
	g.log.Debug("shutdown: closing sockets", "count", len(conns), "node_id", g.opts.NodeID)

	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		g.cancelBase()
		return nil
	case <-ctx.Done():
	}
	// Out of time: cancel store calls and drop every socket still open.
	g.cancelBase()
	g.socketsMu.Lock()
	for c := range g.sockets {
		c.kill()
	}
	g.socketsMu.Unlock()
	<-done
	return fmt.Errorf("gateway: shutdown: %w", ctx.Err())
}

// gwsLogger sends gws's own error logs (panics caught by Recovery) to hclog.
type gwsLogger struct{ l hclog.Logger }

func (g gwsLogger) Error(v ...any) {
	g.l.Error("websocket handler panic", "message", auth.Redact(strings.TrimSpace(fmt.Sprintln(v...))))
}
