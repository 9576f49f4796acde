package gateway

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/heraldhq/herald/sidecar/metrics"
	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/testing/wsclient"
)

func TestMarkReadReachesEveryTab(t *testing.T) {
	e := newEnv(t, Options{})
	ns := e.create("u1", 3)
	a, _ := e.dial("u1", wsclient.Options{})
	b, _ := e.dial("u1", wsclient.Options{})

	if err := a.Send(map[string]any{"type": "mark_read", "ids": []string{ns[0].ID, ns[1].ID}}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*wsclient.Client{a, b} {
		f, err := c.WaitType(frameRead, waitTimeout)
		if err != nil {
			t.Fatalf("tab %d: %v", i, err)
		}
		l := decodeLive(t, f)
		if !slices.Equal(l.IDs, []string{ns[0].ID, ns[1].ID}) || l.UnreadCount != 1 || l.Seq != 4 {
			t.Fatalf("tab %d: read %v unread %d seq %d", i, l.IDs, l.UnreadCount, l.Seq)
		}
	}
	// Already read: no change, no frame, no error; the next change follows.
	if err := a.Send(map[string]any{"type": "mark_read", "ids": []string{ns[0].ID}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(map[string]any{"type": "mark_all_read"}); err != nil {
		t.Fatal(err)
	}
	for i, c := range []*wsclient.Client{a, b} {
		f, err := c.WaitType(frameReadAll, waitTimeout)
		if err != nil {
			t.Fatalf("tab %d: %v", i, err)
		}
		if l := decodeLive(t, f); l.UnreadCount != 0 || l.Seq != 5 {
			t.Fatalf("tab %d: read_all unread %d seq %d", i, l.UnreadCount, l.Seq)
		}
		for _, f := range c.Frames() {
			if f.Type == frameError {
				t.Fatalf("tab %d got an error frame: %s", i, f.Raw)
			}
		}
	}

	// Deletions made by the host reach the tabs too.
	if _, err := e.st.Delete(context.Background(), "u1", []string{ns[2].ID}); err != nil {
		t.Fatal(err)
	}
	f, err := a.WaitType(frameDeleted, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if l := decodeLive(t, f); !slices.Equal(l.IDs, []string{ns[2].ID}) || l.Seq != 6 {
		t.Fatalf("deleted %v seq %d", l.IDs, l.Seq)
	}
}

func TestListPages(t *testing.T) {
	e := newEnv(t, Options{})
	ns := e.create("u1", 5)
	if _, _, err := e.st.MarkRead(context.Background(), "u1", []string{ns[4].ID}); err != nil {
		t.Fatal(err)
	}
	c, _ := e.dial("u1", wsclient.Options{})

	pages := func(req map[string]any) liveFrame {
		t.Helper()
		before := len(framesOf(c, framePage))
		if err := c.Send(req); err != nil {
			t.Fatal(err)
		}
		fs, err := c.WaitN(wsclient.Type(framePage), before+1, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		return decodeLive(t, fs[before])
	}
	p1 := pages(map[string]any{"type": "list", "limit": 2})
	if len(p1.Notifications) != 2 || p1.Notifications[0].ID != ns[4].ID || p1.Next != ns[3].ID {
		t.Fatalf("page 1: %d items, next %q", len(p1.Notifications), p1.Next)
	}
	p2 := pages(map[string]any{"type": "list", "limit": 100, "before": p1.Next})
	if len(p2.Notifications) != 3 || p2.Notifications[0].ID != ns[2].ID || p2.Next != "" {
		t.Fatalf("page 2: %d items, next %q", len(p2.Notifications), p2.Next)
	}
	u := pages(map[string]any{"type": "list", "unread_only": true})
	if len(u.Notifications) != 4 || u.Notifications[0].ID != ns[3].ID {
		t.Fatalf("unread page: %d items", len(u.Notifications))
	}
	if !strings.Contains(string(c.Frames()[1].Raw), `"type":"page"`) {
		t.Fatalf("page frame: %s", c.Frames()[1].Raw)
	}
}

// framesOf returns the frames of type typ that c received.
func framesOf(c *wsclient.Client, typ string) []wsclient.Frame {
	var out []wsclient.Frame
	for _, f := range c.Frames() {
		if f.Type == typ {
			out = append(out, f)
		}
	}
	return out
}

// TestRefusedFramesKeepTheSocket sends every kind of bad frame; each gets
// its error frame with the right code and ref, and the socket keeps working.
func TestRefusedFramesKeepTheSocket(t *testing.T) {
	e := newEnv(t, Options{})
	theirs := e.create("someone-else", 1)[0]
	c, _ := e.dial("u1", wsclient.Options{})
	tests := []struct {
		name     string
		op       gws.Opcode
		payload  string
		wantCode string
		wantRef  string
	}{
		{"unknown type", gws.OpcodeText, `{"type":"subscribe"}`, codeUnknownType, "subscribe"},
		{"invalid JSON", gws.OpcodeText, `{"type":`, codeBadRequest, ""},
		{"not an object", gws.OpcodeText, `[1,2,3]`, codeBadRequest, ""},
		{"invalid UTF-8", gws.OpcodeText, "{\"type\":\"ping\xff\"}", codeBadRequest, ""},
		{"missing type", gws.OpcodeText, `{"ids":[]}`, codeBadRequest, ""},
		{"type not a string", gws.OpcodeText, `{"type":7}`, codeBadRequest, ""},
		{"missing ids", gws.OpcodeText, `{"type":"mark_read"}`, codeBadRequest, "mark_read"},
		{"ids not strings", gws.OpcodeText, `{"type":"mark_read","ids":[1]}`, codeBadRequest, "mark_read"},
		{"malformed id", gws.OpcodeText, `{"type":"mark_read","ids":["nope"]}`, codeBadRequest, "mark_read"},
		{"unknown id", gws.OpcodeText, `{"type":"mark_read","ids":["01ARZ3NDEKTSV4RRFFQ69G5FAV"]}`,
			codeNotFound, "mark_read"},
		{"another user's id", gws.OpcodeText, `{"type":"mark_read","ids":["` + theirs.ID + `"]}`,
			codeNotFound, "mark_read"},
		{"limit too big", gws.OpcodeText, `{"type":"list","limit":101}`, codeBadRequest, "list"},
		{"bad before", gws.OpcodeText, `{"type":"list","before":"x"}`, codeBadRequest, "list"},
		{"binary frame", gws.OpcodeBinary, `{"type":"ping"}`, codeBadRequest, ""},
	}
	for i, tc := range tests {
		if err := c.SendRaw(tc.op, []byte(tc.payload)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		errs, err := c.WaitN(wsclient.Type(frameError), i+1, waitTimeout)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		l := decodeLive(t, errs[i])
		if l.Code != tc.wantCode || l.Ref != tc.wantRef || l.Message == "" {
			t.Fatalf("%s: error %q ref %q message %q; want %q ref %q", tc.name, l.Code, l.Ref, l.Message,
				tc.wantCode, tc.wantRef)
		}
	}
	// Still usable.
	if err := c.Send(map[string]any{"type": "ping"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitType(framePong, waitTimeout); err != nil {
		t.Fatal(err)
	}
	if _, _, ended := c.CloseStatus(); ended {
		t.Fatal("socket closed")
	}
	// The other user's notification was not touched.
	if n, err := e.st.UnreadCount("someone-else"); err != nil || n != 1 {
		t.Fatalf("other user's unread = %d, %v", n, err)
	}
}

func TestOversizedFrameCloses1009(t *testing.T) {
	e := newEnv(t, Options{MaxFrameBytes: 4 << 10})
	c, _ := e.dial("u1", wsclient.Options{})
	big := `{"type":"ping","pad":"` + strings.Repeat("x", 5<<10) + `"}`
	if err := c.SendRaw(gws.OpcodeText, []byte(big)); err != nil {
		t.Fatal(err)
	}
	code, _, err := c.WaitClosed(waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if code != int(CloseTooLarge) {
		t.Fatalf("close code %d, want 1009", code)
	}
	eventually(t, "eviction counted", func() bool {
		return counter(t, e.m.Evictions.WithLabelValues(metrics.EvictFrameTooLarge)) == 1
	})
	eventually(t, "socket removed", func() bool { return e.gw.Count("u1") == 0 })
}

// TestDefaultFrameLimit64KiB: with the default options a client frame of
// exactly 64 KiB is served and the socket stays usable, while one byte more
// closes the socket with 1009.
func TestDefaultFrameLimit64KiB(t *testing.T) {
	const limit = 64 << 10 // docs/PROTOCOL.md; not DefaultMaxFrameBytes, to pin the documented value
	e := newEnv(t, Options{})
	c, _ := e.dial("u1", wsclient.Options{})
	// padded returns a ping frame of exactly n bytes.
	padded := func(n int) []byte {
		const head, tail = `{"type":"ping","pad":"`, `"}`
		return []byte(head + strings.Repeat("x", n-len(head)-len(tail)) + tail)
	}

	for i, n := range []int{60 << 10, limit} {
		if err := c.SendRaw(gws.OpcodeText, padded(n)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.WaitN(wsclient.Type(framePong), i+1, waitTimeout); err != nil {
			code, reason, _ := c.CloseStatus()
			t.Fatalf("%d-byte ping: %v (close %d %q)", n, err, code, reason)
		}
	}
	if code, reason, ended := c.CloseStatus(); ended {
		t.Fatalf("socket closed after frames within the limit: %d %q", code, reason)
	}
	if e.gw.Count("u1") != 1 {
		t.Fatal("socket left the manager after frames within the limit")
	}

	if err := c.SendRaw(gws.OpcodeText, padded(limit+1)); err != nil {
		t.Fatal(err)
	}
	code, _, err := c.WaitClosed(waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if code != int(CloseTooLarge) {
		t.Fatalf("close code %d after a %d-byte frame, want 1009", code, limit+1)
	}
	if got := len(framesOf(c, framePong)); got != 2 {
		t.Fatalf("%d pongs, want 2 (none for the oversized frame)", got)
	}
	eventually(t, "socket removed", func() bool { return e.gw.Count("u1") == 0 })
}

func TestClientFrameRateLimit(t *testing.T) {
	e := newEnv(t, Options{ClientFrameRate: 0.001, ClientFrameBurst: 3})
	c, _ := e.dial("u1", wsclient.Options{})
	for range 5 {
		if err := c.Send(map[string]any{"type": "ping"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.WaitN(wsclient.Type(framePong), 3, waitTimeout); err != nil {
		t.Fatal(err)
	}
	errs, err := c.WaitN(wsclient.Type(frameError), 2, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if l := decodeLive(t, errs[0]); l.Code != codeRateLimited {
		t.Fatalf("error code %q, want rate_limited", l.Code)
	}
}

// TestProtocolPingAnswered: a protocol ping from the client is answered with
// a pong carrying the same payload, and the socket stays usable after it.
func TestProtocolPingAnswered(t *testing.T) {
	e := newEnv(t, Options{})
	// wsclient does not record pongs: use a bare gws client that does.
	rec := &pongRecorder{pongs: make(chan []byte, 8), frames: make(chan string, 8)}
	conn, _, err := gws.NewClient(rec, &gws.ClientOption{
		Addr:   e.url + "?token=" + url.QueryEscape(e.token("u1")),
		Logger: nopGwsLogger{},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		conn.ReadLoop()
	}()
	t.Cleanup(func() {
		_ = conn.NetConn().Close()
		<-done
	})
	waitFrame := func(want string) {
		t.Helper()
		deadline := time.After(waitTimeout)
		for {
			select {
			case got := <-rec.frames:
				if got == want {
					return
				}
			case <-deadline:
				t.Fatalf("no %s frame", want)
			}
		}
	}
	waitFrame(frameUnreadSync)

	for _, payload := range []string{"hi", ""} {
		if err := conn.WritePing([]byte(payload)); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-rec.pongs:
			if string(got) != payload {
				t.Fatalf("pong payload %q, want %q", got, payload)
			}
		case <-time.After(waitTimeout):
			t.Fatalf("no pong for ping %q", payload)
		}
	}
	// Still usable after the pings.
	if err := conn.WriteString(`{"type":"ping"}`); err != nil {
		t.Fatal(err)
	}
	waitFrame(framePong)
}

// pongRecorder is a gws client handler that reports the payload of every
// protocol pong and the type of every data frame it reads (a few: its
// channels are buffered and it never blocks gws's read loop).
type pongRecorder struct {
	gws.BuiltinEventHandler
	pongs  chan []byte
	frames chan string
}

func (r *pongRecorder) OnPong(_ *gws.Conn, payload []byte) {
	select {
	case r.pongs <- append([]byte(nil), payload...):
	default:
	}
}

func (r *pongRecorder) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	var head struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(m.Bytes(), &head)
	select {
	case r.frames <- head.Type:
	default:
	}
}

type nopGwsLogger struct{}

func (nopGwsLogger) Error(...any) {}

// TestListPageCappedToFrameBytes: a list whose answer would pass the write
// queue's byte bound (1 MiB) is cut to a page frame within
// MaxSyncFrameBytes, with next set; the socket stays open and paging on
// walks every notification once, newest first.
func TestListPageCappedToFrameBytes(t *testing.T) {
	e := newEnv(t, Options{})
	body := strings.Repeat("b", notification.MaxBodyLen)
	data := json.RawMessage(`{"x":"` + strings.Repeat("d", notification.MaxDataLen-len(`{"x":""}`)) + `"}`)
	ds := drafts("big", 24)
	for i := range ds {
		ds[i].Body, ds[i].Data = body, data
	}
	ns, err := e.st.Create(context.Background(), ds)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for i := range ns {
		b, err := json.Marshal(&ns[i])
		if err != nil {
			t.Fatal(err)
		}
		total += len(b)
	}
	if total <= DefaultWriteQueueBytes {
		t.Fatalf("notifications total %d bytes, want over %d", total, DefaultWriteQueueBytes)
	}
	c, _ := e.dial("big", wsclient.Options{})

	var got []string
	req := map[string]any{"type": "list", "limit": 100}
	for pages := 1; ; pages++ {
		if pages > len(ns) {
			t.Fatalf("more than %d pages", len(ns))
		}
		if err := c.Send(req); err != nil {
			t.Fatal(err)
		}
		fs, err := c.WaitN(wsclient.Type(framePage), pages, waitTimeout)
		if err != nil {
			code, reason, _ := c.CloseStatus()
			t.Fatalf("page %d: %v (close %d %q)", pages, err, code, reason)
		}
		f := fs[pages-1]
		if len(f.Raw) > DefaultMaxSyncFrameBytes {
			t.Fatalf("page %d is %d bytes, over %d", pages, len(f.Raw), DefaultMaxSyncFrameBytes)
		}
		p := decodeLive(t, f)
		if len(p.Notifications) == 0 {
			t.Fatalf("page %d is empty", pages)
		}
		for _, n := range p.Notifications {
			got = append(got, n.ID)
		}
		if pages == 1 && p.Next == "" {
			t.Fatalf("first page holds %d of %d notifications and no next", len(p.Notifications), len(ns))
		}
		if p.Next == "" {
			break
		}
		if p.Next != got[len(got)-1] {
			t.Fatalf("page %d: next %q, want the last id %q", pages, p.Next, got[len(got)-1])
		}
		req["before"] = p.Next
	}
	want := e.allIDs("big")
	slices.Reverse(want)
	if !slices.Equal(got, want) {
		t.Fatalf("paging walked %d ids %v, want %d newest first %v", len(got), got, len(want), want)
	}
	if code, reason, ended := c.CloseStatus(); ended {
		t.Fatalf("socket closed: %d %q", code, reason)
	}
	for _, f := range c.Frames() {
		if f.Type == frameError {
			t.Fatalf("error frame: %s", f.Raw)
		}
	}
}
