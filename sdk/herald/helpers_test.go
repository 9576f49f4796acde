package herald

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/heraldhq/herald/plugin"
	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sidecar/service"
	"github.com/heraldhq/herald/sidecar/store"
)

// sidecar is an in-process gRPC server as `herald serve` runs it, on a Unix
// socket in a fresh short directory.
type sidecar struct {
	path     string
	srv      *grpc.Server
	served   chan error
	stopOnce sync.Once
}

// shortDir returns a fresh directory whose path leaves room for a socket
// name within the 108-byte limit.
func shortDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "hsdk")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// startSidecar serves impl; a nil impl means the real service over a real
// store in the same directory.
func startSidecar(tb testing.TB, impl heraldv1.NotificationServiceServer, register ...func(*grpc.Server)) *sidecar {
	tb.Helper()
	dir := shortDir(tb)
	if impl == nil {
		st, err := store.Open(store.Options{Path: filepath.Join(dir, "herald.db")})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = st.Close() })
		impl = service.New(service.Options{Store: st})
	}
	s := &sidecar{path: filepath.Join(dir, "h.sock"), served: make(chan error, 1)}
	ln, err := plugin.ListenUnix(s.path)
	if err != nil {
		tb.Fatal(err)
	}
	s.srv = plugin.NewServer(impl)
	for _, r := range register {
		r(s.srv)
	}
	go func() { s.served <- s.srv.Serve(ln) }()
	tb.Cleanup(s.stop)
	return s
}

// stop stops the server hard and waits for Serve to return; the socket file
// is removed.
func (s *sidecar) stop() {
	s.stopOnce.Do(func() {
		s.srv.Stop()
		<-s.served
	})
}

func testCtx(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func attach(tb testing.TB, path string, opts ...AttachOption) *Client {
	tb.Helper()
	c, err := Attach(testCtx(tb), path, opts...)
	if err != nil {
		tb.Fatalf("attach: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
