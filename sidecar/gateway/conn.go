package gateway

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/sidecar/metrics"
)

// connState is where a socket is in its life.
type connState int

const (
	// stateSyncing: registered, unread_sync not yet queued; live events are
	// buffered in conn.pending.
	stateSyncing connState = iota
	// stateLive: events are queued to the socket as they come.
	stateLive
	// stateClosing: a close was decided; nothing more is queued.
	stateClosing
)

// outFrame is one frame to write. data is shared between the sockets it goes
// to and never modified.
type outFrame struct {
	op     gws.Opcode
	data   []byte
	seq    uint64    // the event's seq, 0 for replies
	commit time.Time // when the store's commit hook saw the event; zero for replies
}

// conn is the gateway's side of one WebSocket.
//
// Writes go through gws's per-connection async queue (one writer, FIFO),
// which is unbounded; conn counts what it put there (frames and bytes) and
// closes the socket with 1013 when a bound would be passed, so a client that
// does not read costs at most WriteQueueFrames / WriteQueueBytes of memory.
type conn struct {
	g         *Gateway
	id        string
	userID    string
	remote    string
	tokenFP   string
	socket    *gws.Conn
	expiresAt time.Time // token exp + leeway
	started   time.Time
	limiter   *rate.Limiter
	ctx       context.Context // cancelled when the socket ends
	cancel    context.CancelFunc

	// registered is true while the manager holds the conn.
	registered atomic.Bool
	// abort makes queued writes skip: set when the close must not wait for
	// them (overflow).
	abort atomic.Bool

	mu          sync.Mutex
	state       connState
	pending     []outFrame // live events seen while syncing
	lastSeq     uint64     // seq of the last event queued
	qFrames     int        // frames queued to gws and not yet written
	qBytes      int
	jobs        int        // jobs pushed to gws's queue and not finished
	jobsDone    *sync.Cond // signalled when jobs reaches 0
	closeReason string     // eviction reason when the server closed it
	closeSent   bool       // the server decided to close: its end is not to be classified
	closeCode   uint16     // the code the server closed with, when closeSent
	writeFailed bool       // a write timed out or failed
}

// deliver queues an event frame, or buffers it while the socket syncs. Frames
// at or below the last seq queued are dropped, so no event goes out twice.
// It never blocks.
func (c *conn) deliver(f outFrame) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case stateSyncing:
		if len(c.pending) >= c.g.opts.WriteQueueFrames {
			c.closeLocked(CloseTryAgain, "write queue full", metrics.EvictSlowClient, false)
			return
		}
		c.pending = append(c.pending, f)
	case stateLive:
		if f.seq <= c.lastSeq {
			return
		}
		c.lastSeq = f.seq
		c.enqueueLocked(f)
	}
}

// goLive queues the unread_sync frame, then the buffered events newer than
// the snapshot, then switches the socket to live delivery. Called once.
func (c *conn) goLive(sync []byte, snapSeq uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateSyncing {
		return
	}
	c.state = stateLive
	c.lastSeq = snapSeq
	c.enqueueLocked(outFrame{op: gws.OpcodeText, data: sync})
	pending := c.pending
	c.pending = nil
	c.g.stats.bufferedEvents.Add(int64(len(pending)))
	for _, f := range pending {
		if c.state != stateLive {
			return
		}
		if f.seq > c.lastSeq {
			c.lastSeq = f.seq
			c.enqueueLocked(f)
		}
	}
}

// reply queues a frame answering the client (page, pong, error).
func (c *conn) reply(data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateLive {
		c.enqueueLocked(outFrame{op: gws.OpcodeText, data: data})
	}
}

// enqueueLocked counts f against the queue bounds and hands it to gws, or
// closes the socket with 1013 when a bound would be passed.
func (c *conn) enqueueLocked(f outFrame) {
	o := &c.g.opts
	if c.qFrames+1 > o.WriteQueueFrames || c.qBytes+len(f.data) > o.WriteQueueBytes {
		c.closeLocked(CloseTryAgain, "write queue full", metrics.EvictSlowClient, false)
		return
	}
	c.qFrames++
	c.qBytes += len(f.data)
	c.pushLocked(func() { c.write(f) })
}

// pushLocked hands job to gws's queue, counting it so that the socket's
// owner can wait for every job to finish.
func (c *conn) pushLocked(job func()) {
	c.jobs++
	c.socket.Async(func() {
		job()
		c.mu.Lock()
		c.jobs--
		if c.jobs == 0 {
			c.jobsDone.Broadcast()
		}
		c.mu.Unlock()
	})
}

// write runs in gws's writer: it writes one frame under the write timeout.
func (c *conn) write(f outFrame) {
	defer func() {
		c.mu.Lock()
		c.qFrames--
		c.qBytes -= len(f.data)
		c.mu.Unlock()
	}()
	if c.abort.Load() {
		return
	}
	if err := c.writeFrame(f.op, f.data); err != nil || f.op != gws.OpcodeText {
		return
	}
	m := c.g.opts.Metrics
	m.FramesOut.Inc()
	if !f.commit.IsZero() {
		m.Delivery.Observe(time.Since(f.commit).Seconds())
	}
}

// writeFrame writes one frame with a write deadline, then pushes the deadline
// out to cover close frames that gws writes from its reader (a reply to the
// client's close, or a protocol error) at any time until the next write.
func (c *conn) writeFrame(op gws.Opcode, data []byte) error {
	nc := c.socket.NetConn()
	_ = nc.SetWriteDeadline(time.Now().Add(c.g.opts.WriteTimeout))
	err := c.socket.WriteMessage(op, data)
	if err != nil {
		c.mu.Lock()
		c.writeFailed = true
		c.mu.Unlock()
		return err
	}
	_ = nc.SetWriteDeadline(time.Now().Add(c.g.idleWriteDeadline()))
	return nil
}

// ping queues a protocol ping. Control frames count against the queue
// bounds too, so a client flooding pings without reading is closed.
func (c *conn) ping() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateClosing {
		c.enqueueLocked(outFrame{op: gws.OpcodePing})
	}
}

// pong queues the answer to a protocol ping.
func (c *conn) pong(payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state != stateClosing {
		c.enqueueLocked(outFrame{op: gws.OpcodePong, data: payload})
	}
}

// close decides to close the socket with code and reason, counting it as an
// eviction for evictReason when that is not empty. With flush the frames
// already queued are written first; without, they are dropped. Only the
// first call counts. The socket leaves the manager at once, so nothing more
// is delivered to it.
func (c *conn) close(code uint16, reason, evictReason string, flush bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(code, reason, evictReason, flush)
}

func (c *conn) closeLocked(code uint16, reason, evictReason string, flush bool) {
	if c.state == stateClosing {
		return
	}
	c.state = stateClosing
	c.pending = nil
	c.closeSent = true
	c.closeCode = code
	c.closeReason = evictReason
	if evictReason != "" {
		// Counted when decided: the socket may take a while to end.
		c.g.opts.Metrics.Evictions.WithLabelValues(evictReason).Inc()
	}
	if evictReason == metrics.EvictSlowClient && c.g.warnLimit.Allow() {
		// Degraded but working: warn, rate-limited (the metric counts all).
		c.g.log.Warn("slow client closed: write queue full", "conn_id", c.id, "user_id", c.userID,
			"queued_frames", c.qFrames, "queued_bytes", c.qBytes)
	}
	if !flush {
		c.abort.Store(true)
	}
	// The close frame goes through the same queue as the frames, so it is
	// written after those already queued (gws#90: WriteClose alone would
	// jump ahead of them).
	c.pushLocked(func() { c.sendClose(code, reason) })
	// Unregistering takes a shard lock; no path holds a shard lock and then
	// a conn lock, so this order cannot deadlock.
	c.g.unregister(c)
}

// sendClose runs in gws's writer after every frame queued before it. It
// writes the close frame, half-closes the TCP connection (FIN once the
// frames still in the kernel's send buffer are out) and gives the client
// CloseTimeout to answer. gws's WriteClose would close the socket at once:
// a client still sending (a pong, its own close) would then get a reset,
// and the reset discards what the client had not yet received, the close
// frame included. gws's reader finishes the job: on the client's close
// frame, EOF or the read deadline it closes the socket and ends ReadLoop.
func (c *conn) sendClose(code uint16, reason string) {
	nc := c.socket.NetConn()
	_ = nc.SetWriteDeadline(time.Now().Add(c.g.opts.WriteTimeout))
	payload := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(payload, code)
	payload = append(payload, reason...)
	if err := c.socket.WriteMessage(gws.OpcodeCloseConnection, payload); err != nil {
		return // gws closed the socket
	}
	if hc, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
	_ = nc.SetReadDeadline(time.Now().Add(c.g.opts.CloseTimeout))
}

// kill drops the TCP connection at once, without a close frame. Shutdown
// uses it when its context ends.
func (c *conn) kill() {
	c.abort.Store(true)
	_ = c.socket.NetConn().Close()
}

// waitJobs blocks until every job pushed to gws's queue has finished. After
// the socket is closed they finish fast: gws fails writes on a closed socket.
func (c *conn) waitJobs() {
	c.mu.Lock()
	for c.jobs > 0 {
		c.jobsDone.Wait()
	}
	c.mu.Unlock()
}
