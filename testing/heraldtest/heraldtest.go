// Package heraldtest starts real Herald nodes inside a test process: the same
// daemon `herald serve` runs, with its store in a temporary directory, its
// HTTP listener on a free loopback port and its gRPC service on a Unix socket.
// Tests of this module and of host applications use it.
package heraldtest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sidecar/auth"
	"github.com/heraldhq/herald/sidecar/config"
	"github.com/heraldhq/herald/sidecar/daemon"
)

// Options says how to start a node. The zero value starts a single instance
// with a fresh data directory.
type Options struct {
	// DataDir is the node's data directory; empty means a new temporary one.
	// Reuse a stopped node's DataDir to restart it.
	DataDir string
	// RedisURL joins the node to other replicas through Redis.
	RedisURL string
	// NodeID names the node; empty keeps the stored or generated one.
	NodeID string
	// Configure, when set, edits the configuration last.
	Configure func(*config.Config)
}

// Node is one running Herald. Its methods are safe for concurrent use.
type Node struct {
	t      testing.TB
	Config config.Config
	Daemon *daemon.Daemon
	// HTTPAddr is host:port of /ws, /healthz, /readyz and /metrics.
	HTTPAddr string
	// RPC is a gRPC client on the node's Unix socket.
	RPC heraldv1.NotificationServiceClient

	conn    *grpc.ClientConn
	cancel  context.CancelFunc
	done    chan error
	logs    *syncBuffer
	stopped sync.Once
	stopErr error
}

// Start starts a node and registers its Stop with t.Cleanup. It fails the
// test if the node cannot start.
func Start(t testing.TB, opts Options) *Node {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = opts.DataDir
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.Socket = shortSocketPath(t)
	cfg.RedisURL = opts.RedisURL
	cfg.NodeID = opts.NodeID
	cfg.LogLevel = "debug"
	cfg.ShutdownTimeout = 5 * time.Second
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}

	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{
		Name:   "herald",
		Level:  hclog.LevelFromString(cfg.LogLevel),
		Output: logs,
	})
	ctx, cancel := context.WithCancel(context.Background())
	d, err := daemon.New(ctx, cfg, daemon.SidecarMode, logger)
	if err != nil {
		cancel()
		t.Fatalf("heraldtest: start node: %v\nlogs:\n%s", err, logs.String())
	}
	n := &Node{t: t, Config: cfg, Daemon: d, HTTPAddr: d.HTTPAddr(), cancel: cancel,
		done: make(chan error, 1), logs: logs}
	go func() { n.done <- d.Run(ctx) }()

	n.conn, err = grpc.NewClient("unix:"+cfg.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("heraldtest: dial %s: %v", cfg.Socket, err)
	}
	n.RPC = heraldv1.NewNotificationServiceClient(n.conn)
	t.Cleanup(func() {
		if err := n.Stop(); err != nil {
			t.Errorf("heraldtest: stop node %s: %v", d.NodeID(), err)
		}
		if t.Failed() {
			t.Logf("logs of node %s:\n%s", d.NodeID(), logs.Tail(300))
		}
	})
	return n
}

// Stop shuts the node down gracefully and waits for it. It is idempotent.
func (n *Node) Stop() error {
	n.stopped.Do(func() {
		n.cancel()
		select {
		case n.stopErr = <-n.done:
		case <-time.After(30 * time.Second):
			n.stopErr = fmt.Errorf("node did not stop within 30s")
		}
		if err := n.conn.Close(); err != nil && n.stopErr == nil {
			n.stopErr = err
		}
	})
	return n.stopErr
}

// WSURL returns the WebSocket URL for a user, with a fresh token.
func (n *Node) WSURL(userID string) string {
	return "ws://" + n.HTTPAddr + "/ws?token=" + n.Token(userID)
}

// Token returns a connect token for userID signed with the node's secret,
// valid for an hour.
func (n *Node) Token(userID string) string {
	n.t.Helper()
	secret, err := auth.LoadSecretFile(filepath.Join(n.Config.DataDir, auth.SecretFileName))
	if err != nil {
		n.t.Fatalf("heraldtest: read secret: %v", err)
	}
	tok, _, err := auth.NewHS256Issuer(secret).Issue(userID, time.Hour)
	if err != nil {
		n.t.Fatalf("heraldtest: issue token: %v", err)
	}
	return tok
}

// WaitReady waits until /readyz answers 200, failing the test after timeout.
func (n *Node) WaitReady(timeout time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get("http://" + n.HTTPAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("heraldtest: node %s not ready after %s: %v", n.Daemon.NodeID(), timeout, n.Daemon.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Logs returns everything the node logged so far.
func (n *Node) Logs() string { return n.logs.String() }

// ErrorLines returns the node's error-level log lines.
func (n *Node) ErrorLines() []string {
	var out []string
	for _, line := range strings.Split(n.logs.String(), "\n") {
		if strings.Contains(line, "[ERROR]") {
			out = append(out, line)
		}
	}
	return out
}

// shortSocketPath returns a socket path short enough for sun_path (108 bytes),
// which t.TempDir() paths of long test names can exceed.
func shortSocketPath(t testing.TB) string {
	dir, err := os.MkdirTemp("", "hs")
	if err != nil {
		t.Fatalf("heraldtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "herald.sock")
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Tail returns the last n lines.
func (b *syncBuffer) Tail(n int) string {
	lines := strings.Split(b.String(), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
