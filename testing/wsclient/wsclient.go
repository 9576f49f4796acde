// Package wsclient is a recording WebSocket client for tests of Herald's
// gateway: it records every frame it receives with its arrival time, the
// close code and reason, and offers waits on what it recorded. It can stop
// reading on demand ("stalled" mode) to play a slow or half-open client, and
// can drop its TCP connection with a reset to play a vanished peer.
//
// It is built on gws's client. All methods are safe for concurrent use.
package wsclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/lxzan/gws"
)

// AbnormalClosure is the close code recorded when the connection ended
// without a close frame from the server (RFC 6455's 1006).
const AbnormalClosure = 1006

// Options configures Dial. The zero value connects without a token.
type Options struct {
	// Token is sent as the `token` query parameter, or as an
	// `Authorization: Bearer` header when TokenInHeader is set.
	Token         string
	TokenInHeader bool
	// Origin, when not empty, is sent as the Origin header.
	Origin string
	// Header holds extra request headers.
	Header http.Header
	// Stalled starts the client stalled: it stops reading at the first frame
	// (so it never answers pings) until Resume.
	Stalled bool
	// NoAutoPong stops the client from answering protocol pings.
	NoAutoPong bool
	// ReceiveBuffer, when > 0, sets the socket's SO_RCVBUF in bytes before
	// connecting, so that a stalled client fills up quickly.
	ReceiveBuffer int
	// HandshakeTimeout bounds the dial and handshake. Default 10s.
	HandshakeTimeout time.Duration
}

// Frame is one data frame received.
type Frame struct {
	// Type is the frame's JSON `type`, or "" when it has none.
	Type string
	// Seq is the frame's `seq`, or 0.
	Seq uint64
	// Raw is the frame's payload.
	Raw []byte
	// At is when the client read it.
	At time.Time
}

// Decode unmarshals the frame's payload into v.
func (f Frame) Decode(v any) error { return json.Unmarshal(f.Raw, v) }

// Client is one recorded WebSocket connection.
type Client struct {
	conn *gws.Conn
	opts Options

	mu        sync.Mutex
	frames    []Frame
	pings     int
	changed   chan struct{} // closed and replaced on every change
	closed    bool
	closeCode int
	reason    string
	localEnd  bool // the close was started by this client
	stalled   bool
	resume    chan struct{} // closed on Resume
	done      chan struct{} // closed when the read loop ended
}

// Dial connects to rawURL (ws://host/path) and starts reading. On a refused
// handshake it returns the HTTP response with the error; the response's body
// is no longer readable (gws closed the connection): use Handshake to read
// a refusal's body.
func Dial(rawURL string, opts Options) (*Client, *http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, nil, fmt.Errorf("wsclient: parse url: %w", err)
	}
	header := http.Header{}
	for k, v := range opts.Header {
		header[k] = append([]string(nil), v...)
	}
	if opts.Token != "" {
		if opts.TokenInHeader {
			header.Set("Authorization", "Bearer "+opts.Token)
		} else {
			q := u.Query()
			q.Set("token", opts.Token)
			u.RawQuery = q.Encode()
		}
	}
	if opts.Origin != "" {
		header.Set("Origin", opts.Origin)
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 10 * time.Second
	}
	c := &Client{
		opts:    opts,
		changed: make(chan struct{}),
		resume:  make(chan struct{}),
		done:    make(chan struct{}),
		stalled: opts.Stalled,
	}
	if !opts.Stalled {
		close(c.resume)
	}
	conn, resp, err := gws.NewClient(c, &gws.ClientOption{
		Addr:               u.String(),
		RequestHeader:      header,
		HandshakeTimeout:   opts.HandshakeTimeout,
		ReadMaxPayloadSize: 64 << 20,
		Logger:             nopLogger{},
		NewDialer: func() (gws.Dialer, error) {
			return &net.Dialer{Timeout: opts.HandshakeTimeout, Control: c.control}, nil
		},
	})
	if err != nil {
		return nil, resp, fmt.Errorf("wsclient: dial: %w", err)
	}
	c.conn = conn
	go func() {
		defer close(c.done)
		conn.ReadLoop()
	}()
	return c, resp, nil
}

// control sets socket options before connect.
func (c *Client) control(_, _ string, rc syscall.RawConn) error {
	if c.opts.ReceiveBuffer <= 0 {
		return nil
	}
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, c.opts.ReceiveBuffer)
	})
	return errors.Join(err, serr)
}

// OnOpen implements gws.Event.
func (c *Client) OnOpen(*gws.Conn) {}

// OnClose implements gws.Event: it records the close code.
func (c *Client) OnClose(_ *gws.Conn, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	var ce *gws.CloseError
	var sc interface{ Uint16() uint16 }
	switch {
	case errors.As(err, &ce):
		c.closeCode, c.reason = int(ce.Code), string(ce.Reason)
	case c.localEnd && errors.As(err, &sc):
		c.closeCode = int(sc.Uint16())
	default:
		c.closeCode = AbnormalClosure
		if err != nil {
			c.reason = err.Error()
		}
	}
	c.notifyLocked()
}

// OnPing implements gws.Event: it counts pings and answers with a pong.
func (c *Client) OnPing(socket *gws.Conn, payload []byte) {
	c.waitResumed()
	c.mu.Lock()
	c.pings++
	c.notifyLocked()
	c.mu.Unlock()
	if !c.opts.NoAutoPong {
		_ = socket.WritePong(payload)
	}
}

// OnPong implements gws.Event.
func (c *Client) OnPong(*gws.Conn, []byte) {}

// OnMessage implements gws.Event: it records the frame. While the client is
// stalled it blocks here, which stops gws's read loop.
func (c *Client) OnMessage(_ *gws.Conn, m *gws.Message) {
	c.waitResumed()
	f := Frame{Raw: append([]byte(nil), m.Bytes()...), At: time.Now()}
	m.Close()
	var head struct {
		Type string `json:"type"`
		Seq  uint64 `json:"seq"`
	}
	if json.Unmarshal(f.Raw, &head) == nil {
		f.Type, f.Seq = head.Type, head.Seq
	}
	c.mu.Lock()
	c.frames = append(c.frames, f)
	c.notifyLocked()
	c.mu.Unlock()
}

func (c *Client) waitResumed() {
	c.mu.Lock()
	ch := c.resume
	c.mu.Unlock()
	<-ch
}

func (c *Client) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Stall makes the client stop reading from the next frame on.
func (c *Client) Stall() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stalled {
		c.stalled = true
		c.resume = make(chan struct{})
	}
}

// Resume makes a stalled client read again.
func (c *Client) Resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stalled {
		c.stalled = false
		close(c.resume)
	}
}

// Send writes v as a JSON text frame.
func (c *Client) Send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("wsclient: encode: %w", err)
	}
	return c.SendRaw(gws.OpcodeText, b)
}

// SendRaw writes payload as one frame with opcode.
func (c *Client) SendRaw(opcode gws.Opcode, payload []byte) error {
	if err := c.conn.WriteMessage(opcode, payload); err != nil {
		return fmt.Errorf("wsclient: write: %w", err)
	}
	return nil
}

// Close sends a close frame with code 1000 and closes the connection, then
// waits for the read loop to end.
func (c *Client) Close() {
	c.mu.Lock()
	c.localEnd = true
	c.mu.Unlock()
	_ = c.conn.WriteClose(1000, nil)
	c.Resume()
	<-c.done
}

// Kill drops the TCP connection with a reset (SO_LINGER 0), sending no close
// frame, like a peer that vanished, then waits for the read loop to end.
func (c *Client) Kill() {
	c.mu.Lock()
	c.localEnd = true
	c.mu.Unlock()
	if tc, ok := c.conn.NetConn().(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.conn.NetConn().Close()
	c.Resume()
	<-c.done
}

// Abandon stops the client's read loop by closing the socket without a
// close frame and without a reset. Use it in cleanups.
func (c *Client) Abandon() {
	c.mu.Lock()
	c.localEnd = true
	c.mu.Unlock()
	_ = c.conn.NetConn().Close()
	c.Resume()
	<-c.done
}

// NetConn returns the underlying connection, for tests that need it.
func (c *Client) NetConn() net.Conn { return c.conn.NetConn() }

// Done is closed when the connection has ended and its close is recorded.
func (c *Client) Done() <-chan struct{} { return c.done }

// Frames returns a copy of the frames received so far, in arrival order.
func (c *Client) Frames() []Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Frame(nil), c.frames...)
}

// Pings returns how many protocol pings the client has read.
func (c *Client) Pings() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pings
}

// CloseStatus returns the recorded close code and reason, and whether the
// connection has ended. The code is AbnormalClosure when no close frame came.
func (c *Client) CloseStatus() (code int, reason string, ended bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode, c.reason, c.closed
}

// WaitClosed waits until the connection has ended and returns its close code
// and reason.
func (c *Client) WaitClosed(timeout time.Duration) (int, string, error) {
	select {
	case <-c.done:
		code, reason, _ := c.CloseStatus()
		return code, reason, nil
	case <-time.After(timeout):
		return 0, "", fmt.Errorf("wsclient: connection still open after %s", timeout)
	}
}

// Type returns a predicate that matches frames of type t.
func Type(t string) func(Frame) bool { return func(f Frame) bool { return f.Type == t } }

// WaitFor returns the first recorded frame (from the start) matching pred,
// waiting up to timeout for it to arrive.
func (c *Client) WaitFor(pred func(Frame) bool, timeout time.Duration) (Frame, error) {
	fs, err := c.WaitN(pred, 1, timeout)
	if err != nil {
		return Frame{}, err
	}
	return fs[0], nil
}

// WaitType is WaitFor(Type(t), timeout).
func (c *Client) WaitType(t string, timeout time.Duration) (Frame, error) {
	return c.WaitFor(Type(t), timeout)
}

// WaitN waits until at least n recorded frames match pred and returns all
// the matching ones. It fails early if the connection ends without them.
func (c *Client) WaitN(pred func(Frame) bool, n int, timeout time.Duration) ([]Frame, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		var got []Frame
		for _, f := range c.frames {
			if pred(f) {
				got = append(got, f)
			}
		}
		changed, closed := c.changed, c.closed
		c.mu.Unlock()
		if len(got) >= n {
			return got, nil
		}
		if closed {
			return got, fmt.Errorf("wsclient: connection closed with %d of %d frames", len(got), n)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return got, fmt.Errorf("wsclient: %d of %d frames after %s", len(got), n, timeout)
		}
	}
}

// WaitPings waits until the client has read at least n protocol pings.
func (c *Client) WaitPings(n int, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		pings, changed, closed := c.pings, c.changed, c.closed
		c.mu.Unlock()
		if pings >= n {
			return nil
		}
		if closed {
			return fmt.Errorf("wsclient: connection closed after %d of %d pings", pings, n)
		}
		select {
		case <-changed:
		case <-deadline.C:
			return fmt.Errorf("wsclient: %d of %d pings after %s", pings, n, timeout)
		}
	}
}

// Handshake sends a WebSocket upgrade request with opts' token, Origin and
// headers through net/http and returns the status and body of the answer.
// It is for asserting refusals (401, 403, 503): on a 101 the connection is
// closed at once and the body is empty.
func Handshake(rawURL string, opts Options) (status int, body string, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return 0, "", fmt.Errorf("wsclient: parse url: %w", err)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	}
	if opts.Token != "" && !opts.TokenInHeader {
		q := u.Query()
		q.Set("token", opts.Token)
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, "", fmt.Errorf("wsclient: request: %w", err)
	}
	for k, v := range opts.Header {
		req.Header[k] = append([]string(nil), v...)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	if opts.Token != "" && opts.TokenInHeader {
		req.Header.Set("Authorization", "Bearer "+opts.Token)
	}
	if opts.Origin != "" {
		req.Header.Set("Origin", opts.Origin)
	}
	timeout := opts.HandshakeTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	hc := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("wsclient: handshake: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, "", nil
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, string(b), err
}

type nopLogger struct{}

func (nopLogger) Error(...any) {}
