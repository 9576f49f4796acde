package herald

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/heraldhq/herald/plugin/heraldv1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestAttachRoundTrip(t *testing.T) {
	sc := startSidecar(t, nil)
	c := attach(t, sc.path)
	ctx := testCtx(t)

	n, err := c.CreateNotification(ctx, NewNotification{
		UserID: "42", Type: "task.assigned", Title: "Task 17 assigned to you",
		Link: "/tasks/17", Data: json.RawMessage(`{"task":17}`), IdempotencyKey: "k1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if n.ID == "" || n.UserID != "42" || n.IsRead || string(n.Data) != `{"task":17}` ||
		time.Since(n.CreatedAt) > time.Minute || n.CreatedAt.Location() != time.UTC {
		t.Fatalf("created %+v", n)
	}
	again, err := c.CreateNotification(ctx, NewNotification{UserID: "42", Type: "t", Title: "x", IdempotencyKey: "k1"})
	if err != nil || again.ID != n.ID {
		t.Fatalf("retry with the key: %+v, %v; want id %s", again, err, n.ID)
	}

	// The JSON form is PROTOCOL.md's.
	var fields map[string]any
	raw, _ := json.Marshal(n)
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "user_id", "type", "title", "link", "data", "created_at", "is_read"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("JSON %s lacks %q", raw, k)
		}
	}
	if _, ok := fields["body"]; ok {
		t.Errorf("JSON %s has an empty body", raw)
	}

	batch, err := c.CreateNotifications(ctx, []NewNotification{
		{UserID: "42", Type: "mention", Title: "a"}, {UserID: "42", Type: "mention", Title: "b"},
	})
	if err != nil || len(batch) != 2 || batch[0].Title != "a" || batch[1].Title != "b" {
		t.Fatalf("batch: %+v, %v", batch, err)
	}
	if unread, err := c.UnreadCount(ctx, "42"); err != nil || unread != 3 {
		t.Fatalf("unread: %d, %v", unread, err)
	}

	page, err := c.ListNotifications(ctx, ListOptions{UserID: "42", Limit: 2})
	if err != nil || len(page.Notifications) != 2 || page.Next == "" || page.Notifications[0].ID != batch[1].ID {
		t.Fatalf("first page: %+v, %v", page, err)
	}
	page, err = c.ListNotifications(ctx, ListOptions{UserID: "42", Limit: 2, Before: page.Next})
	if err != nil || len(page.Notifications) != 1 || page.Next != "" || page.Notifications[0].ID != n.ID {
		t.Fatalf("last page: %+v, %v", page, err)
	}

	mr, err := c.MarkRead(ctx, "42", []string{n.ID})
	if err != nil || len(mr.Changed) != 1 || mr.UnreadCount != 2 {
		t.Fatalf("mark read: %+v, %v", mr, err)
	}
	if changed, err := c.MarkAllRead(ctx, "42"); err != nil || changed != 2 {
		t.Fatalf("mark all read: %d, %v", changed, err)
	}
	if unread, err := c.DeleteNotifications(ctx, "42", []string{batch[0].ID}); err != nil || unread != 0 {
		t.Fatalf("delete: %d, %v", unread, err)
	}
}

func TestAttachTypedErrors(t *testing.T) {
	sc := startSidecar(t, nil)
	c := attach(t, sc.path)
	ctx := testCtx(t)

	_, err := c.CreateNotification(ctx, NewNotification{UserID: "u", Type: "t"})
	if !errors.Is(err, ErrInvalidArgument) || errors.Is(err, ErrNotFound) {
		t.Fatalf("empty title: %v, want ErrInvalidArgument", err)
	}
	var he *Error
	if !errors.As(err, &he) || he.Op != "CreateNotification" || !strings.HasPrefix(he.Message, "notification.title:") {
		t.Fatalf("empty title: %#v", he)
	}
	if st, ok := status.FromError(err); !ok || st.Code() != codes.InvalidArgument ||
		!strings.HasPrefix(st.Message(), "notification.title:") {
		t.Fatalf("status of %v: %v", err, st)
	}

	_, err = c.MarkRead(ctx, "u", []string{"01ARZ3NDEKTSV4RRFFQ69G5FAV"})
	if !errors.Is(err, ErrNotFound) || status.Code(err) != codes.NotFound {
		t.Fatalf("unknown id: %v, want ErrNotFound", err)
	}
	_, err = c.IssueConnectToken(ctx, "u", time.Minute)
	if !errors.Is(err, ErrUnimplemented) {
		t.Fatalf("token without issuer: %v, want ErrUnimplemented", err)
	}
	_, err = c.ListNotifications(ctx, ListOptions{UserID: "u", Limit: 1000})
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("limit 1000: %v", err)
	}
}

func TestInvalidUTF8IsInvalidArgument(t *testing.T) {
	sc := startSidecar(t, nil)
	c := attach(t, sc.path)
	ctx := testCtx(t)
	_, err := c.CreateNotifications(ctx, []NewNotification{
		{UserID: "u", Type: "t", Title: "ok"}, {UserID: "u", Type: "t", Title: "bad \xff"},
	})
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "notifications[1].title") {
		t.Fatalf("invalid UTF-8: %v", err)
	}
	if _, err := c.UnreadCount(ctx, "\xfe"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("invalid UTF-8 user: %v", err)
	}
}

// blockingService answers UnreadCount only when the call's context ends.
type blockingService struct {
	heraldv1.UnimplementedNotificationServiceServer
}

func (blockingService) UnreadCount(
	ctx context.Context,
	_ *heraldv1.UnreadCountRequest,
) (*heraldv1.UnreadCountResponse, error) {
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

func TestContextDeadlineHonoured(t *testing.T) {
	sc := startSidecar(t, blockingService{})
	c := attach(t, sc.path)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.UnreadCount(ctx, "u")
	if !errors.Is(err, ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow call: %v, want a deadline error", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := c.UnreadCount(ctx, "u"); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCanceled) {
		t.Fatalf("cancelled call: %v, want context.Canceled", err)
	}
}

func TestUnavailableWhenSidecarGone(t *testing.T) {
	sc := startSidecar(t, nil)
	c := attach(t, sc.path, WithProbeInterval(50*time.Millisecond))
	ctx := testCtx(t)
	if _, err := c.UnreadCount(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	if c.Exited() {
		t.Fatal("Exited while the sidecar runs")
	}

	sc.stop()
	_, err := c.UnreadCount(ctx, "u")
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("after the sidecar stopped: %v, want ErrUnavailable", err)
	}
	waitFor(t, "Exited reports the sidecar gone", c.Exited)
}

func TestAttachWithoutSidecar(t *testing.T) {
	dir := shortDir(t)
	_, err := Attach(testCtx(t), dir+"/none.sock")
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("attach to a missing socket: %v, want ErrUnavailable wrapping ENOENT", err)
	}
	if !strings.Contains(err.Error(), dir+"/none.sock") {
		t.Fatalf("error %q does not name the socket", err)
	}

	// A stale socket file: a server that is gone.
	sc := startSidecar(t, nil)
	sc.stop()
	if _, err := Attach(testCtx(t), sc.path); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("attach to a stopped sidecar: %v, want ErrUnavailable", err)
	}
}

// TestCloseNeverStopsSidecar serves a stand-in for go-plugin's controller,
// which go-plugin's Kill would call, and checks that Close never calls it
// and the sidecar keeps serving other hosts.
func TestCloseNeverStopsSidecar(t *testing.T) {
	var shutdowns atomic.Int32
	controller := grpc.ServiceDesc{
		ServiceName: "plugin.GRPCController",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Shutdown",
			Handler: func(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				if err := dec(&emptypb.Empty{}); err != nil {
					return nil, err
				}
				shutdowns.Add(1)
				return &emptypb.Empty{}, nil
			},
		}},
	}
	sc := startSidecar(t, nil, func(s *grpc.Server) { s.RegisterService(&controller, struct{}{}) })

	first, err := Attach(testCtx(t), sc.path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.UnreadCount(testCtx(t), "u"); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := first.UnreadCount(testCtx(t), "u"); !errors.Is(err, ErrClosed) {
		t.Fatalf("call after Close: %v, want ErrClosed", err)
	}
	if n := shutdowns.Load(); n != 0 {
		t.Fatalf("Close sent go-plugin's Shutdown %d times", n)
	}

	second := attach(t, sc.path)
	if _, err := second.UnreadCount(testCtx(t), "u"); err != nil {
		t.Fatalf("the sidecar stopped serving after a host closed: %v", err)
	}
}
