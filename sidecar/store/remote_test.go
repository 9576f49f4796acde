package store

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/heraldhq/herald/sidecar/notification"
)

// remoteNotification returns a notification as another replica made it.
func remoteNotification(user string, at time.Time) *notification.Notification {
	id := ulid.MustNew(ulid.Timestamp(at), ulid.DefaultEntropy())
	return &notification.Notification{
		ID: id.String(), UserID: user, Type: "t", Title: "remote",
		CreatedAt: ulid.Time(id.Time()).UTC(),
	}
}

func created(n *notification.Notification) notification.Change {
	return notification.Change{Kind: notification.KindCreated, Origin: "b", UserID: n.UserID, Notification: n}
}

func TestApplyRemoteCreatedTwiceIsOneEvent(t *testing.T) {
	s, rec := openTest(t, func(o *Options) { o.Replicated = true })
	n := remoteNotification("u", time.Now())
	for i, want := range []bool{true, false} {
		changed, err := s.ApplyRemote(ctxT(t), created(n), "stream", "1-"+string(rune('0'+i)))
		if err != nil || changed != want {
			t.Fatalf("apply %d: changed=%v err=%v, want %v", i, changed, err, want)
		}
	}
	evs := rec.ofUser("u")
	if len(evs) != 1 || evs[0].Kind != notification.KindCreated || evs[0].Notification.ID != n.ID || evs[0].Seq != 1 {
		t.Fatalf("events %+v, want one created", evs)
	}
	got, err := s.Get("u", n.ID)
	if err != nil || !got.CreatedAt.Equal(n.CreatedAt) || got.IsRead {
		t.Fatalf("stored %+v %v", got, err)
	}
	// The cursor moved in the same transaction, even for the no-op.
	if c, _ := s.Cursor("stream"); c != "1-1" {
		t.Fatalf("cursor %q, want 1-1", c)
	}
	// Remote changes never reach the outbox.
	if d, _ := s.OutboxDepth(); d != 0 {
		t.Fatalf("outbox depth %d after remote changes", d)
	}
}

func TestApplyRemoteDeletedThenReplayedCreatedStaysDeleted(t *testing.T) {
	s, rec := openTest(t, nil)
	n := remoteNotification("u", time.Now())
	ctx := ctxT(t)
	if _, err := s.ApplyRemote(ctx, created(n), "", ""); err != nil {
		t.Fatal(err)
	}
	del := notification.Change{Kind: notification.KindDeleted, UserID: "u", IDs: []string{n.ID}}
	if changed, err := s.ApplyRemote(ctx, del, "", ""); err != nil || !changed {
		t.Fatalf("delete: %v %v", changed, err)
	}
	if changed, err := s.ApplyRemote(ctx, del, "", ""); err != nil || changed {
		t.Fatalf("delete again: %v %v, want no change", changed, err)
	}
	if changed, err := s.ApplyRemote(ctx, created(n), "", ""); err != nil || changed {
		t.Fatalf("replayed created: %v %v, want no change", changed, err)
	}
	if _, err := s.Get("u", n.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted notification came back: %v", err)
	}

	// A deleted that arrives before its created also keeps it out.
	early := remoteNotification("u", time.Now())
	if _, err := s.ApplyRemote(ctx, notification.Change{Kind: notification.KindDeleted, UserID: "u", IDs: []string{early.ID}}, "", ""); err != nil {
		t.Fatal(err)
	}
	if changed, _ := s.ApplyRemote(ctx, created(early), "", ""); changed {
		t.Fatalf("created after its deleted was inserted")
	}
	if kinds := eventKinds(rec.ofUser("u")); !slices.Equal(kinds, []notification.Kind{notification.KindCreated, notification.KindDeleted}) {
		t.Fatalf("events %v", kinds)
	}
	checkConsistent(t, s, "u")
}

func TestApplyRemoteReadOfUnknownThenCreatedIsUnread(t *testing.T) {
	s, rec := openTest(t, nil)
	n := remoteNotification("u", time.Now())
	ctx := ctxT(t)
	read := notification.Change{Kind: notification.KindRead, UserID: "u", IDs: []string{n.ID}}
	if changed, err := s.ApplyRemote(ctx, read, "", ""); err != nil || changed {
		t.Fatalf("read of unknown: %v %v, want no change and no error", changed, err)
	}
	if changed, err := s.ApplyRemote(ctx, created(n), "", ""); err != nil || !changed {
		t.Fatalf("created: %v %v", changed, err)
	}
	if got, _ := s.Get("u", n.ID); got.IsRead {
		t.Fatalf("created after an early read is read; a replay of the stream leaves it unread")
	}
	// The read applied now changes it, once.
	for i, want := range []bool{true, false} {
		if changed, err := s.ApplyRemote(ctx, read, "", ""); err != nil || changed != want {
			t.Fatalf("read %d: %v %v, want %v", i, changed, err, want)
		}
	}
	evs := rec.ofUser("u")
	if len(evs) != 2 || evs[1].Kind != notification.KindRead || !slices.Equal(evs[1].IDs, []string{n.ID}) || evs[1].Seq != 2 {
		t.Fatalf("events %+v", evs)
	}
}

func TestApplyRemoteReadAllUpTo(t *testing.T) {
	s, rec := openTest(t, nil)
	ns := mustCreate(t, s, "u", "a", "b", "c")
	ctx := ctxT(t)

	upToB := notification.Change{Kind: notification.KindReadAll, UserID: "u", UpTo: ns[1].ID}
	if changed, err := s.ApplyRemote(ctx, upToB, "", ""); err != nil || !changed {
		t.Fatalf("read_all up to b: %v %v", changed, err)
	}
	evs := rec.ofUser("u")
	last := evs[len(evs)-1]
	// c stays unread, so sockets hear which ids were read, not "all read".
	if last.Kind != notification.KindRead || !slices.Equal(last.IDs, ids(ns[:2])) || last.UnreadCount != 1 {
		t.Fatalf("event %+v, want read of a and b with 1 unread", last)
	}
	if changed, _ := s.ApplyRemote(ctx, upToB, "", ""); changed {
		t.Fatalf("second read_all up to b changed something")
	}

	all := notification.Change{Kind: notification.KindReadAll, UserID: "u"}
	if changed, err := s.ApplyRemote(ctx, all, "", ""); err != nil || !changed {
		t.Fatalf("read_all: %v %v", changed, err)
	}
	evs = rec.ofUser("u")
	if last := evs[len(evs)-1]; last.Kind != notification.KindReadAll || last.UnreadCount != 0 {
		t.Fatalf("event %+v, want read_all", last)
	}
	checkConsistent(t, s, "u")
}

func TestApplyRemoteRejectsInvalidChanges(t *testing.T) {
	s, rec := openTest(t, nil)
	good := remoteNotification("u", time.Now())
	badTitle := *good
	badTitle.Title = ""
	otherUser := *good
	otherUser.UserID = "v"
	noTime := *good
	noTime.CreatedAt = time.Time{}
	tests := []struct {
		name string
		c    notification.Change
	}{
		{"empty user", notification.Change{Kind: notification.KindRead, IDs: []string{good.ID}}},
		{"unknown kind", notification.Change{Kind: "explode", UserID: "u"}},
		{"created without notification", notification.Change{Kind: notification.KindCreated, UserID: "u"}},
		{"created with empty title", created(&badTitle)},
		{"created for another user", notification.Change{Kind: notification.KindCreated, UserID: "u", Notification: &otherUser}},
		{"created without time", created(&noTime)},
		{"read without ids", notification.Change{Kind: notification.KindRead, UserID: "u"}},
		{"read of a bad id", notification.Change{Kind: notification.KindRead, UserID: "u", IDs: []string{"x"}}},
		{"deleted of a bad id", notification.Change{Kind: notification.KindDeleted, UserID: "u", IDs: []string{good.ID, ""}}},
		{"read_all up to a bad id", notification.Change{Kind: notification.KindReadAll, UserID: "u", UpTo: "nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changed, err := s.ApplyRemote(ctxT(t), tt.c, "stream", "9-9")
			if !notification.IsFieldError(err) || changed {
				t.Fatalf("changed=%v err=%v, want a field error", changed, err)
			}
		})
	}
	if c, _ := s.Cursor("stream"); c != "" {
		t.Fatalf("an invalid change moved the cursor to %q", c)
	}
	if n := len(rec.all()); n != 0 {
		t.Fatalf("%d events from invalid changes", n)
	}
}

func eventKinds(evs []notification.Event) []notification.Kind {
	out := make([]notification.Kind, len(evs))
	for i, ev := range evs {
		out[i] = ev.Kind
	}
	return out
}

// TestApplyRemoteBatchInOrder: a batch is applied change by change in its
// order, in one commit: a read and a delete see the creates before them,
// a duplicate changes nothing, an invalid change is skipped alone, and the
// events come out in the batch's order.
func TestApplyRemoteBatchInOrder(t *testing.T) {
	s, rec := openTest(t, func(o *Options) { o.Replicated = true })
	now := time.Now()
	a, b := remoteNotification("u", now), remoteNotification("u", now.Add(time.Millisecond))
	other := remoteNotification("v", now)
	bad := created(remoteNotification("u", now))
	bad.Notification.Title = "" // invalid: a title is required
	commits := s.commits.Load()

	results, err := s.ApplyRemoteBatch(ctxT(t), []notification.Change{
		created(a),
		created(other),
		bad,
		created(b),
		created(a), // a duplicate of the first
		{Kind: notification.KindRead, Origin: "b", UserID: "u", IDs: []string{a.ID}},
		{Kind: notification.KindDeleted, Origin: "b", UserID: "u", IDs: []string{b.ID}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.commits.Load() - commits; got != 1 {
		t.Fatalf("%d commits for one batch, want 1", got)
	}
	wantChanged := []bool{true, true, false, true, false, true, true}
	for i, res := range results {
		if res.Changed != wantChanged[i] {
			t.Errorf("change %d: changed=%v, want %v", i, res.Changed, wantChanged[i])
		}
		if (res.Invalid != nil) != (i == 2) || (i == 2 && !notification.IsFieldError(res.Invalid)) {
			t.Errorf("change %d: invalid=%v", i, res.Invalid)
		}
	}

	var kinds []notification.Kind
	var counts []int
	for _, ev := range rec.ofUser("u") {
		kinds = append(kinds, ev.Kind)
		counts = append(counts, ev.UnreadCount)
	}
	wantKinds := []notification.Kind{notification.KindCreated, notification.KindCreated, notification.KindRead, notification.KindDeleted}
	if !slices.Equal(kinds, wantKinds) || !slices.Equal(counts, []int{1, 2, 1, 0}) {
		t.Fatalf("events of u: %v with counts %v, want %v with 1 2 1 0", kinds, counts, wantKinds)
	}
	if n, _ := s.UnreadCount("u"); n != 0 {
		t.Fatalf("unread count of u %d, want 0", n)
	}
	if got, err := s.Get("u", a.ID); err != nil || !got.IsRead {
		t.Fatalf("a: %+v %v, want read", got, err)
	}
	if _, err := s.Get("u", b.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("b: %v, want deleted", err)
	}
	if n, _ := s.UnreadCount("v"); n != 1 {
		t.Fatalf("unread count of v %d, want 1", n)
	}
	checkConsistent(t, s, "u")
}

// TestApplyRemoteBatchAllInvalid: a batch of only invalid changes answers
// without a commit.
func TestApplyRemoteBatchAllInvalid(t *testing.T) {
	s, _ := openTest(t, nil)
	commits := s.commits.Load()
	results, err := s.ApplyRemoteBatch(ctxT(t), []notification.Change{{Kind: "nope", UserID: "u"}})
	if err != nil || len(results) != 1 || !notification.IsFieldError(results[0].Invalid) {
		t.Fatalf("results %+v err %v, want one invalid", results, err)
	}
	if s.commits.Load() != commits {
		t.Fatal("an all-invalid batch committed")
	}
}

// TestApplyRemoteRefusesAnotherUsersID: a remote created whose ID is
// already another user's notification is refused as invalid (a bare
// message can carry any ID), alone: the rest of its batch applies.
func TestApplyRemoteRefusesAnotherUsersID(t *testing.T) {
	s, rec := openTest(t, nil)
	ctx := ctxT(t)
	mine := mustCreate(t, s, "owner", "mine")[0]
	stolen := remoteNotification("thief", time.Now())
	stolen.ID = mine.ID

	if _, err := s.ApplyRemote(ctx, created(stolen), "stream", "9-9"); !notification.IsFieldError(err) {
		t.Fatalf("ApplyRemote = %v, want a field error", err)
	}
	if c, _ := s.Cursor("stream"); c != "" {
		t.Fatalf("cursor %q stored for a refused change", c)
	}
	fine := remoteNotification("thief", time.Now())
	results, err := s.ApplyRemoteBatch(ctx, []notification.Change{created(stolen), created(fine)})
	if err != nil {
		t.Fatal(err)
	}
	if !notification.IsFieldError(results[0].Invalid) || results[0].Changed {
		t.Fatalf("stolen id: %+v, want invalid", results[0])
	}
	if results[1].Invalid != nil || !results[1].Changed {
		t.Fatalf("the valid change of the batch: %+v, want applied", results[1])
	}
	if n, _ := s.UnreadCount("thief"); n != 1 {
		t.Fatalf("thief has %d unread, want 1 (only the valid one)", n)
	}
	if got, err := s.Get("owner", mine.ID); err != nil || got.Title != "mine" {
		t.Fatalf("owner's notification: %+v %v", got, err)
	}
	if evs := rec.ofUser("thief"); len(evs) != 1 || evs[0].Notification.ID != fine.ID {
		t.Fatalf("events of thief: %+v, want only the valid created", evs)
	}
	checkConsistent(t, s, "thief")
}
