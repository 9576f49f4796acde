package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sidecar/auth"
	"github.com/heraldhq/herald/sidecar/config"
	"github.com/heraldhq/herald/testing/heraldtest"
	"github.com/heraldhq/herald/testing/rediskit"
	"github.com/heraldhq/herald/testing/wsclient"
)

// replWait bounds every wait of the replication tests: generous, for a
// loaded 2-core CI machine running the race detector.
const replWait = 90 * time.Second

// cluster is Herald replicas in one process sharing one real Redis and one
// HS256 secret, so a token works on every replica.
type cluster struct {
	t      *testing.T
	redis  *rediskit.Server
	secret []byte
	file   string
	dirs   map[string]string // node ID → data directory, kept across restarts
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	srv := rediskit.Start(t)
	secret := []byte("replication-test-secret-0123456789abcdef")
	file := filepath.Join(t.TempDir(), "jwt-secret")
	if err := os.WriteFile(file, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, redis: srv, secret: secret, file: file, dirs: map[string]string{}}
}

// start starts (or restarts, on its old data directory) the replica id and
// waits until it is ready.
func (c *cluster) start(id string) *heraldtest.Node {
	c.t.Helper()
	dir, ok := c.dirs[id]
	if !ok {
		dir = c.t.TempDir()
		c.dirs[id] = dir
	}
	n := heraldtest.Start(c.t, heraldtest.Options{
		DataDir:  dir,
		RedisURL: c.redis.URL(),
		NodeID:   id,
		Configure: func(cfg *config.Config) {
			cfg.JWTSecretFile = c.file
			cfg.SyncLimit = 2000
		},
	})
	n.WaitReady(replWait)
	return n
}

// tab opens a WebSocket of user on n and waits for its unread_sync.
func (c *cluster) tab(n *heraldtest.Node, user string) (*wsclient.Client, syncFrame) {
	c.t.Helper()
	tok, _, err := auth.NewHS256Issuer(c.secret).Issue(user, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	ws, _, err := wsclient.Dial("ws://"+n.HTTPAddr+"/ws", wsclient.Options{Token: tok})
	if err != nil {
		c.t.Fatalf("open tab of %s: %v", user, err)
	}
	c.t.Cleanup(ws.Close)
	f, err := ws.WaitType("unread_sync", replWait)
	if err != nil {
		c.t.Fatalf("unread_sync of %s: %v", user, err)
	}
	var s syncFrame
	if err := f.Decode(&s); err != nil {
		c.t.Fatalf("decode unread_sync: %v", err)
	}
	return ws, s
}

type syncFrame struct {
	Notifications []struct {
		ID string `json:"id"`
	} `json:"notifications"`
	UnreadCount int  `json:"unread_count"`
	Truncated   bool `json:"truncated"`
}

func (s syncFrame) ids() []string {
	out := make([]string, len(s.Notifications))
	for i, n := range s.Notifications {
		out[i] = n.ID
	}
	return out
}

type eventFrame struct {
	Type         string `json:"type"`
	Notification struct {
		ID string `json:"id"`
	} `json:"notification"`
	IDs         []string `json:"ids"`
	UnreadCount int      `json:"unread_count"`
}

// events decodes the tab's frames of type typ.
func events(t *testing.T, ws *wsclient.Client, typ string) []eventFrame {
	t.Helper()
	var out []eventFrame
	for _, f := range ws.Frames() {
		if f.Type != typ {
			continue
		}
		var e eventFrame
		if err := json.Unmarshal(f.Raw, &e); err != nil {
			t.Fatalf("decode %s frame: %v", typ, err)
		}
		out = append(out, e)
	}
	return out
}

// notified returns the IDs of the tab's notification frames, in order.
func notified(t *testing.T, ws *wsclient.Client) []string {
	t.Helper()
	var ids []string
	for _, e := range events(t, ws, "notification") {
		ids = append(ids, e.Notification.ID)
	}
	return ids
}

func rpcCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), replWait)
	t.Cleanup(cancel)
	return ctx
}

// create creates count notifications for user through n's RPC, in calls of
// at most 100, and returns their IDs in order.
func create(t *testing.T, n *heraldtest.Node, user string, count int) []string {
	t.Helper()
	var ids []string
	for len(ids) < count {
		k := min(100, count-len(ids))
		req := &heraldv1.CreateNotificationsRequest{}
		for i := range k {
			req.Notifications = append(req.Notifications, &heraldv1.NewNotification{
				UserId: user, Type: "task.assigned", Title: fmt.Sprintf("#%d", len(ids)+i),
			})
		}
		resp, err := n.RPC.CreateNotifications(rpcCtx(t), req)
		if err != nil {
			t.Fatalf("create on %s: %v", n.Daemon.NodeID(), err)
		}
		for _, got := range resp.Notifications {
			ids = append(ids, got.Id)
		}
	}
	return ids
}

func unreadCount(t *testing.T, n *heraldtest.Node, user string) int64 {
	t.Helper()
	resp, err := n.RPC.UnreadCount(rpcCtx(t), &heraldv1.UnreadCountRequest{UserId: user})
	if err != nil {
		t.Fatalf("unread count on %s: %v", n.Daemon.NodeID(), err)
	}
	return resp.UnreadCount
}

// eventually polls cond until it returns nil, failing after replWait.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(replWait)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond) // polling pace, not synchronisation
	}
}

// quietPeriod is how long a test waits after a delivery for a duplicate
// that the other path (live or stream) could still bring.
const quietPeriod = time.Second

// eventuallyOnce waits until check passes, then checks again after
// quietPeriod: eventually alone would stop at the first moment every
// frame was there once, before a late duplicate arrives.
func eventuallyOnce(t *testing.T, what string, check func() error) {
	t.Helper()
	eventually(t, what, check)
	time.Sleep(quietPeriod) // waiting for something that must not happen
	if err := check(); err != nil {
		t.Fatalf("%s, %v later: %v", what, quietPeriod, err)
	}
}

// onceEach checks that every id occurs exactly once in got and that got
// holds nothing else.
func onceEach(got, ids []string) error {
	seen := map[string]int{}
	for _, id := range got {
		seen[id]++
	}
	missing := 0
	for _, id := range ids {
		switch seen[id] {
		case 0:
			missing++
		case 1:
		default:
			return fmt.Errorf("id %s seen %d times", id, seen[id])
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d missing", missing, len(ids))
	}
	if len(got) != len(ids) {
		return fmt.Errorf("%d frames for %d ids", len(got), len(ids))
	}
	return nil
}

// noErrorLogs fails the test on error-level log lines of the nodes.
func noErrorLogs(t *testing.T, nodes ...*heraldtest.Node) {
	t.Helper()
	for _, n := range nodes {
		for _, l := range n.ErrorLines() {
			t.Errorf("node %s logged an error: %s", n.Daemon.NodeID(), l)
		}
	}
}
