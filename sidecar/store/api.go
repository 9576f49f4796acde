// Package store keeps one replica's notifications in a bbolt file.
//
// API CONTRACT (skeleton written first so that the service, gateway and bus can be built
// in parallel; the implementation replaces the panics, keeps these signatures).
//
// All writes go through one writer goroutine that drains a queue of requests and commits
// many of them in one bbolt transaction (group commit, one fsync for all); a write call
// returns only after its transaction is durable. After each commit, and before the callers
// are answered, the writer calls Options.OnCommit with the events of that commit in commit
// order; so an event for a change is handed to the gateway before the host hears "ok".
package store

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/heraldhq/herald/sidecar/notification"
)

// Errors returned by the store.
var (
	// ErrNotFound is returned when an id does not exist for the user.
	ErrNotFound = errors.New("store: notification not found")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("store: closed")
	// ErrLocked is returned by Open when another process holds the file's lock
	// for longer than Options.LockTimeout.
	ErrLocked = errors.New("store: database file is locked by another process")
)

// Options configures a Store. The zero value of each field means its default.
type Options struct {
	// Path is the bbolt file. Required.
	Path string
	// LockTimeout bounds the wait for the file lock held by another process.
	// Default 2s.
	LockTimeout time.Duration
	// Replicated makes every local change also write an outbox record for the
	// Redis shipper. Off for a single instance with the in-process bus.
	Replicated bool
	// MaxBatch is the most write requests one transaction commits. Default 1000.
	MaxBatch int
	// OnCommit, when set, receives the events of each commit in commit order,
	// called from the writer goroutine. It must not block; the slice is the
	// callee's to keep.
	OnCommit func([]notification.Event)
	// Logger receives the store's logs. Default: a null logger.
	Logger hclog.Logger
	// Now returns the current time. Default time.Now; tests set it.
	Now func() time.Time
}

// ListQuery selects a page of a user's notifications, newest first.
type ListQuery struct {
	UserID     string
	UnreadOnly bool
	// Before, when not empty, lists only notifications with a lower ID.
	Before string
	// Limit is 1 to 100.
	Limit int
}

// Page is one page of notifications, newest first.
type Page struct {
	Notifications []notification.Notification
	// Next is the cursor for the next page (the ID of the last entry), or
	// empty when there are no more.
	Next string
}

// Snapshot is a user's unread state at one commit.
type Snapshot struct {
	// Notifications holds the newest unread ones, at most the limit asked for,
	// oldest first.
	Notifications []notification.Notification
	// UnreadCount is the full unread count.
	UnreadCount int
	// Truncated is true when there were more unread than the limit.
	Truncated bool
	// Seq is the user's event counter at the snapshot: events with a higher
	// Seq are not reflected in it.
	Seq uint64
}

// OutboxRecord is a local change waiting to be shipped to Redis.
type OutboxRecord struct {
	// Key orders the records; pass it to AckOutbox.
	Key uint64
	// UserID is the change's user, for per-user ordering.
	UserID string
	// Change is the encoded notification.Change (JSON).
	Change []byte
}

// Store is one replica's notification store. It is safe for concurrent use.
type Store struct{}

// Open opens or creates the store file and starts its writer. It fails with
// an error wrapping ErrLocked, naming the file, when another process holds it.
func Open(opts Options) (*Store, error) { panic("not implemented") }

// Close stops the writer after the queued writes are committed and closes
// the file. It is idempotent.
func (s *Store) Close() error { panic("not implemented") }

// NodeID returns this replica's node ID kept in the metadata bucket, empty
// until SetNodeID.
func (s *Store) NodeID() string { panic("not implemented") }

// SetNodeID stores the node ID in the metadata bucket.
func (s *Store) SetNodeID(ctx context.Context, id string) error { panic("not implemented") }

// Create stores drafts (already validated) in one durable commit and returns
// them as stored, in order. A draft whose idempotency key was used before for
// the same user returns the first notification and changes nothing.
func (s *Store) Create(ctx context.Context, drafts []notification.Draft) ([]notification.Notification, error) {
	panic("not implemented")
}

// MarkRead marks ids of the user read. It returns the ids that were unread
// and the unread count after. An id that does not exist for the user fails
// the whole call with ErrNotFound and changes nothing.
func (s *Store) MarkRead(ctx context.Context, userID string, ids []string) (changed []string, unread int, err error) {
	panic("not implemented")
}

// MarkAllRead marks all of the user's notifications read and returns how
// many were unread.
func (s *Store) MarkAllRead(ctx context.Context, userID string) (changed int, err error) {
	panic("not implemented")
}

// Delete deletes ids of the user and returns the unread count after. An id
// that does not exist fails the call with ErrNotFound and changes nothing.
func (s *Store) Delete(ctx context.Context, userID string, ids []string) (unread int, err error) {
	panic("not implemented")
}

// ApplyRemote applies a change made on another replica, idempotently, and
// stores cursor (when not empty) under cursorName in the same transaction.
// It reports whether the local state changed; only then is an event emitted.
// Remote changes never go to the outbox.
func (s *Store) ApplyRemote(ctx context.Context, c notification.Change, cursorName, cursor string) (changed bool, err error) {
	panic("not implemented")
}

// List returns one page of the user's notifications, newest first.
func (s *Store) List(q ListQuery) (Page, error) { panic("not implemented") }

// Get returns one notification of the user, or ErrNotFound.
func (s *Store) Get(userID, id string) (notification.Notification, error) {
	panic("not implemented")
}

// Unread returns the user's unread snapshot with at most limit notifications.
func (s *Store) Unread(userID string, limit int) (Snapshot, error) { panic("not implemented") }

// UnreadCount returns the user's unread count.
func (s *Store) UnreadCount(userID string) (int, error) { panic("not implemented") }

// Outbox returns up to limit outbox records, oldest first.
func (s *Store) Outbox(limit int) ([]OutboxRecord, error) { panic("not implemented") }

// OutboxDepth returns how many records wait in the outbox.
func (s *Store) OutboxDepth() (int, error) { panic("not implemented") }

// AckOutbox removes shipped records.
func (s *Store) AckOutbox(ctx context.Context, keys []uint64) error { panic("not implemented") }

// Cursor returns the value stored under name in the metadata bucket, or "".
func (s *Store) Cursor(name string) (string, error) { panic("not implemented") }

// SetCursor stores value under name in the metadata bucket, durably.
func (s *Store) SetCursor(ctx context.Context, name, value string) error { panic("not implemented") }

// Prune deletes read notifications created before olderThan, and expired
// idempotency keys and tombstones, and returns how many notifications it deleted.
func (s *Store) Prune(ctx context.Context, olderThan time.Time) (int, error) {
	panic("not implemented")
}
