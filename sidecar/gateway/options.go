package gateway

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/heraldhq/herald/sidecar/metrics"
)

// Defaults of Options; a zero field takes its default.
const (
	DefaultHeartbeat          = 25 * time.Second
	DefaultSyncLimit          = 500
	DefaultMaxSyncFrameBytes  = 256 << 10
	DefaultMaxConnsPerUser    = 32
	DefaultWriteQueueFrames   = 256
	DefaultWriteQueueBytes    = 1 << 20
	DefaultMaxFrameBytes      = 64 << 10
	DefaultWriteTimeout       = 10 * time.Second
	DefaultCloseTimeout       = 5 * time.Second
	DefaultTokenCheckInterval = 5 * time.Second
	DefaultHandshakeTimeout   = 5 * time.Second
	DefaultRequestTimeout     = 10 * time.Second
	DefaultClientFrameRate    = 50
	DefaultClientFrameBurst   = 100
)

// Options configures a Gateway. The zero value of every field means its
// default; New reports every invalid field at once.
type Options struct {
	// NodeID names this replica in logs. Optional.
	NodeID string
	// Heartbeat is the protocol ping interval. A client from which nothing
	// (no frame, pong or ping) arrived for 2×Heartbeat is evicted. Default 25s.
	Heartbeat time.Duration
	// SyncLimit is the most notifications in the unread_sync frame (the
	// newest ones). Default 500.
	SyncLimit int
	// MaxSyncFrameBytes caps the encoded unread_sync frame, in bytes: when
	// the newest SyncLimit notifications do not fit, the oldest of them are
	// left out and truncated is true. It caps the page frame answering list
	// too: a page that does not fit is cut short and its next set to the
	// last id kept. Default 256 KiB; minimum 4 KiB.
	MaxSyncFrameBytes int
	// MaxConnsPerUser is the most sockets one user may hold on this replica.
	// A connection over the cap is upgraded and at once closed with 1008
	// "too many connections" (a browser sees a close code, never an HTTP
	// status); the user's existing sockets are not touched. Default 32.
	MaxConnsPerUser int
	// AllowedOrigins lists the browser origins allowed to connect, as
	// scheme://host[:port]; the host compares case-insensitively, scheme and
	// port exactly (a missing port means the scheme's default). A request
	// without an Origin header (not a browser) is always accepted. Empty: any
	// origin is accepted and New logs a warning.
	AllowedOrigins []string
	// WriteQueueFrames bounds the frames queued to one socket. Over it the
	// socket is closed with 1013. Default 256.
	WriteQueueFrames int
	// WriteQueueBytes bounds the bytes queued to one socket. Over it the
	// socket is closed with 1013. Default 1 MiB.
	WriteQueueBytes int
	// MaxFrameBytes is the largest client frame accepted; a larger one closes
	// the socket with 1009. Default 64 KiB.
	MaxFrameBytes int
	// WriteTimeout bounds one frame write to a socket; a client that does not
	// take a frame within it is closed. Default 10s.
	WriteTimeout time.Duration
	// CloseTimeout is how long a socket the server closes waits, after its
	// close frame is written, for the client's close frame before the TCP
	// connection is dropped. Default 5s.
	CloseTimeout time.Duration
	// TokenCheckInterval is how often sockets are checked for an expired
	// token (exp + the verifier's leeway). Default 5s.
	TokenCheckInterval time.Duration
	// HandshakeTimeout bounds writing the upgrade response. Default 5s.
	HandshakeTimeout time.Duration
	// RequestTimeout bounds the store call made for one client frame
	// (mark_read, mark_all_read, list). Default 10s.
	RequestTimeout time.Duration
	// ClientFrameRate and ClientFrameBurst limit the frames one socket may
	// send, per second and in a burst; over it the client gets
	// rate_limited errors. Defaults 50 and 100.
	ClientFrameRate  float64
	ClientFrameBurst int
	// Logger receives the gateway's logs. Default: a null logger.
	Logger hclog.Logger
	// Metrics receives the gateway's metrics. Default: unregistered metrics.
	Metrics *metrics.Metrics
}

// withDefaults returns o with every zero field set to its default.
func (o Options) withDefaults() Options {
	setDur := func(d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
	}
	setInt := func(n *int, def int) {
		if *n == 0 {
			*n = def
		}
	}
	setDur(&o.Heartbeat, DefaultHeartbeat)
	setDur(&o.WriteTimeout, DefaultWriteTimeout)
	setDur(&o.CloseTimeout, DefaultCloseTimeout)
	setDur(&o.TokenCheckInterval, DefaultTokenCheckInterval)
	setDur(&o.HandshakeTimeout, DefaultHandshakeTimeout)
	setDur(&o.RequestTimeout, DefaultRequestTimeout)
	setInt(&o.SyncLimit, DefaultSyncLimit)
	setInt(&o.MaxSyncFrameBytes, DefaultMaxSyncFrameBytes)
	setInt(&o.MaxConnsPerUser, DefaultMaxConnsPerUser)
	setInt(&o.WriteQueueFrames, DefaultWriteQueueFrames)
	setInt(&o.WriteQueueBytes, DefaultWriteQueueBytes)
	setInt(&o.MaxFrameBytes, DefaultMaxFrameBytes)
	setInt(&o.ClientFrameBurst, DefaultClientFrameBurst)
	if o.ClientFrameRate == 0 {
		o.ClientFrameRate = DefaultClientFrameRate
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New(nil)
	}
	return o
}

// validate reports every invalid field of o (after defaults) at once.
func (o Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Heartbeat < 10*time.Millisecond {
		bad("Heartbeat %s is below 10ms", o.Heartbeat)
	}
	if o.SyncLimit < 0 {
		bad("SyncLimit %d is negative", o.SyncLimit)
	}
	if o.MaxSyncFrameBytes < 4<<10 {
		bad("MaxSyncFrameBytes %d is below 4 KiB", o.MaxSyncFrameBytes)
	}
	if o.MaxConnsPerUser < 1 {
		bad("MaxConnsPerUser %d is below 1", o.MaxConnsPerUser)
	}
	if o.WriteQueueFrames < 2 {
		bad("WriteQueueFrames %d is below 2", o.WriteQueueFrames)
	}
	if o.WriteQueueBytes < o.MaxSyncFrameBytes {
		bad("WriteQueueBytes %d is below MaxSyncFrameBytes %d", o.WriteQueueBytes, o.MaxSyncFrameBytes)
	}
	if o.MaxFrameBytes < 1<<10 {
		bad("MaxFrameBytes %d is below 1 KiB", o.MaxFrameBytes)
	}
	for name, d := range map[string]time.Duration{"WriteTimeout": o.WriteTimeout, "CloseTimeout": o.CloseTimeout,
		"TokenCheckInterval": o.TokenCheckInterval, "HandshakeTimeout": o.HandshakeTimeout,
		"RequestTimeout": o.RequestTimeout} {
		if d < 0 {
			bad("%s %s is negative", name, d)
		}
	}
	if o.ClientFrameRate < 0 || o.ClientFrameBurst < 1 {
		bad("ClientFrameRate %v / ClientFrameBurst %d out of range", o.ClientFrameRate, o.ClientFrameBurst)
	}
	if _, err := parseOrigins(o.AllowedOrigins); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// origin is one allowed origin in canonical form.
type origin struct{ scheme, host, port string }

// parseOrigins turns the allow-list into canonical origins.
func parseOrigins(list []string) ([]origin, error) {
	var out []origin
	var errs []error
	for _, s := range list {
		o, ok := canonicalOrigin(strings.TrimSuffix(strings.TrimSpace(s), "/"))
		if !ok {
			errs = append(errs, fmt.Errorf("AllowedOrigins: %q is not scheme://host[:port]", s))
			continue
		}
		out = append(out, o)
	}
	return out, errors.Join(errs...)
}

// canonicalOrigin parses an Origin value: lower-case scheme and host, the
// scheme's default port made explicit. "null" and anything with a path
// (even "/"), query, user info or wildcard is refused.
func canonicalOrigin(s string) (origin, bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		u.Path != "" || u.Opaque != "" || strings.Contains(u.Host, "*") {
		return origin{}, false
	}
	o := origin{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Hostname()), port: u.Port()}
	if o.host == "" {
		return origin{}, false
	}
	if o.port == "" {
		switch o.scheme {
		case "http", "ws":
			o.port = "80"
		case "https", "wss":
			o.port = "443"
		default:
			return origin{}, false
		}
	}
	return o, true
}

// WebSocket close codes the gateway sends (PROTOCOL.md).
const (
	// ClosePolicy: the token expired, or the user has too many sockets.
	ClosePolicy uint16 = 1008
	// CloseTooLarge: a client frame was over MaxFrameBytes.
	CloseTooLarge uint16 = 1009
	// CloseInternal: the server failed to serve the socket.
	CloseInternal uint16 = 1011
	// CloseRestart: the server is shutting down; reconnect with jitter.
	CloseRestart uint16 = 1012
	// CloseTryAgain: the socket's write queue overflowed; reconnect.
	CloseTryAgain uint16 = 1013
)
