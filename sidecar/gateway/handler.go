package gateway

import (
	"context"
	"errors"
	"os"
	"time"

	"github.com/lxzan/gws"
	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/sidecar/auth"
	"github.com/heraldhq/herald/sidecar/metrics"
	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/sidecar/store"
)

// sessionKey holds the *conn in the gws socket's session.
const sessionKey = "herald.conn"

// handler receives gws's events for every socket of a Gateway. gws calls
// them from the socket's read loop, one at a time (ParallelEnabled is off).
type handler struct{ g *Gateway }

var _ gws.Event = (*handler)(nil)

func connOf(s *gws.Conn) *conn {
	v, _ := s.Session().Load(sessionKey)
	c, _ := v.(*conn)
	return c
}

func newLimiter(perSecond float64, burst int) *rate.Limiter {
	return rate.NewLimiter(rate.Limit(perSecond), burst)
}

// OnOpen implements gws.Event; run already did the work.
func (h *handler) OnOpen(*gws.Conn) {}

// OnClose implements gws.Event: the socket ended, for whatever reason.
func (h *handler) OnClose(s *gws.Conn, err error) {
	c := connOf(s)
	if c == nil {
		return
	}
	c.cancel()
	c.mu.Lock()
	c.state = stateClosing
	c.pending = nil
	reason, decided, writeFailed := c.closeReason, c.closeSent, c.writeFailed
	code := closeCode(err)
	if decided {
		code = c.closeCode // what the client was sent, not the echo of it
	}
	c.mu.Unlock()
	c.abort.Store(true)
	h.g.unregister(c)

	if !decided {
		// Not decided by the server (counted then): was it caused?
		if reason = endReason(err, writeFailed); reason != "" {
			h.g.opts.Metrics.Evictions.WithLabelValues(reason).Inc()
		}
	}
	h.g.log.Debug("disconnect", "conn_id", c.id, "user_id", c.userID, "remote_addr", c.remote,
		"duration", time.Since(c.started).Round(time.Millisecond), "reason", reason,
		"close_code", code)
}

// endReason names, as an eviction reason, an end the server did not decide
// but caused: a read deadline (heartbeat), a write deadline (slow client),
// an oversized or malformed frame. A client's own close or a dropped
// connection gives "".
func endReason(err error, writeFailed bool) string {
	var sc interface{ Uint16() uint16 }
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded) && writeFailed:
		return metrics.EvictSlowClient
	case errors.Is(err, os.ErrDeadlineExceeded):
		return metrics.EvictHeartbeat
	case errors.As(err, &sc) && sc.Uint16() == CloseTooLarge:
		return metrics.EvictFrameTooLarge
	case errors.As(err, &sc) && (sc.Uint16() == 1002 || sc.Uint16() == 1007):
		return metrics.EvictProtocol
	}
	return ""
}

// closeCode returns the close code carried by a socket's end, or 0.
func closeCode(err error) uint16 {
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	var sc interface{ Uint16() uint16 }
	if errors.As(err, &sc) {
		return sc.Uint16()
	}
	return 0
}

// touch pushes the read deadline out: any frame proves the client alive.
// Once the server decided to close, the deadline is sendClose's to set.
func (c *conn) touch() {
	c.mu.Lock()
	closing := c.state == stateClosing
	c.mu.Unlock()
	if !closing {
		_ = c.socket.SetReadDeadline(time.Now().Add(2 * c.g.opts.Heartbeat))
	}
}

// OnPing implements gws.Event: answer through the bounded queue.
func (h *handler) OnPing(s *gws.Conn, payload []byte) {
	if c := connOf(s); c != nil {
		c.touch()
		c.pong(payload)
	}
}

// OnPong implements gws.Event.
func (h *handler) OnPong(s *gws.Conn, _ []byte) {
	if c := connOf(s); c != nil {
		c.touch()
	}
}

// OnMessage implements gws.Event: decode, check and answer one client frame.
func (h *handler) OnMessage(s *gws.Conn, m *gws.Message) {
	defer m.Close()
	c := connOf(s)
	if c == nil {
		return
	}
	c.touch()
	h.g.opts.Metrics.FramesIn.Inc()
	if !c.limiter.Allow() {
		c.refuse(&clientError{Code: codeRateLimited, Message: "too many frames", Ref: ""})
		return
	}
	if m.Opcode != gws.OpcodeText {
		c.refuse(badRequest("", "binary frames are not supported"))
		return
	}
	req, cerr := decodeRequest(m.Bytes())
	if cerr != nil {
		c.refuse(cerr)
		return
	}
	defer func() {
		if r := recover(); r != nil {
			// Tell the client, then let gws.Recovery log the stack.
			c.refuse(&clientError{Code: codeInternal, Message: "internal error", Ref: req.Type})
			panic(r)
		}
	}()
	c.handle(req)
}

// refuse sends an error frame; the socket stays open.
func (c *conn) refuse(e *clientError) {
	c.g.opts.Metrics.ClientErrors.WithLabelValues(e.Code).Inc()
	if c.g.log.IsTrace() {
		// ref echoes the client's text: redact it like any foreign text.
		c.g.log.Trace("client frame refused", "conn_id", c.id, "code", e.Code, "ref", auth.Redact(e.Ref))
	}
	c.reply(e.encode())
}

// handle carries out a valid request. mark_read and mark_all_read answer
// through the store's commit hook, like any change: every tab of the user,
// this one included, gets the read or read_all frame. When nothing changed
// (the ids were already read) nothing is sent.
func (c *conn) handle(req request) {
	switch req.Type {
	case reqPing:
		c.reply(pongFrame)
		return
	case reqList:
		page, err := c.g.store.List(store.ListQuery{UserID: c.userID, UnreadOnly: req.UnreadOnly,
			Before: req.Before, Limit: req.Limit})
		if err != nil {
			c.storeFailed(req.Type, err)
			return
		}
		b, err := encodePage(&page, c.g.opts.MaxSyncFrameBytes)
		if err != nil {
			c.storeFailed(req.Type, err)
			return
		}
		c.reply(b)
		return
	}

	ctx, cancel := context.WithTimeout(c.ctx, c.g.opts.RequestTimeout)
	defer cancel()
	var err error
	if req.Type == reqMarkRead {
		_, _, err = c.g.store.MarkRead(ctx, c.userID, req.IDs)
	} else {
		_, err = c.g.store.MarkAllRead(ctx, c.userID)
	}
	if err != nil {
		c.storeFailed(req.Type, err)
	}
}

// storeFailed turns a store error into the error frame for the client.
func (c *conn) storeFailed(typ string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.refuse(&clientError{Code: codeNotFound, Message: "no such notification", Ref: typ})
	case notification.IsFieldError(err):
		var fe *notification.FieldError
		errors.As(err, &fe)
		c.refuse(badRequest(typ, fe.Error()))
	case c.ctx.Err() != nil:
		// The socket is closing: nobody to answer.
	default:
		c.g.log.Error("client request failed", "conn_id", c.id, "user_id", c.userID, "request", typ,
			"error", err)
		c.refuse(&clientError{Code: codeInternal, Message: "internal error", Ref: typ})
	}
}
