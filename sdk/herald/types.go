package herald

import (
	"encoding/json"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/plugin/heraldv1"
)

// Notification is one notification as Herald stored it. Its JSON form is the
// one browsers receive.
type Notification struct {
	// ID is a ULID; IDs sort in creation order.
	ID     string `json:"id"`
	UserID string `json:"user_id"`
	Type   string `json:"type"`
	Title  string `json:"title"`
	Body   string `json:"body,omitempty"`
	Link   string `json:"link,omitempty"`
	// Data is a JSON object, or nil.
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	IsRead    bool            `json:"is_read"`
}

// NewNotification is a notification to create. UserID, Type and Title are
// required; limits: UserID and Type 1 to 128 bytes, Title up to 1 KiB, Body
// up to 16 KiB, Link up to 2 KiB, Data a JSON object up to 32 KiB, all valid
// UTF-8.
type NewNotification struct {
	UserID string
	Type   string
	Title  string
	Body   string
	Link   string
	// Data is a JSON object for the page's own use, or nil.
	Data json.RawMessage
	// IdempotencyKey, when set, makes a retried create return the
	// notification first created with that key for the same user instead of
	// creating a second one.
	IdempotencyKey string
}

// ListOptions selects a page of a user's notifications.
type ListOptions struct {
	UserID string
	// UnreadOnly lists only unread notifications.
	UnreadOnly bool
	// Before, when set, lists only notifications older than this ID: pass
	// the Next of the previous page.
	Before string
	// Limit is the page size, 1 to 100; 0 means 50.
	Limit int
}

// Page is one page of notifications, newest first.
type Page struct {
	Notifications []Notification
	// Next is the Before of the following page, or empty at the end.
	Next string
}

// MarkReadResult is the outcome of MarkRead.
type MarkReadResult struct {
	// Changed holds the IDs that were unread before the call.
	Changed []string
	// UnreadCount is the user's unread count after the call.
	UnreadCount int64
}

// ConnectToken is a short-lived token a browser opens /ws?token= with.
type ConnectToken struct {
	Token     string
	ExpiresAt time.Time
}

// Presence tells how many live WebSocket connections a user has.
type Presence struct {
	// Connections is the total over every replica that answered.
	Connections int64
	// Replicas maps a replica's node ID to its connection count.
	Replicas map[string]int64
}

func fromProto(n *heraldv1.Notification) Notification {
	out := Notification{
		ID:        n.GetId(),
		UserID:    n.GetUserId(),
		Type:      n.GetType(),
		Title:     n.GetTitle(),
		Body:      n.GetBody(),
		Link:      n.GetLink(),
		CreatedAt: time.UnixMilli(n.GetCreatedAtUnixMs()).UTC(),
		IsRead:    n.GetIsRead(),
	}
	if n.GetDataJson() != "" {
		out.Data = json.RawMessage(n.GetDataJson())
	}
	return out
}

func fromProtos(ns []*heraldv1.Notification) []Notification {
	out := make([]Notification, len(ns))
	for i, n := range ns {
		out[i] = fromProto(n)
	}
	return out
}

// toProto converts n for a request. Protobuf refuses to encode invalid
// UTF-8 and gRPC would report that as Internal, so it is checked here and
// reported as InvalidArgument naming the field, like Herald would.
func (n *NewNotification) toProto(field string) (*heraldv1.NewNotification, error) {
	for _, f := range []struct{ name, value string }{
		{"user_id", n.UserID}, {"type", n.Type}, {"title", n.Title}, {"body", n.Body},
		{"link", n.Link}, {"data_json", string(n.Data)}, {"idempotency_key", n.IdempotencyKey},
	} {
		if !utf8.ValidString(f.value) {
			return nil, invalidUTF8(field + "." + f.name)
		}
	}
	return &heraldv1.NewNotification{
		UserId:         n.UserID,
		Type:           n.Type,
		Title:          n.Title,
		Body:           n.Body,
		Link:           n.Link,
		DataJson:       string(n.Data),
		IdempotencyKey: n.IdempotencyKey,
	}, nil
}

// checkStrings checks request strings that are not notification fields.
func checkStrings(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if !utf8.ValidString(fields[i+1]) {
			return invalidUTF8(fields[i])
		}
	}
	return nil
}
