package service

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/sidecar/store"
)

func wantCode(tb testing.TB, err error, code codes.Code) {
	tb.Helper()
	if got := status.Code(err); got != code {
		tb.Fatalf("code %v (%v), want %v", got, err, code)
	}
}

func TestCreateReturnsStoredNotification(t *testing.T) {
	h := newHarness(t, Options{})
	before := time.Now().Add(-time.Second).UnixMilli()
	n := h.create(t, &heraldv1.NewNotification{
		UserId: "42", Type: "task.assigned", Title: "Task 17 assigned to you",
		Body: "body", Link: "/tasks/17", DataJson: `{"task":17}`,
	})
	if n.GetId() == "" || n.GetUserId() != "42" || n.GetTitle() != "Task 17 assigned to you" ||
		n.GetBody() != "body" || n.GetLink() != "/tasks/17" || n.GetIsRead() {
		t.Fatalf("unexpected notification %v", n)
	}
	if n.GetDataJson() != `{"task":17}` {
		t.Fatalf("data_json %q", n.GetDataJson())
	}
	if ms := n.GetCreatedAtUnixMs(); ms < before || ms > time.Now().Add(time.Second).UnixMilli() {
		t.Fatalf("created_at_unix_ms %d is not now", ms)
	}
	if err := notification.ValidateID("id", n.GetId()); err != nil {
		t.Fatalf("id %q: %v", n.GetId(), err)
	}
	// Without data, data_json stays empty rather than "null".
	plain := h.create(t, newNote("42", "plain"))
	if plain.GetDataJson() != "" {
		t.Fatalf("data_json %q, want empty", plain.GetDataJson())
	}
}

func TestIdempotencyKey(t *testing.T) {
	h := newHarness(t, Options{})
	keyed := newNote("u1", "first")
	keyed.IdempotencyKey = "event-17"
	first := h.create(t, keyed)

	retry := newNote("u1", "a retry may differ")
	retry.IdempotencyKey = "event-17"
	second := h.create(t, retry)
	if second.GetId() != first.GetId() || second.GetTitle() != "first" {
		t.Fatalf("retry returned %v, want the first notification %v", second, first)
	}
	if n := h.unread(t, "u1"); n != 1 {
		t.Fatalf("unread %d after a retried create, want 1", n)
	}

	// The same key of another user is another notification.
	other := newNote("u2", "first")
	other.IdempotencyKey = "event-17"
	if h.create(t, other).GetId() == first.GetId() {
		t.Fatal("the key of u1 matched a notification of u2")
	}

	// In a batch: a key seen before, and a key twice within the batch.
	batch := []*heraldv1.NewNotification{
		newNote("u1", "again"), newNote("u1", "new a"), newNote("u1", "new a twice"), newNote("u1", "no key"),
	}
	batch[0].IdempotencyKey = "event-17"
	batch[1].IdempotencyKey = "event-18"
	batch[2].IdempotencyKey = "event-18"
	resp, err := h.client.CreateNotifications(testCtx(t), &heraldv1.CreateNotificationsRequest{Notifications: batch})
	if err != nil {
		t.Fatal(err)
	}
	got := resp.GetNotifications()
	if len(got) != len(batch) {
		t.Fatalf("%d notifications back, want %d", len(got), len(batch))
	}
	if got[0].GetId() != first.GetId() {
		t.Fatalf("batch item 0 is %s, want the first notification %s", got[0].GetId(), first.GetId())
	}
	if got[1].GetId() != got[2].GetId() {
		t.Fatalf("one key twice in a batch gave two ids %s, %s", got[1].GetId(), got[2].GetId())
	}
	if got[3].GetId() == got[1].GetId() || got[3].GetTitle() != "no key" {
		t.Fatalf("batch item 3 is %v", got[3])
	}
	if n := h.unread(t, "u1"); n != 3 {
		t.Fatalf("unread %d, want 3 (first, event-18, no key)", n)
	}
}

func TestNotFound(t *testing.T) {
	h := newHarness(t, Options{})
	mine := h.create(t, newNote("u1", "mine"))
	theirs := h.create(t, newNote("u2", "theirs"))
	unknown := "01ARZ3NDEKTSV4RRFFQ69G5FAV"
	ctx := testCtx(t)

	cases := []struct {
		name string
		ids  []string
	}{
		{"unknown id", []string{unknown}},
		{"another user's id", []string{theirs.GetId()}},
		{"one known, one unknown", []string{mine.GetId(), unknown}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.client.MarkRead(ctx, &heraldv1.MarkReadRequest{UserId: "u1", Ids: tc.ids})
			wantCode(t, err, codes.NotFound)
			_, err = h.client.DeleteNotifications(ctx, &heraldv1.DeleteNotificationsRequest{UserId: "u1", Ids: tc.ids})
			wantCode(t, err, codes.NotFound)
		})
	}
	// A refused call changed nothing.
	if n := h.unread(t, "u1"); n != 1 {
		t.Fatalf("u1 unread %d, want 1", n)
	}
	if n := h.unread(t, "u2"); n != 1 {
		t.Fatalf("u2 unread %d, want 1", n)
	}
}

func TestReadAndDelete(t *testing.T) {
	h := newHarness(t, Options{})
	ctx := testCtx(t)
	var ids []string
	for i := range 4 {
		ids = append(ids, h.create(t, newNote("u1", fmt.Sprint("n", i))).GetId())
	}

	mr, err := h.client.MarkRead(ctx, &heraldv1.MarkReadRequest{UserId: "u1", Ids: ids[:2]})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(mr.Changed)
	if len(mr.GetChanged()) != 2 || mr.GetChanged()[0] != ids[0] || mr.GetChanged()[1] != ids[1] ||
		mr.GetUnreadCount() != 2 {
		t.Fatalf("mark read: %v", mr)
	}
	// Already read: no change, no error.
	mr, err = h.client.MarkRead(ctx, &heraldv1.MarkReadRequest{UserId: "u1", Ids: ids[:1]})
	if err != nil || len(mr.GetChanged()) != 0 || mr.GetUnreadCount() != 2 {
		t.Fatalf("mark read again: %v, %v", mr, err)
	}

	del, err := h.client.DeleteNotifications(ctx, &heraldv1.DeleteNotificationsRequest{UserId: "u1", Ids: ids[2:3]})
	if err != nil || del.GetUnreadCount() != 1 {
		t.Fatalf("delete: %v, %v", del, err)
	}
	all, err := h.client.MarkAllRead(ctx, &heraldv1.MarkAllReadRequest{UserId: "u1"})
	if err != nil || all.GetChanged() != 1 {
		t.Fatalf("mark all read: %v, %v", all, err)
	}
	if n := h.unread(t, "u1"); n != 0 {
		t.Fatalf("unread %d, want 0", n)
	}
	page, err := h.client.ListNotifications(ctx, &heraldv1.ListNotificationsRequest{UserId: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.GetNotifications()) != 3 {
		t.Fatalf("%d notifications listed after one delete, want 3", len(page.GetNotifications()))
	}
	for _, n := range page.GetNotifications() {
		if !n.GetIsRead() {
			t.Fatalf("%s is not read after MarkAllRead", n.GetId())
		}
	}
}

func TestPagination(t *testing.T) {
	h := newHarness(t, Options{})
	ctx := testCtx(t)
	const total = 120
	created, err := h.client.CreateNotifications(ctx, &heraldv1.CreateNotificationsRequest{
		Notifications: notes(total, func(i int, n *heraldv1.NewNotification) { n.UserId = "pager" }),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Every other one read, so unread_only has 60.
	var read []string
	for i, n := range created.GetNotifications() {
		if i%2 == 0 {
			read = append(read, n.GetId())
		}
	}
	if _, err := h.client.MarkRead(ctx, &heraldv1.MarkReadRequest{UserId: "pager", Ids: read}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name       string
		unreadOnly bool
		limit      int32
		wantPages  []int
	}{
		{"default limit", false, 0, []int{50, 50, 20}},
		{"limit 100", false, 100, []int{100, 20}},
		{"limit 7 unread only", true, 7, []int{7, 7, 7, 7, 7, 7, 7, 7, 4}},
		{"limit 60 unread only", true, 60, []int{60}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var sizes []int
			seen := map[string]bool{}
			prev := ""
			before := ""
			for {
				page, err := h.client.ListNotifications(ctx, &heraldv1.ListNotificationsRequest{
					UserId: "pager", UnreadOnly: tc.unreadOnly, Before: before, Limit: tc.limit,
				})
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, len(page.GetNotifications()))
				for _, n := range page.GetNotifications() {
					if prev != "" && n.GetId() >= prev {
						t.Fatalf("not newest first: %s after %s", n.GetId(), prev)
					}
					if tc.unreadOnly && n.GetIsRead() {
						t.Fatalf("read %s in an unread_only page", n.GetId())
					}
					prev = n.GetId()
					seen[n.GetId()] = true
				}
				if page.GetNext() == "" {
					break
				}
				before = page.GetNext()
				if len(sizes) > 50 {
					t.Fatal("pagination does not end")
				}
			}
			if fmt.Sprint(sizes) != fmt.Sprint(tc.wantPages) {
				t.Fatalf("page sizes %v, want %v", sizes, tc.wantPages)
			}
			want := total
			if tc.unreadOnly {
				want = total / 2
			}
			if len(seen) != want {
				t.Fatalf("%d distinct notifications, want %d", len(seen), want)
			}
		})
	}
}

func TestUnimplementedWithoutTokensOrPresence(t *testing.T) {
	h := newHarness(t, Options{})
	ctx := testCtx(t)
	_, err := h.client.IssueConnectToken(ctx, &heraldv1.IssueConnectTokenRequest{UserId: "u"})
	wantCode(t, err, codes.Unimplemented)
	if msg := status.Convert(err).Message(); msg == "" || msg == "method IssueConnectToken not implemented" {
		t.Fatalf("unclear message %q", msg)
	}
	_, err = h.client.Presence(ctx, &heraldv1.PresenceRequest{UserId: "u"})
	wantCode(t, err, codes.Unimplemented)
}

func TestTokenAndPresence(t *testing.T) {
	issued := make(chan time.Duration, 1)
	h := newHarness(t, Options{Tokens: fakeIssuer{ttl: issued}, Presence: fakePresence})
	ctx := testCtx(t)
	tok, err := h.client.IssueConnectToken(ctx, &heraldv1.IssueConnectTokenRequest{UserId: "u7"})
	if err != nil {
		t.Fatal(err)
	}
	if tok.GetToken() != "token-for-u7" || tok.GetExpiresAtUnixMs() != 1_700_000_000_000 {
		t.Fatalf("token response %v", tok)
	}
	if ttl := <-issued; ttl != DefaultTokenTTL {
		t.Fatalf("ttl 0 issued for %v, want %v", ttl, DefaultTokenTTL)
	}
	p, err := h.client.Presence(ctx, &heraldv1.PresenceRequest{UserId: "u7"})
	if err != nil {
		t.Fatal(err)
	}
	if p.GetConnections() != 3 || p.GetReplicas()["node-a"] != 2 || p.GetReplicas()["node-b"] != 1 {
		t.Fatalf("presence %v", p)
	}
}

func TestPresenceFailureIsUnavailable(t *testing.T) {
	h := newHarness(t, Options{Presence: func(context.Context, string) (map[string]int64, error) {
		return nil, errors.New("redis: connection refused")
	}})
	_, err := h.client.Presence(testCtx(t), &heraldv1.PresenceRequest{UserId: "u"})
	wantCode(t, err, codes.Unavailable)
}

func TestClosedStoreIsUnavailable(t *testing.T) {
	h := newHarness(t, Options{})
	if err := h.store.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	_, err := h.client.CreateNotification(ctx, &heraldv1.CreateNotificationRequest{Notification: newNote("u", "t")})
	wantCode(t, err, codes.Unavailable)
	_, err = h.client.UnreadCount(ctx, &heraldv1.UnreadCountRequest{UserId: "u"})
	wantCode(t, err, codes.Unavailable)
}

// TestStoreErrorMapping covers the mapping of errors a healthy test store
// cannot be made to return.
func TestStoreErrorMapping(t *testing.T) {
	s := New(Options{Store: &store.Store{}})
	live := context.Background()
	cancelled, cancel := context.WithCancel(live)
	cancel()
	cases := []struct {
		name string
		ctx  context.Context
		err  error
		want codes.Code
	}{
		{"not found", live, fmt.Errorf("mark read: %w", store.ErrNotFound), codes.NotFound},
		{"closed", live, store.ErrClosed, codes.Unavailable},
		{"deadline", live, fmt.Errorf("create: %w", context.DeadlineExceeded), codes.DeadlineExceeded},
		{"canceled", live, context.Canceled, codes.Canceled},
		{"caller gone", cancelled, errors.New("queue abandoned"), codes.Canceled},
		{"field error", live, &notification.FieldError{Field: "before", Problem: "bad"}, codes.InvalidArgument},
		{"anything else", live, errors.New("mmap: no space left on device"), codes.Internal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, s.fromStore(tc.ctx, "op", tc.err), tc.want)
		})
	}
}
