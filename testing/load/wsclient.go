package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// counters are a worker's running totals. All fields are updated atomically
// while clients run; snapshot copies them into plain numbers.
type counters struct {
	Attempted    int64 `json:"attempted"`
	Connected    int64 `json:"connected"`
	Failed       int64 `json:"failed"`
	Synced       int64 `json:"synced"`
	SyncShort    int64 `json:"sync_short"`
	Delivered    int64 `json:"delivered"`
	Duplicates   int64 `json:"duplicates"`
	Misdelivered int64 `json:"misdelivered"`
	Frames       int64 `json:"frames"`
	ErrorFrames  int64 `json:"error_frames"`
	ServerClosed int64 `json:"server_closed"`
}

func (c *counters) add(o counters) {
	c.Attempted += o.Attempted
	c.Connected += o.Connected
	c.Failed += o.Failed
	c.Synced += o.Synced
	c.SyncShort += o.SyncShort
	c.Delivered += o.Delivered
	c.Duplicates += o.Duplicates
	c.Misdelivered += o.Misdelivered
	c.Frames += o.Frames
	c.ErrorFrames += o.ErrorFrames
	c.ServerClosed += o.ServerClosed
}

// clientStats is where a worker's clients record what they see. It is safe
// for concurrent use.
type clientStats struct {
	attempted, connected, failed, synced, syncShort atomic.Int64
	delivered, duplicates, misdelivered, frames     atomic.Int64
	errorFrames, serverClosed                       atomic.Int64
	connect, sync, latency                          *Histogram
	latencyByURL                                    []*Histogram // by the client's URL index
	syncBySlot                                      [maxSlots]*Histogram
	errMu                                           sync.Mutex
	errs                                            map[string]int
	closeCodes                                      map[string]int
}

func newClientStats(urls int) *clientStats {
	s := &clientStats{
		connect: NewHistogram(), sync: NewHistogram(), latency: NewHistogram(),
		errs: map[string]int{}, closeCodes: map[string]int{},
	}
	for range urls {
		s.latencyByURL = append(s.latencyByURL, NewHistogram())
	}
	for i := range s.syncBySlot {
		s.syncBySlot[i] = NewHistogram()
	}
	return s
}

// maxSlots is how many one-second slots of the connect timeline are kept;
// later connects count in the last.
const maxSlots = 120

// slots returns the timeline up to its last non-empty slot.
func (s *clientStats) slots() []*Histogram {
	n := 0
	for i, h := range s.syncBySlot {
		if h.Count() > 0 {
			n = i + 1
		}
	}
	return s.syncBySlot[:n]
}

func (s *clientStats) snapshot() counters {
	return counters{
		Attempted: s.attempted.Load(), Connected: s.connected.Load(), Failed: s.failed.Load(),
		Synced: s.synced.Load(), SyncShort: s.syncShort.Load(), Delivered: s.delivered.Load(),
		Duplicates: s.duplicates.Load(), Misdelivered: s.misdelivered.Load(), Frames: s.frames.Load(),
		ErrorFrames: s.errorFrames.Load(), ServerClosed: s.serverClosed.Load(),
	}
}

func (s *clientStats) errorCounts() (errs, closes map[string]int) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	errs, closes = make(map[string]int, len(s.errs)), make(map[string]int, len(s.closeCodes))
	for k, v := range s.errs {
		errs[k] = v
	}
	for k, v := range s.closeCodes {
		closes[k] = v
	}
	return errs, closes
}

// fail counts a failed client under a category of err.
func (s *clientStats) fail(what string, err error) {
	s.failed.Add(1)
	s.errMu.Lock()
	s.errs[what+": "+errorClass(err)]++
	s.errMu.Unlock()
}

func (s *clientStats) closed(err error) {
	s.serverClosed.Add(1)
	code := "io: " + errorClass(err)
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		code = fmt.Sprintf("close %d", ce.Code)
	}
	s.errMu.Lock()
	s.closeCodes[code]++
	s.errMu.Unlock()
}

var addrPattern = regexp.MustCompile(`\d+\.\d+\.\d+\.\d+:\d+`)

// errorClass reduces an error to a message without addresses or tokens, so
// that errors of many clients group.
func errorClass(err error) string {
	if err == nil {
		return "nil"
	}
	msg := addrPattern.ReplaceAllString(err.Error(), "ADDR")
	if i := strings.Index(msg, "token="); i >= 0 {
		msg = msg[:i] + "token=…"
	}
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

// clientSpec is what one client needs to connect.
type clientSpec struct {
	index int
	// slot is the second of the run in which this client dials.
	slot    int
	user    string
	url     string
	urlIdx  int
	source  string
	token   string
	unread  int // unread count the unread_sync must report at least
	timeout time.Duration
	readBuf int
}

// client is one load WebSocket client. Its gws event handlers run on its
// own read loop goroutine; seen is touched only there.
type client struct {
	spec    clientSpec
	stats   *clientStats
	conn    *gws.Conn
	start   time.Time
	syncCh  chan struct{}
	synced  atomic.Bool
	closing atomic.Bool
	done    chan struct{} // closed when the read loop has ended
	seen    map[int64]struct{}
}

// frame is the part of a server frame a load client reads.
type frame struct {
	Type          string            `json:"type"`
	UnreadCount   int               `json:"unread_count"`
	Notifications []json.RawMessage `json:"notifications"`
	Notification  *struct {
		UserID string   `json:"user_id"`
		Data   loadData `json:"data"`
	} `json:"notification"`
}

// loadData is the `data` object the load tool puts into notifications.
type loadData struct {
	// TNs is the creation call's start, Unix nanoseconds.
	TNs int64 `json:"t_ns"`
	// Seq numbers the run's notifications from 0.
	Seq int64 `json:"seq"`
	// Run is the run's user prefix.
	Run string `json:"run"`
}

// connect dials, upgrades and waits for unread_sync, recording the outcome.
// It returns true when the client is connected and synced.
func (c *client) connect() bool {
	c.stats.attempted.Add(1)
	c.syncCh = make(chan struct{})
	c.done = make(chan struct{})
	c.seen = make(map[int64]struct{})
	sep := "?"
	if strings.Contains(c.spec.url, "?") {
		sep = "&"
	}
	opt := &gws.ClientOption{
		// The token rides in the query, as it does from browsers.
		Addr:               c.spec.url + sep + "token=" + c.spec.token,
		HandshakeTimeout:   c.spec.timeout,
		ReadBufferSize:     c.spec.readBuf,
		ReadMaxPayloadSize: 4 << 20,
		NewDialer:          newDialer(c.spec.source, c.spec.timeout),
	}
	c.start = time.Now()
	conn, resp, err := gws.NewClient(c, opt)
	if err != nil {
		close(c.done)
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			c.stats.fail("handshake", fmt.Errorf("HTTP %d", resp.StatusCode))
		} else {
			c.stats.fail("dial", err)
		}
		return false
	}
	c.stats.connect.RecordDuration(time.Since(c.start))
	c.stats.connected.Add(1)
	c.conn = conn
	go func() {
		defer close(c.done)
		conn.ReadLoop()
	}()

	timer := time.NewTimer(c.spec.timeout)
	defer timer.Stop()
	select {
	case <-c.syncCh:
		return true
	case <-c.done:
		c.stats.fail("sync", errors.New("closed before unread_sync"))
		return false
	case <-timer.C:
		c.stats.fail("sync", fmt.Errorf("no unread_sync within %s", c.spec.timeout))
		return false
	}
}

// close closes the client's socket with 1000 and waits for its read loop.
func (c *client) close() {
	if c.conn == nil {
		return
	}
	c.closing.Store(true)
	_ = c.conn.WriteClose(1000, nil)
	<-c.done
}

// OnOpen implements gws.Event.
func (c *client) OnOpen(*gws.Conn) {}

// OnClose implements gws.Event; a close the client did not start counts.
func (c *client) OnClose(_ *gws.Conn, err error) {
	if !c.closing.Load() {
		c.stats.closed(err)
	}
}

// OnPing implements gws.Event: answer the server's heartbeat.
func (c *client) OnPing(socket *gws.Conn, payload []byte) { _ = socket.WritePong(payload) }

// OnPong implements gws.Event.
func (c *client) OnPong(*gws.Conn, []byte) {}

// OnMessage implements gws.Event.
func (c *client) OnMessage(_ *gws.Conn, msg *gws.Message) {
	now := time.Now()
	defer msg.Close()
	c.stats.frames.Add(1)
	var f frame
	if err := json.Unmarshal(msg.Bytes(), &f); err != nil {
		c.stats.errorFrames.Add(1)
		return
	}
	switch f.Type {
	case "unread_sync":
		if c.synced.Swap(true) {
			return
		}
		c.stats.sync.RecordDuration(now.Sub(c.start))
		c.stats.syncBySlot[min(c.spec.slot, maxSlots-1)].RecordDuration(now.Sub(c.start))
		c.stats.synced.Add(1)
		if f.UnreadCount < c.spec.unread {
			c.stats.syncShort.Add(1)
		}
		close(c.syncCh)
	case "notification":
		if f.Notification == nil {
			c.stats.errorFrames.Add(1)
			return
		}
		if f.Notification.UserID != c.spec.user {
			c.stats.misdelivered.Add(1)
			return
		}
		d := f.Notification.Data
		if d.TNs == 0 {
			return // not one of ours
		}
		if _, dup := c.seen[d.Seq]; dup {
			c.stats.duplicates.Add(1)
			return
		}
		c.seen[d.Seq] = struct{}{}
		c.stats.delivered.Add(1)
		c.stats.latency.Record(now.UnixNano() - d.TNs)
		c.stats.latencyByURL[c.spec.urlIdx].Record(now.UnixNano() - d.TNs)
	case "error":
		c.stats.errorFrames.Add(1)
	}
}
