// Package notification holds Herald's domain types: the notification itself,
// the changes replicated between Heralds, the events pushed to sockets, and
// the validation rules of PROTOCOL.md. It does no I/O.
package notification

import (
	"encoding/json"
	"time"
)

// Notification is one notification of one user, as stored and as delivered.
// Its JSON form is the one PROTOCOL.md shows.
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

// Draft is a notification a host asks Herald to create. The store gives it
// its ID and creation time.
type Draft struct {
	UserID string
	Type   string
	Title  string
	Body   string
	Link   string
	// Data is a JSON object, or nil.
	Data json.RawMessage
	// IdempotencyKey, when not empty, makes a retried create return the
	// notification first created with the same key for the same user.
	IdempotencyKey string
}

// Kind names what a Change or an Event does.
type Kind string

// The kinds of change. Their strings are the `kind` values on the Redis
// channel and, except for KindCreated, the frame types on the WebSocket.
const (
	KindCreated Kind = "created"
	KindRead    Kind = "read"
	KindReadAll Kind = "read_all"
	KindDeleted Kind = "deleted"
)

// Change is one state change of one user, the unit Herald replicates between
// replicas through Redis. Applying a change is idempotent: applying it twice
// leaves the same state as applying it once.
type Change struct {
	Kind Kind `json:"kind"`
	// Origin is the node ID of the replica where the change was made.
	Origin string `json:"origin,omitempty"`
	UserID string `json:"user_id"`
	// Notification is set for KindCreated.
	Notification *Notification `json:"notification,omitempty"`
	// IDs is set for KindRead and KindDeleted.
	IDs []string `json:"ids,omitempty"`
	// UpTo is set for KindReadAll: notifications with an ID up to and
	// including UpTo are read. It makes read_all mean the same on every
	// replica, whatever arrived there since.
	UpTo string `json:"up_to,omitempty"`
}

// Event is a change as it was applied to this replica's store: what changed
// and the user's unread count after it. Events of one user carry increasing
// Seq numbers without gaps, assigned in commit order by the store; the
// gateway pushes them to the user's sockets in that order.
type Event struct {
	UserID string
	// Seq is the user's change counter on this replica after the change.
	Seq  uint64
	Kind Kind
	// Notification is set for KindCreated.
	Notification *Notification
	// IDs holds, for KindRead and KindDeleted, the IDs whose state changed;
	// for KindReadAll it may be empty.
	IDs []string
	// UnreadCount is the user's unread count after the change.
	UnreadCount int
}
