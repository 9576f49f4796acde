package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/sidecar/store"
)

// Server frame types (PROTOCOL.md, "WebSocket").
const (
	frameUnreadSync   = "unread_sync"
	frameNotification = "notification"
	frameRead         = "read"
	frameReadAll      = "read_all"
	frameDeleted      = "deleted"
	framePage         = "page"
	framePong         = "pong"
	frameError        = "error"
)

// Client frame types.
const (
	reqPing        = "ping"
	reqMarkRead    = "mark_read"
	reqMarkAllRead = "mark_all_read"
	reqList        = "list"
)

// Error codes of error frames.
const (
	codeBadRequest  = "bad_request"
	codeUnknownType = "unknown_type"
	codeNotFound    = "not_found"
	codeRateLimited = "rate_limited"
	codeInternal    = "internal"
)

// Limits of the list request.
const (
	defaultListLimit = 20
	maxListLimit     = 100
	// maxRefLen bounds the echoed type of a refused frame, in bytes.
	maxRefLen = 64
)

// The event frames; every one carries the user's unread count and seq.
type (
	createdFrame struct {
		Type         string                     `json:"type"`
		Notification *notification.Notification `json:"notification"`
		UnreadCount  int                        `json:"unread_count"`
		Seq          uint64                     `json:"seq"`
	}
	idsFrame struct {
		Type        string   `json:"type"`
		IDs         []string `json:"ids"`
		UnreadCount int      `json:"unread_count"`
		Seq         uint64   `json:"seq"`
	}
	readAllFrame struct {
		Type        string `json:"type"`
		UnreadCount int    `json:"unread_count"`
		Seq         uint64 `json:"seq"`
	}
)

// encodeEvent returns the frame of ev. It is called once per event, whatever
// the number of sockets the frame goes to.
func encodeEvent(ev *notification.Event) ([]byte, error) {
	var f any
	switch ev.Kind {
	case notification.KindCreated:
		if ev.Notification == nil {
			return nil, errors.New("gateway: encode event: created event without notification")
		}
		f = &createdFrame{Type: frameNotification, Notification: ev.Notification,
			UnreadCount: ev.UnreadCount, Seq: ev.Seq}
	case notification.KindRead, notification.KindDeleted:
		typ := frameRead
		if ev.Kind == notification.KindDeleted {
			typ = frameDeleted
		}
		ids := ev.IDs
		if ids == nil {
			ids = []string{}
		}
		f = &idsFrame{Type: typ, IDs: ids, UnreadCount: ev.UnreadCount, Seq: ev.Seq}
	case notification.KindReadAll:
		f = &readAllFrame{Type: frameReadAll, UnreadCount: ev.UnreadCount, Seq: ev.Seq}
	default:
		return nil, fmt.Errorf("gateway: encode event: unknown kind %q", ev.Kind)
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("gateway: encode event: %w", err)
	}
	return b, nil
}

// encodeSync returns the unread_sync frame of snap: the newest of its
// notifications that fit in maxBytes, oldest first. truncated is true when
// the store truncated the snapshot or when notifications were left out to
// respect maxBytes; unread_count is always the full count.
func encodeSync(snap *store.Snapshot, maxBytes int) (frame []byte, kept int, err error) {
	tail := []byte(`],"unread_count":` + strconv.Itoa(snap.UnreadCount) + `,"truncated":`)
	const head = `{"type":"unread_sync","notifications":[`
	seq := `,"seq":` + strconv.FormatUint(snap.Seq, 10) + `}`
	// Room for the fixed parts, with "false" as the longer boolean.
	size := len(head) + len(tail) + len("false") + len(seq)

	// Walk from the newest, keeping what fits.
	n := len(snap.Notifications)
	items, size, err := fitting(n, func(i int) *notification.Notification {
		return &snap.Notifications[n-1-i]
	}, size, maxBytes, 0)
	if err != nil {
		return nil, 0, fmt.Errorf("gateway: encode unread_sync: %w", err)
	}
	truncated := snap.Truncated || len(items) < len(snap.Notifications)

	var buf bytes.Buffer
	buf.Grow(size)
	buf.WriteString(head)
	for i := len(items) - 1; i >= 0; i-- {
		buf.Write(items[i])
		if i > 0 {
			buf.WriteByte(',')
		}
	}
	buf.Write(tail)
	buf.WriteString(strconv.FormatBool(truncated))
	buf.WriteString(seq)
	return buf.Bytes(), len(items), nil
}

// fitting marshals at(0), at(1), ... up to at(n-1), in that order, while
// size plus every item kept and its comma stays within maxBytes; the first
// minKept items are kept whatever their size. It returns the items kept and
// the size with them.
func fitting(n int, at func(i int) *notification.Notification, size, maxBytes, minKept int) ([][]byte, int, error) {
	items := make([][]byte, 0, n)
	for i := range n {
		b, err := json.Marshal(at(i))
		if err != nil {
			return nil, 0, err
		}
		if size+len(b)+1 > maxBytes && i >= minKept {
			break
		}
		size += len(b) + 1
		items = append(items, b)
	}
	return items, size, nil
}

// nextRoom is the room reserved for the next field of a page frame: ids are
// ULIDs, 26 characters.
const nextRoom = len(`,"next":""`) + 26

// encodePage returns the page frame answering a list request: the
// notifications of p, newest first, cut short where the frame would pass
// maxBytes (at least one is always kept). When cut, next is the id of the
// last one kept, so that the client pages on.
func encodePage(p *store.Page, maxBytes int) ([]byte, error) {
	const head = `{"type":"page","notifications":[`
	items, size, err := fitting(len(p.Notifications), func(i int) *notification.Notification {
		return &p.Notifications[i]
	}, len(head)+len(`]}`)+nextRoom, maxBytes, 1)
	if err != nil {
		return nil, fmt.Errorf("gateway: encode page: %w", err)
	}
	next := p.Next
	if len(items) < len(p.Notifications) {
		next = p.Notifications[len(items)-1].ID
	}

	var buf bytes.Buffer
	buf.Grow(size)
	buf.WriteString(head)
	for i, b := range items {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	if next != "" {
		q, err := json.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("gateway: encode page: %w", err)
		}
		buf.WriteString(`,"next":`)
		buf.Write(q)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

var pongFrame = []byte(`{"type":"pong"}`)

// clientError is a refused client frame, sent back as an error frame.
type clientError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref"`
}

func (e *clientError) Error() string { return e.Code + ": " + e.Message }

// encode returns the error frame.
func (e *clientError) encode() []byte {
	b, err := json.Marshal(struct {
		Type string `json:"type"`
		*clientError
	}{frameError, e})
	if err != nil {
		// Only strings inside: cannot fail.
		return []byte(`{"type":"error","code":"internal","message":"encode error","ref":""}`)
	}
	return b
}

// request is a decoded client frame.
type request struct {
	Type       string
	IDs        []string
	Before     string
	UnreadOnly bool
	Limit      int
}

// decodeRequest parses and validates one client frame. Its error, when not
// nil, is the frame to send back: bad_request for invalid UTF-8, invalid
// JSON or a missing or invalid field, unknown_type for an unknown type.
func decodeRequest(data []byte) (request, *clientError) {
	if !utf8.Valid(data) {
		return request{}, badRequest("", "frame is not valid UTF-8")
	}
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return request{}, badRequest("", jsonProblem(err))
	}
	if head.Type == nil || *head.Type == "" {
		return request{}, badRequest("", "missing field type")
	}
	req := request{Type: *head.Type}
	switch req.Type {
	case reqPing, reqMarkAllRead:
		return req, nil
	case reqMarkRead:
		var body struct {
			IDs []string `json:"ids"`
		}
		if err := json.Unmarshal(data, &body); err != nil {
			return req, badRequest(req.Type, jsonProblem(err))
		}
		if err := notification.ValidateIDs("ids", body.IDs); err != nil {
			return req, badRequest(req.Type, err.Error())
		}
		req.IDs = body.IDs
		return req, nil
	case reqList:
		return decodeList(req, data)
	default:
		return req, &clientError{Code: codeUnknownType, Message: "unknown frame type", Ref: ref(req.Type)}
	}
}

// decodeList fills the fields of a list request; limit defaults to 20.
func decodeList(req request, data []byte) (request, *clientError) {
	var body struct {
		Before     *string `json:"before"`
		UnreadOnly *bool   `json:"unread_only"`
		Limit      *int    `json:"limit"`
	}
	if err := json.Unmarshal(data, &body); err != nil {
		return req, badRequest(req.Type, jsonProblem(err))
	}
	req.Limit = defaultListLimit
	if body.Limit != nil {
		if *body.Limit < 1 || *body.Limit > maxListLimit {
			return req, badRequest(req.Type, fmt.Sprintf("limit: must be 1 to %d", maxListLimit))
		}
		req.Limit = *body.Limit
	}
	if body.Before != nil && *body.Before != "" {
		if err := notification.ValidateID("before", *body.Before); err != nil {
			return req, badRequest(req.Type, err.Error())
		}
		req.Before = *body.Before
	}
	if body.UnreadOnly != nil {
		req.UnreadOnly = *body.UnreadOnly
	}
	return req, nil
}

func badRequest(typ, msg string) *clientError {
	return &clientError{Code: codeBadRequest, Message: msg, Ref: ref(typ)}
}

// jsonProblem describes a JSON error without echoing the client's bytes.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return "frame must be a JSON object"
		}
		return te.Field + ": wrong type"
	}
	return "invalid JSON"
}

// ref returns typ cut to maxRefLen bytes on a rune boundary.
func ref(typ string) string {
	if len(typ) <= maxRefLen {
		return typ
	}
	cut := maxRefLen
	for cut > 0 && !utf8.RuneStart(typ[cut]) {
		cut--
	}
	return typ[:cut]
}
