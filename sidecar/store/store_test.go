package store

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/sidecar/notification"
)

func TestCreateThenUnreadSnapshot(t *testing.T) {
	s, rec := openTest(t, nil)
	created := mustCreate(t, s, "42", "a", "b", "c")

	for i, n := range created {
		if n.UserID != "42" || n.IsRead || n.ID == "" {
			t.Fatalf("created[%d] = %+v", i, n)
		}
		if i > 0 && n.ID <= created[i-1].ID {
			t.Fatalf("ids not increasing: %s then %s", created[i-1].ID, n.ID)
		}
		if !n.CreatedAt.Equal(n.CreatedAt.Truncate(time.Millisecond)) {
			t.Fatalf("created_at %v has sub-millisecond precision", n.CreatedAt)
		}
	}

	snap, err := s.Unread("42", 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(snap.Notifications); !slices.Equal(got, ids(created)) {
		t.Fatalf("unread ids %v, want %v (oldest first)", got, ids(created))
	}
	if snap.UnreadCount != 3 || snap.Truncated || snap.Seq != 3 {
		t.Fatalf("snapshot count=%d truncated=%v seq=%d, want 3 false 3", snap.UnreadCount, snap.Truncated, snap.Seq)
	}

	snap, err = s.Unread("42", 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(snap.Notifications); !slices.Equal(got, ids(created[1:])) || !snap.Truncated || snap.UnreadCount != 3 {
		t.Fatalf("limit 2: ids %v truncated %v count %d; want the newest two, true, 3", got, snap.Truncated, snap.UnreadCount)
	}

	evs := rec.ofUser("42")
	if len(evs) != 3 {
		t.Fatalf("got %d events, want 3", len(evs))
	}
	for i, ev := range evs {
		if ev.Kind != notification.KindCreated || ev.Seq != uint64(i+1) || ev.UnreadCount != i+1 ||
			ev.Notification == nil || ev.Notification.ID != created[i].ID {
			t.Fatalf("event %d = %+v", i, ev)
		}
	}

	// Another user whose id starts with the same bytes sees nothing.
	if snap, err := s.Unread("4", 10); err != nil || len(snap.Notifications) != 0 || snap.UnreadCount != 0 {
		t.Fatalf("user 4 sees %+v, %v", snap, err)
	}
}

func TestGetRoundTripsEveryField(t *testing.T) {
	s, _ := openTest(t, nil)
	d := notification.Draft{
		UserID: "u1", Type: "mention", Title: "héllo", Body: "body", Link: "/x",
		Data: []byte(`{"task":17}`),
	}
	ns, err := s.Create(ctxT(t), []notification.Draft{d})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get("u1", ns[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != d.Type || got.Title != d.Title || got.Body != d.Body || got.Link != d.Link ||
		string(got.Data) != string(d.Data) || !got.CreatedAt.Equal(ns[0].CreatedAt) || got.IsRead {
		t.Fatalf("get = %+v, created %+v", got, ns[0])
	}
	if _, err := s.Get("u2", ns[0].ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("another user's get: %v, want ErrNotFound", err)
	}
	if _, err := s.Get("u1", "nope"); !notification.IsFieldError(err) {
		t.Fatalf("get of a malformed id: %v, want a field error", err)
	}
}

func TestMarkReadSemantics(t *testing.T) {
	s, rec := openTest(t, nil)
	ns := mustCreate(t, s, "u", "a", "b", "c")
	other := mustCreate(t, s, "v", "x")
	ctx := ctxT(t)

	changed, unread, err := s.MarkRead(ctx, "u", []string{ns[0].ID, ns[0].ID, ns[1].ID})
	if err != nil || !slices.Equal(changed, []string{ns[0].ID, ns[1].ID}) || unread != 1 {
		t.Fatalf("mark read = %v %d %v", changed, unread, err)
	}
	// Already read: no change, no error, no event.
	before := len(rec.all())
	changed, unread, err = s.MarkRead(ctx, "u", []string{ns[0].ID})
	if err != nil || len(changed) != 0 || unread != 1 {
		t.Fatalf("mark read again = %v %d %v", changed, unread, err)
	}
	if len(rec.all()) != before {
		t.Fatalf("marking read ids already read emitted an event")
	}
	// Unknown (or another user's) id: ErrNotFound and nothing changed.
	_, _, err = s.MarkRead(ctx, "u", []string{ns[2].ID, other[0].ID})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("mark read of another user's id: %v, want ErrNotFound", err)
	}
	if n, _ := s.UnreadCount("u"); n != 1 {
		t.Fatalf("a failed mark read changed the count to %d", n)
	}
	if _, _, err := s.MarkRead(ctx, "u", []string{"bad"}); !notification.IsFieldError(err) {
		t.Fatalf("malformed id: %v, want a field error", err)
	}

	evs := rec.ofUser("u")
	last := evs[len(evs)-1]
	if last.Kind != notification.KindRead || !slices.Equal(last.IDs, []string{ns[0].ID, ns[1].ID}) ||
		last.UnreadCount != 1 || last.Seq != 4 {
		t.Fatalf("read event = %+v", last)
	}

	n, err := s.MarkAllRead(ctx, "u")
	if err != nil || n != 1 {
		t.Fatalf("mark all read = %d %v, want 1", n, err)
	}
	if n, err := s.MarkAllRead(ctx, "u"); err != nil || n != 0 {
		t.Fatalf("second mark all read = %d %v, want 0", n, err)
	}
	evs = rec.ofUser("u")
	if last := evs[len(evs)-1]; last.Kind != notification.KindReadAll || last.Seq != 5 || len(evs) != 5 {
		t.Fatalf("read_all events: %+v", evs)
	}
	checkConsistent(t, s, "u")
	checkConsistent(t, s, "v")
}

func TestDelete(t *testing.T) {
	s, rec := openTest(t, nil)
	ns := mustCreate(t, s, "u", "a", "b")
	ctx := ctxT(t)
	if _, _, err := s.MarkRead(ctx, "u", []string{ns[0].ID}); err != nil {
		t.Fatal(err)
	}
	unread, err := s.Delete(ctx, "u", []string{ns[0].ID, ns[1].ID})
	if err != nil || unread != 0 {
		t.Fatalf("delete = %d %v", unread, err)
	}
	if _, err := s.Get("u", ns[0].ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := s.Delete(ctx, "u", []string{ns[0].ID}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete again: %v, want ErrNotFound", err)
	}
	evs := rec.ofUser("u")
	last := evs[len(evs)-1]
	if last.Kind != notification.KindDeleted || !slices.Equal(last.IDs, ids(ns)) || last.UnreadCount != 0 {
		t.Fatalf("deleted event = %+v", last)
	}
	checkConsistent(t, s, "u")
}

func TestReopenKeepsDataAndNodeID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ns := mustCreate(t, s, "u", "a")
	if err := s.SetNodeID(ctxT(t), "node-a"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCursor(ctxT(t), "stream", "1-0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Create(ctxT(t), []notification.Draft{draft("u", "late")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("create after close: %v, want ErrClosed", err)
	}
	if _, err := s.Unread("u", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("unread after close: %v, want ErrClosed", err)
	}

	s, err = Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.NodeID() != "node-a" {
		t.Fatalf("node id %q after reopen", s.NodeID())
	}
	if c, err := s.Cursor("stream"); err != nil || c != "1-0" {
		t.Fatalf("cursor = %q %v", c, err)
	}
	if c, err := s.Cursor("other"); err != nil || c != "" {
		t.Fatalf("unknown cursor = %q %v", c, err)
	}
	if _, err := s.Get("u", ns[0].ID); err != nil {
		t.Fatalf("get after reopen: %v", err)
	}
}
