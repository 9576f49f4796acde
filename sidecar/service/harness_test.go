package service

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/heraldhq/herald/plugin"
	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sidecar/store"
)

// harness is a Service behind a real gRPC server on a Unix socket, backed by
// a real store file.
type harness struct {
	store  *store.Store
	client heraldv1.NotificationServiceClient
}

// shortDir returns a fresh directory with a short path: a Unix socket path
// must fit in 108 bytes, which t.TempDir() under a long test name may not.
func shortDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "hsvc")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func newHarness(tb testing.TB, opts Options) *harness {
	tb.Helper()
	dir := shortDir(tb)
	st, err := store.Open(store.Options{Path: filepath.Join(dir, "herald.db")})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	opts.Store = st

	sock := filepath.Join(dir, "h.sock")
	ln, err := plugin.ListenUnix(sock)
	if err != nil {
		tb.Fatal(err)
	}
	srv := plugin.NewServer(New(opts))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	tb.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			tb.Errorf("grpc serve: %v", err)
		}
	})

	conn, err := grpc.NewClient("unix://"+sock,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(plugin.MaxMessageSize)),
	)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return &harness{store: st, client: heraldv1.NewNotificationServiceClient(conn)}
}

// ctx returns a context with a generous deadline for one test step.
func testCtx(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func newNote(user, title string) *heraldv1.NewNotification {
	return &heraldv1.NewNotification{UserId: user, Type: "task.assigned", Title: title}
}

func (h *harness) create(tb testing.TB, n *heraldv1.NewNotification) *heraldv1.Notification {
	tb.Helper()
	resp, err := h.client.CreateNotification(testCtx(tb), &heraldv1.CreateNotificationRequest{Notification: n})
	if err != nil {
		tb.Fatalf("create: %v", err)
	}
	return resp.GetNotification()
}

func (h *harness) unread(tb testing.TB, user string) int64 {
	tb.Helper()
	resp, err := h.client.UnreadCount(testCtx(tb), &heraldv1.UnreadCountRequest{UserId: user})
	if err != nil {
		tb.Fatalf("unread count: %v", err)
	}
	return resp.GetUnreadCount()
}
