// Package metrics defines the gateway's Prometheus metrics. Every name starts
// with herald_. Labels carry only fixed, low-cardinality values (reasons,
// error codes), never a user ID or anything derived from a token.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Reject reasons: why a WebSocket request was refused before or at upgrade.
const (
	RejectUnauthorized = "unauthorized"  // 401: missing, malformed, expired or badly signed token
	RejectOrigin       = "origin"        // 403: Origin not in the allow-list
	RejectThrottled    = "throttled"     // 429: the same bad token refused too often lately
	RejectNotWebSocket = "not_websocket" // 4xx: not a WebSocket upgrade request
	RejectUserLimit    = "user_limit"    // closed 1008: too many sockets for the user
	RejectShuttingDown = "shutting_down" // 503: the gateway is shutting down
	RejectHandshake    = "handshake"     // the upgrade itself failed
)

// Eviction reasons: why the server closed a live socket.
const (
	EvictHeartbeat     = "heartbeat"       // silent past the read deadline
	EvictSlowClient    = "slow_client"     // write queue overflow or write timeout (1013)
	EvictTokenExpired  = "token_expired"   // exp + leeway passed (1008)
	EvictFrameTooLarge = "frame_too_large" // client frame over the limit (1009)
	EvictProtocol      = "protocol_error"  // invalid WebSocket framing
	EvictInternal      = "internal"        // a server-side failure (1011)
	EvictShutdown      = "shutdown"        // Shutdown closed it (1012)
)

// Metrics holds the gateway's collectors. A nil *Metrics is not valid; use
// New(nil) for unregistered collectors. Safe for concurrent use.
type Metrics struct {
	// Connections is the number of live WebSocket connections.
	Connections prometheus.Gauge
	// Connects counts accepted WebSocket connections.
	Connects prometheus.Counter
	// Rejects counts refused connection attempts by reason.
	Rejects *prometheus.CounterVec
	// Evictions counts sockets the server closed, by reason.
	Evictions *prometheus.CounterVec
	// FramesIn counts data frames received from clients.
	FramesIn prometheus.Counter
	// FramesOut counts data frames written to clients.
	FramesOut prometheus.Counter
	// ClientErrors counts error frames sent to clients, by code.
	ClientErrors *prometheus.CounterVec
	// Delivery observes the seconds from the store's commit hook to the frame
	// being written to a socket.
	Delivery prometheus.Histogram
	// UnreadSync counts unread_sync frames sent.
	UnreadSync prometheus.Counter
	// UnreadSyncBytes observes the size of unread_sync frames in bytes.
	UnreadSyncBytes prometheus.Histogram
}

// New creates the metrics and registers them with reg when reg is not nil.
// A collector already registered under the same name (a second gateway in
// one test process) is reused rather than failing.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_connections", Help: "Live WebSocket connections on this replica."}),
		Connects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_connects_total", Help: "WebSocket connections accepted."}),
		Rejects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_rejects_total", Help: "WebSocket connection attempts refused, by reason."},
			[]string{"reason"}),
		Evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_evictions_total", Help: "WebSocket connections closed by the server, by reason."},
			[]string{"reason"}),
		FramesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_frames_in_total", Help: "Data frames received from WebSocket clients."}),
		FramesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_frames_out_total", Help: "Data frames written to WebSocket clients."}),
		ClientErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_client_errors_total", Help: "Error frames sent to WebSocket clients, by code."},
			[]string{"code"}),
		Delivery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_delivery_seconds",
			Help:    "Seconds from the store commit to the frame written to a socket.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		UnreadSync: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_unread_sync_total", Help: "unread_sync frames sent."}),
		UnreadSyncBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "herald_unread_sync_bytes",
			Help:    "Size of unread_sync frames in bytes.",
			Buckets: prometheus.ExponentialBuckets(256, 4, 8),
		}),
	}
	for _, r := range []string{RejectUnauthorized, RejectOrigin, RejectNotWebSocket, RejectUserLimit,
		RejectShuttingDown, RejectHandshake} {
		m.Rejects.WithLabelValues(r)
	}
	for _, r := range []string{EvictHeartbeat, EvictSlowClient, EvictTokenExpired, EvictFrameTooLarge,
		EvictProtocol, EvictInternal, EvictShutdown} {
		m.Evictions.WithLabelValues(r)
	}
	if reg != nil {
		m.Connections = register(reg, m.Connections)
		m.Connects = register(reg, m.Connects)
		m.Rejects = register(reg, m.Rejects)
		m.Evictions = register(reg, m.Evictions)
		m.FramesIn = register(reg, m.FramesIn)
		m.FramesOut = register(reg, m.FramesOut)
		m.ClientErrors = register(reg, m.ClientErrors)
		m.Delivery = register(reg, m.Delivery)
		m.UnreadSync = register(reg, m.UnreadSync)
		m.UnreadSyncBytes = register(reg, m.UnreadSyncBytes)
	}
	return m
}

// register registers c, or returns the collector already registered under
// its name. Any other registration error is a programming error and panics.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic("metrics: register: " + err.Error())
}
