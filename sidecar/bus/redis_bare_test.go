package bus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/testing/rediskit"
)

// trio starts a Redis and three ready replicas.
func trio(t *testing.T) (*rediskit.Server, []*node) {
	t.Helper()
	srv := rediskit.Start(t)
	var nodes []*node
	for _, id := range []string{"A", "B", "C"} {
		nodes = append(nodes, newNode(t, srv, id, nil))
	}
	for _, n := range nodes {
		n.waitReady()
	}
	return srv, nodes
}

func publish(t *testing.T, srv *rediskit.Server, channel, payload string) {
	t.Helper()
	srv.Do(t, "PUBLISH", channel, payload)
}

// onlyNotification waits until n holds exactly one notification of user and
// returns it.
func onlyNotification(t *testing.T, n *node, user string) notification.Notification {
	t.Helper()
	waitFor(t, n.id+" has the bare notification", func() error {
		return errIf(len(n.rec.created(user)) != 1, "%d created", len(n.rec.created(user)))
	})
	got, err := n.store.Get(user, n.rec.created(user)[0])
	if err != nil {
		t.Fatalf("%s: get: %v", n.id, err)
	}
	return got
}

// TestBareMessageSameIDEverywhere: a bare message without an id, on the
// channel of a user nobody watches, is stored on every replica under one ID.
func TestBareMessageSameIDEverywhere(t *testing.T) {
	srv, nodes := trio(t)
	nodes[1].open("u7") // one replica watches, the others do not
	publish(t, srv, "notifications:u7", `{"title":"Build failed","body":"main is red","data":{"run":17}}`)

	var first notification.Notification
	for i, n := range nodes {
		got := onlyNotification(t, n, "u7")
		if i == 0 {
			first = got
			continue
		}
		if got.ID != first.ID || !got.CreatedAt.Equal(first.CreatedAt) {
			t.Fatalf("%s stored %s at %v, A stored %s at %v", n.id, got.ID, got.CreatedAt, first.ID, first.CreatedAt)
		}
	}
	if first.Type != "message" || first.UserID != "u7" || first.Title != "Build failed" || first.IsRead {
		t.Fatalf("stored %+v", first)
	}
	if string(first.Data) != `{"run":17}` {
		t.Fatalf("data %s", first.Data)
	}
	for _, n := range nodes {
		waitFor(t, n.id+" counted it", func() error {
			return errIf(n.metric("herald_bare_messages_total", "result", "accepted") != 1, "not yet")
		})
		if c := n.unread("u7"); c != 1 {
			t.Fatalf("%s: unread %d", n.id, c)
		}
	}

	// A replica that joins later gets it from the stream, under the same ID.
	d := newNode(t, srv, "D", nil)
	d.waitReady()
	if got := onlyNotification(t, d, "u7"); got.ID != first.ID {
		t.Fatalf("D stored %s, want %s", got.ID, first.ID)
	}

	// The same payload again is the same notification.
	publish(t, srv, "notifications:u7", `{"title":"Build failed","body":"main is red","data":{"run":17}}`)
	waitFor(t, "second copy handled", func() error {
		return errIf(nodes[0].metric("herald_bare_messages_total", "result", "accepted") != 2, "not yet")
	})
	for _, n := range nodes {
		if c := len(n.rec.created("u7")); c != 1 {
			t.Fatalf("%s: %d created events after a repeated payload", n.id, c)
		}
	}
}

// TestBareMessageFields: ids and user ids given as numbers or ULIDs, and a
// created_at, are honoured.
func TestBareMessageFields(t *testing.T) {
	srv, nodes := trio(t)
	a := nodes[0]
	id := ulid.Make().String()
	publish(t, srv, "notifications:u8", fmt.Sprintf(`{"id":%q,"title":"with ulid","type":"x.y"}`, id))
	if got := onlyNotification(t, a, "u8"); got.ID != id || got.Type != "x.y" {
		t.Fatalf("stored %s type %s, want %s x.y", got.ID, got.Type, id)
	}

	publish(t, srv, "notifications:42", `{"id":17,"user_id":42,"title":"row","created_at":"2026-01-02T03:04:05Z"}`)
	got := onlyNotification(t, a, "42")
	if got.CreatedAt.Format("2006-01-02T15:04:05Z07:00") != "2026-01-02T03:04:05Z" {
		t.Fatalf("created_at %v", got.CreatedAt)
	}
	for _, n := range nodes[1:] {
		if other := onlyNotification(t, n, "42"); other.ID != got.ID {
			t.Fatalf("%s stored %s, A %s", n.id, other.ID, got.ID)
		}
	}
}

// TestBareMessageInvalidDropped: garbage is dropped, counted, and leaves
// the bus working.
func TestBareMessageInvalidDropped(t *testing.T) {
	srv := rediskit.Start(t)
	a := newNode(t, srv, "A", nil)
	a.waitReady()
	a.open("u9")
	other, err := a.store.Create(context.Background(), []notification.Draft{{UserID: "u10", Type: "t", Title: "u10's"}})
	if err != nil {
		t.Fatal(err)
	}
	a.logs.allow("remote change dropped: invalid")
	cases := []struct{ name, payload, result string }{
		{"id of another user's notification", `{"title":"t","id":"` + other[0].ID + `"}`, "invalid"},
		{"not json", `hello`, "invalid_json"},
		{"not an object", `[1,2]`, "invalid_json"},
		{"invalid utf-8", "{\"title\":\"\xff\"}", "invalid_utf8"},
		{"no title", `{"body":"x"}`, "invalid"},
		{"data not object", `{"title":"t","data":[1]}`, "invalid"},
		{"user id object", `{"title":"t","user_id":{}}`, "invalid"},
		{"user id of another channel", `{"title":"t","user_id":"u10"}`, "invalid"},
		{"title too long", `{"title":"` + strings.Repeat("a", 2000) + `"}`, "invalid"},
	}
	want := map[string]float64{}
	for _, c := range cases {
		publish(t, srv, "notifications:u9", c.payload)
		want[c.result]++
	}
	for result, n := range want {
		waitFor(t, "dropped "+result, func() error {
			got := a.metric("herald_bare_messages_total", "result", result)
			return errIf(got != n, "%s: %v, want %v", result, got, n)
		})
	}
	// Still working.
	publish(t, srv, "notifications:u9", `{"title":"fine"}`)
	onlyNotification(t, a, "u9")
	if c, _ := a.store.UnreadCount("u9"); c != 1 {
		t.Fatalf("unread %d", c)
	}
	waitFor(t, "accepted counted", func() error {
		n := a.metric("herald_bare_messages_total", "result", "accepted")
		return errIf(n != 1, "accepted %v", n)
	})
}
