// Package config holds the settings of `herald serve`: one documented struct,
// its defaults applied in one place, a validation that reports every problem at
// once, and the flag set that fills it from the command line and from
// HERALD_* environment variables.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Config is the configuration of one Herald. The zero value is not valid;
// start from Default.
type Config struct {
	// HTTPAddr is where /ws, /healthz, /readyz and /metrics listen.
	// Default "127.0.0.1:8787".
	HTTPAddr string
	// Socket is the Unix socket path of the gRPC service in sidecar mode.
	// Default "<DataDir>/herald.sock". Unused in plugin mode.
	Socket string
	// DataDir holds the bbolt file (herald.db) and, without a key file, the
	// generated HS256 secret. Default "./herald-data".
	DataDir string
	// RedisURL switches the bus from in-process to Redis when set.
	RedisURL string
	// RedisNamespace names the catch-up stream and Herald's other keys.
	// Default "herald".
	RedisNamespace string
	// ChannelPrefix prefixes the per-user live channels. Default "notifications:".
	ChannelPrefix string
	// StreamRetention is how long changes stay in the catch-up stream.
	// Default 7 days.
	StreamRetention time.Duration
	// NodeID names this replica. Default: a random ID generated on first start
	// and kept in the data directory's store, so it is stable across restarts.
	NodeID string
	// JWTSecretFile holds the HS256 secret (surrounding white space trimmed).
	JWTSecretFile string
	// JWTPublicKeyFile holds a PEM public key (RSA, ECDSA or Ed25519) that
	// verifies RS256, ES256 or EdDSA tokens. Exclusive with JWTSecretFile.
	JWTPublicKeyFile string
	// JWTLeeway is the clock skew tolerated on exp, nbf and iat. Default 30s.
	JWTLeeway time.Duration
	// Heartbeat is the protocol ping interval; a client silent for two
	// intervals is evicted. Default 25s.
	Heartbeat time.Duration
	// AllowedOrigins lists the browser origins allowed to open /ws, e.g.
	// "https://app.example.com". Empty accepts any origin (a warning is logged).
	AllowedOrigins []string
	// SyncLimit caps the notifications in one unread_sync frame. Default 500.
	SyncLimit int
	// MaxConnsPerUser caps one user's sockets on this replica. Default 32.
	MaxConnsPerUser int
	// Retention is how long read notifications are kept. Default 30 days.
	Retention time.Duration
	// ShutdownTimeout bounds a graceful stop. Default 10s.
	ShutdownTimeout time.Duration
	// Pprof mounts net/http/pprof under /debug/pprof/ on the HTTP listener.
	// Default off: profiles reveal internals and cost CPU; enable for benchmarks.
	Pprof bool
	// LogFormat is "text" or "json". Default "text".
	LogFormat string
	// LogLevel is trace, debug, info, warn or error. Default "info".
	LogLevel string
}

// maxSocketPath is the longest Unix socket path Linux accepts (sun_path
// holds 108 bytes including the terminating NUL).
const maxSocketPath = 107

// Default returns the configuration Herald runs with when nothing is set.
func Default() Config {
	return Config{
		HTTPAddr:        "127.0.0.1:8787",
		DataDir:         "herald-data",
		RedisNamespace:  "herald",
		ChannelPrefix:   "notifications:",
		StreamRetention: 7 * 24 * time.Hour,
		JWTLeeway:       30 * time.Second,
		Heartbeat:       25 * time.Second,
		SyncLimit:       500,
		MaxConnsPerUser: 32,
		Retention:       30 * 24 * time.Hour,
		ShutdownTimeout: 10 * time.Second,
		LogFormat:       "text",
		LogLevel:        "info",
	}
}

// DBPath returns the bbolt file's path.
func (c *Config) DBPath() string { return filepath.Join(c.DataDir, "herald.db") }

// SocketPath returns the Unix socket path, defaulted from DataDir.
func (c *Config) SocketPath() string {
	if c.Socket != "" {
		return c.Socket
	}
	return filepath.Join(c.DataDir, "herald.sock")
}

// Validate reports every problem of c at once, in one line separated by
// "; ", or returns nil.
func (c *Config) Validate() error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		bad("--http-addr %q: want host:port", c.HTTPAddr)
	}
	if c.DataDir == "" {
		bad("--data-dir must not be empty")
	}
	if n := len(c.SocketPath()); n > maxSocketPath {
		bad("--socket path is %d bytes; a Unix socket path has at most %d", n, maxSocketPath)
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || !validRedisScheme(u.Scheme) {
			bad("--redis-url: want redis://, rediss://, redis-sentinel:// or redis-cluster:// URL")
		}
	}
	if c.JWTSecretFile != "" && c.JWTPublicKeyFile != "" {
		bad("--jwt-secret-file and --jwt-public-key-file are exclusive")
	}
	positive := map[string]time.Duration{
		"--heartbeat":        c.Heartbeat,
		"--stream-retention": c.StreamRetention,
		"--retention":        c.Retention,
		"--shutdown-timeout": c.ShutdownTimeout,
	}
	for name, d := range positive {
		if d <= 0 {
			bad("%s must be positive, got %s", name, d)
		}
	}
	if c.JWTLeeway < 0 || c.JWTLeeway > 5*time.Minute {
		bad("--jwt-leeway must be between 0 and 5m, got %s", c.JWTLeeway)
	}
	if c.SyncLimit < 1 || c.SyncLimit > 10000 {
		bad("--sync-limit must be between 1 and 10000, got %d", c.SyncLimit)
	}
	if c.MaxConnsPerUser < 1 {
		bad("--max-conns-per-user must be at least 1, got %d", c.MaxConnsPerUser)
	}
	if c.ChannelPrefix == "" {
		bad("--channel-prefix must not be empty")
	}
	for _, o := range c.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || u.Path != "" {
			bad("--allowed-origins: %q is not an origin like https://app.example.com", o)
		}
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("--log-format must be text or json, got %q", c.LogFormat)
	}
	switch strings.ToLower(c.LogLevel) {
	case "trace", "debug", "info", "warn", "error":
	default:
		bad("--log-level must be trace, debug, info, warn or error, got %q", c.LogLevel)
	}
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems) // map iteration above is random; keep messages stable
	return errors.New(strings.Join(problems, "; "))
}

func validRedisScheme(s string) bool {
	switch s {
	case "redis", "rediss", "unix", "redis-sentinel", "redis-cluster":
		return true
	}
	return false
}

// RegisterServeFlags binds the serve flags of PROTOCOL.md to c. Call it on
// a Config filled by Default; the defaults shown by --help are c's values.
func RegisterServeFlags(fs *flag.FlagSet, c *Config) {
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "address of the WebSocket, health and metrics listener")
	fs.StringVar(&c.Socket, "socket", c.Socket, "Unix socket of the gRPC service (default <data-dir>/herald.sock)")
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory of the store (herald.db) and the generated secret")
	fs.StringVar(&c.RedisURL, "redis-url", c.RedisURL, "Redis URL (redis://host:6379/0, rediss://, redis+sentinel://h:26379?master_name=m, redis+cluster://h:7000?addr=h:7001); unset runs a single instance with an in-process bus")
	fs.StringVar(&c.RedisNamespace, "redis-namespace", c.RedisNamespace, "namespace of the catch-up stream and other keys")
	fs.StringVar(&c.ChannelPrefix, "channel-prefix", c.ChannelPrefix, "prefix of the per-user Pub/Sub channels")
	fs.DurationVar(&c.StreamRetention, "stream-retention", c.StreamRetention, "how long changes stay in the catch-up stream")
	fs.StringVar(&c.NodeID, "node-id", c.NodeID, "name of this replica (default: generated once, kept in the data directory)")
	fs.StringVar(&c.JWTSecretFile, "jwt-secret-file", c.JWTSecretFile, "file with the HS256 secret (default: <data-dir>/secret, created on first start)")
	fs.StringVar(&c.JWTPublicKeyFile, "jwt-public-key-file", c.JWTPublicKeyFile, "PEM public key verifying RS256, ES256 or EdDSA tokens (instead of --jwt-secret-file; not both)")
	fs.DurationVar(&c.JWTLeeway, "jwt-leeway", c.JWTLeeway, "clock skew tolerated on token times")
	fs.DurationVar(&c.Heartbeat, "heartbeat", c.Heartbeat, "protocol ping interval; silent clients are evicted after two")
	fs.Func("allowed-origins", "comma-separated browser origins allowed to connect (default: any, with a warning)", func(s string) error {
		c.AllowedOrigins = splitList(s)
		return nil
	})
	fs.IntVar(&c.SyncLimit, "sync-limit", c.SyncLimit, "most notifications in the unread_sync frame")
	fs.IntVar(&c.MaxConnsPerUser, "max-conns-per-user", c.MaxConnsPerUser, "most sockets of one user on this replica")
	fs.DurationVar(&c.Retention, "retention", c.Retention, "how long read notifications are kept; unread ones are never pruned")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "bound of a graceful stop")
	fs.BoolVar(&c.Pprof, "pprof", c.Pprof, "serve Go profiles under /debug/pprof/ on --http-addr (for benchmarks; never where that address is reachable from outside)")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: trace, debug, info, warn or error")
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// CheckDataDir creates the data directory if needed and checks that it is
// writable, so a bad path fails at start with one clear line.
func CheckDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("data directory %q: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data directory %q is not writable: %w", dir, err)
	}
	name := f.Name()
	return errors.Join(f.Close(), os.Remove(name))
}
