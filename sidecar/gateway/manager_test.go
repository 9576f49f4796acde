package gateway

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhq/herald/sidecar/metrics"
	"github.com/heraldhq/herald/testing/wsclient"
)

// TestManyTabsAndCap is BH-05 on one replica: several tabs of a user, one
// closed cleanly, one reset; the rest keep receiving; the cap refuses the
// excess with 1008; other users are unaffected.
func TestManyTabsAndCap(t *testing.T) {
	const limit = 10
	e := newEnv(t, Options{MaxConnsPerUser: limit})
	t1, _ := e.dial("u1", wsclient.Options{})
	t2, _ := e.dial("u1", wsclient.Options{})
	t3, _ := e.dial("u1", wsclient.Options{})
	other, _ := e.dial("u2", wsclient.Options{})

	n1 := e.create("u1", 1)[0]
	for i, c := range []*wsclient.Client{t1, t2, t3} {
		if _, err := c.WaitType(frameNotification, waitTimeout); err != nil {
			t.Fatalf("tab %d: %v", i+1, err)
		}
	}

	t2.Close()
	t3.Kill()
	eventually(t, "closed tabs to leave the manager", func() bool { return e.gw.Count("u1") == 1 })
	n2 := e.create("u1", 1)[0]
	if _, err := t1.WaitN(wsclient.Type(frameNotification), 2, waitTimeout); err != nil {
		t.Fatal(err)
	}
	if got := notificationIDs(t, t1); !slices.Equal(got, []string{n1.ID, n2.ID}) {
		t.Fatalf("tab 1 got %v, want [%s %s]", got, n1.ID, n2.ID)
	}
	for i, c := range []*wsclient.Client{t2, t3} {
		if slices.Contains(notificationIDs(t, c), n2.ID) {
			t.Fatalf("closed tab %d got n2", i+2)
		}
	}

	// Fill up to the cap, then 5 over it.
	for range limit - 1 {
		e.dial("u1", wsclient.Options{})
	}
	if got := e.gw.Count("u1"); got != limit {
		t.Fatalf("Count = %d, want %d", got, limit)
	}
	for i := range 5 {
		c := e.dialNoSync("u1", wsclient.Options{})
		code, reason, err := c.WaitClosed(waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if code != int(ClosePolicy) || reason != "too many connections" {
			t.Fatalf("over-cap socket %d closed with %d %q, want 1008", i, code, reason)
		}
		if len(c.Frames()) != 0 {
			t.Fatalf("over-cap socket %d got frames: %v", i, c.Frames()[0].Type)
		}
	}
	if got := e.gw.Count("u1"); got != limit {
		t.Fatalf("Count after refusals = %d, want %d", got, limit)
	}
	if got := counter(t, e.m.Rejects.WithLabelValues(metrics.RejectUserLimit)); got != 5 {
		t.Fatalf("user_limit rejects = %v, want 5", got)
	}

	// The other user is unaffected.
	e.create("u2", 1)
	if _, err := other.WaitType(frameNotification, waitTimeout); err != nil {
		t.Fatal(err)
	}
	if e.gw.Count("u2") != 1 {
		t.Fatalf("u2 Count = %d", e.gw.Count("u2"))
	}
}

// TestDefaultConnCapIs32: with the default options a user may hold 32
// sockets; the 33rd is upgraded and closed at once with 1008 "too many
// connections", and the first 32 stay open and keep receiving.
func TestDefaultConnCapIs32(t *testing.T) {
	const limit = 32 // README and --max-conns-per-user; not DefaultMaxConnsPerUser, to pin the documented value
	e := newEnv(t, Options{})
	tabs := make([]*wsclient.Client, limit)
	for i := range tabs {
		tabs[i], _ = e.dial("u1", wsclient.Options{})
	}
	if got := e.gw.Count("u1"); got != limit {
		t.Fatalf("Count = %d, want %d", got, limit)
	}

	over := e.dialNoSync("u1", wsclient.Options{})
	code, reason, err := over.WaitClosed(waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if code != int(ClosePolicy) || reason != "too many connections" {
		t.Fatalf("socket %d closed with %d %q, want 1008 \"too many connections\"", limit+1, code, reason)
	}
	if len(over.Frames()) != 0 {
		t.Fatalf("socket %d got frames: %v", limit+1, over.Frames()[0].Type)
	}
	if got := counter(t, e.m.Rejects.WithLabelValues(metrics.RejectUserLimit)); got != 1 {
		t.Fatalf("user_limit rejects = %v, want 1", got)
	}

	// The first 32 are still open and still served.
	if got := e.gw.Count("u1"); got != limit {
		t.Fatalf("Count after the refusal = %d, want %d", got, limit)
	}
	n := e.create("u1", 1)[0]
	for i, c := range tabs {
		if _, err := c.WaitType(frameNotification, waitTimeout); err != nil {
			t.Fatalf("tab %d: %v", i+1, err)
		}
		if got := notificationIDs(t, c); !slices.Equal(got, []string{n.ID}) {
			t.Fatalf("tab %d got %v, want [%s]", i+1, got, n.ID)
		}
		if code, reason, ended := c.CloseStatus(); ended {
			t.Fatalf("tab %d closed: %d %q", i+1, code, reason)
		}
	}
}

func TestInterestFirstAndLastSocket(t *testing.T) {
	e := newEnv(t, Options{})
	a, _ := e.dial("u1", wsclient.Options{})
	b, _ := e.dial("u1", wsclient.Options{})
	if got := e.interest.Calls(); !slices.Equal(got, []string{"watch u1"}) {
		t.Fatalf("after two sockets: %v", got)
	}
	a.Close()
	eventually(t, "one socket left", func() bool { return e.gw.Count("u1") == 1 })
	if got := e.interest.Calls(); !slices.Equal(got, []string{"watch u1"}) {
		t.Fatalf("after closing one of two: %v", got)
	}
	b.Kill()
	eventually(t, "unwatch", func() bool { return len(e.interest.Calls()) == 2 })
	if got := e.interest.Calls(); !slices.Equal(got, []string{"watch u1", "unwatch u1"}) {
		t.Fatalf("after closing both: %v", got)
	}
}

// TestConcurrentConnectDisconnectPush churns sockets of a few users while
// notifications are pushed to them; run with -race. At the end the manager
// is empty and every user's Watch/Unwatch calls alternate.
func TestConcurrentConnectDisconnectPush(t *testing.T) {
	e := newEnv(t, Options{MaxConnsPerUser: 4})
	users := []string{"a", "b", "c"}
	stop := make(chan struct{})
	var pushers sync.WaitGroup
	for _, u := range users {
		pushers.Add(1)
		go func() {
			defer pushers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := e.st.Create(t.Context(), drafts(u, 1)); err != nil {
					t.Errorf("create: %v", err)
					return
				}
			}
		}()
	}
	var clients sync.WaitGroup
	for w := range 8 {
		clients.Add(1)
		go func() {
			defer clients.Done()
			for i := range 15 {
				u := users[(w+i)%len(users)]
				c, _, err := wsclient.Dial(e.url, wsclient.Options{Token: e.token(u)})
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				// Over-cap sockets are closed at once; others sync first.
				_, _ = c.WaitType(frameUnreadSync, waitTimeout)
				if i%2 == 0 {
					c.Close()
				} else {
					c.Kill()
				}
			}
		}()
	}
	clients.Wait()
	close(stop)
	pushers.Wait()
	eventually(t, "the manager to empty", func() bool { return e.gw.Connections() == 0 })
	for _, u := range users {
		var mine []string
		for _, call := range e.interest.Calls() {
			if strings.HasSuffix(call, " "+u) {
				mine = append(mine, call)
			}
		}
		for i, call := range mine {
			want := "watch " + u
			if i%2 == 1 {
				want = "unwatch " + u
			}
			if call != want {
				t.Fatalf("user %s call %d = %q, want %q (calls %v)", u, i, call, want, mine)
			}
		}
		if len(mine)%2 != 0 {
			t.Fatalf("user %s ends watched: %v", u, mine)
		}
	}
	if g := gauge(t, e.m.Connections); g != 0 {
		t.Fatalf("connections gauge = %v, want 0", g)
	}
}

// drafts returns n drafts for user.
func drafts(user string, n int) []notificationDraft {
	out := make([]notificationDraft, n)
	for i := range out {
		out[i] = notificationDraft{UserID: user, Type: "test", Title: fmt.Sprintf("t%d", i)}
	}
	return out
}
