package gateway

import (
	"context"
	"testing"

	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/testing/wsclient"
)

func TestConnectSyncThenLive(t *testing.T) {
	e := newEnv(t, Options{})
	before := e.create("u1", 3)

	c, f := e.dial("u1", wsclient.Options{})
	if frames := c.Frames(); frames[0].Type != frameUnreadSync {
		t.Fatalf("first frame is %q, want unread_sync", frames[0].Type)
	}
	s := decodeSync(t, f)
	if len(s.Notifications) != 3 || s.UnreadCount != 3 || s.Truncated {
		t.Fatalf("sync = %d notifications, unread %d, truncated %v", len(s.Notifications), s.UnreadCount, s.Truncated)
	}
	for i, n := range s.Notifications {
		if n.ID != before[i].ID {
			t.Fatalf("sync[%d] = %s, want %s (oldest first)", i, n.ID, before[i].ID)
		}
	}
	if s.Seq != 3 {
		t.Fatalf("sync seq = %d, want 3", s.Seq)
	}

	created := e.create("u1", 1)[0]
	lf, err := c.WaitType(frameNotification, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	l := decodeLive(t, lf)
	if l.Notification.ID != created.ID || l.UnreadCount != 4 || l.Seq != s.Seq+1 {
		t.Fatalf("live frame = id %s unread %d seq %d; want %s 4 %d",
			l.Notification.ID, l.UnreadCount, l.Seq, created.ID, s.Seq+1)
	}
	if got := counter(t, e.m.UnreadSync); got != 1 {
		t.Fatalf("unread_sync counter = %v, want 1", got)
	}
	if e.gw.Count("u1") != 1 || e.gw.Connections() != 1 {
		t.Fatalf("Count = %d, Connections = %d", e.gw.Count("u1"), e.gw.Connections())
	}
}

func TestTokenInAuthorizationHeader(t *testing.T) {
	e := newEnv(t, Options{})
	c, _ := e.dial("u1", wsclient.Options{Token: e.token("u1"), TokenInHeader: true})
	e.create("u1", 1)
	if _, err := c.WaitType(frameNotification, waitTimeout); err != nil {
		t.Fatal(err)
	}
}

func TestOtherUsersGetNothing(t *testing.T) {
	e := newEnv(t, Options{})
	c1, _ := e.dial("u1", wsclient.Options{})
	c2, _ := e.dial("u2", wsclient.Options{})
	e.create("u1", 2)
	if _, err := c1.WaitN(wsclient.Type(frameNotification), 2, waitTimeout); err != nil {
		t.Fatal(err)
	}
	// u2's marker arrives after anything of u1 that could have leaked, since
	// both go through the same commit hook in commit order.
	e.create("u2", 1)
	if _, err := c2.WaitType(frameNotification, waitTimeout); err != nil {
		t.Fatal(err)
	}
	if n := len(notificationIDs(t, c2)); n != 1 {
		t.Fatalf("u2 got %d notifications, want 1", n)
	}
	_, _ = e.st.MarkAllRead(context.Background(), "u2")
}

// TestNoEncodingWithoutSockets: events of users without a socket here cost
// no encoding (no allocation at all).
func TestNoEncodingWithoutSockets(t *testing.T) {
	e := newEnv(t, Options{})
	n := &notification.Notification{ID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", UserID: "nobody", Type: "t", Title: "x"}
	evs := []notification.Event{{UserID: "nobody", Seq: 1, Kind: notification.KindCreated, Notification: n}}
	if allocs := testing.AllocsPerRun(100, func() { e.gw.OnCommit(evs) }); allocs != 0 {
		t.Fatalf("OnCommit for a user without sockets allocates %v times", allocs)
	}
}
