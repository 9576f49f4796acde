package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/sidecar/notification"
)

// MaxListLimit is the largest page List returns.
const MaxListLimit = 100

// ListQuery selects a page of a user's notifications, newest first.
type ListQuery struct {
	// UserID is the user whose notifications are listed.
	UserID string
	// UnreadOnly lists only unread notifications.
	UnreadOnly bool
	// Before, when not empty, lists only notifications with a lower ID.
	Before string
	// Limit is 1 to MaxListLimit.
	Limit int
}

// Page is one page of notifications, newest first.
type Page struct {
	// Notifications holds at most the limit asked for, newest first.
	Notifications []notification.Notification
	// Next is the cursor for the next page (the ID of the last entry), or
	// empty when there are no more.
	Next string
}

// Create stores drafts in one durable commit, all or none, and returns them
// as stored, in order. The drafts must be valid (Draft.Validate): Create
// checks only the user IDs and idempotency keys, which become bbolt keys,
// and fails with an error wrapping a *notification.FieldError for a bad one.
// A draft whose idempotency key was used before for the same user (in an
// earlier call, or earlier in this call) returns the first notification,
// changes nothing and emits no event; if that notification has since been
// deleted or pruned, the key counts as unused. Each new notification emits a
// KindCreated event and, when the store is replicated, an outbox record.
func (s *Store) Create(ctx context.Context, drafts []notification.Draft) ([]notification.Notification, error) {
	if len(drafts) == 0 {
		return nil, nil
	}
	for i := range drafts {
		if err := checkKeys(&drafts[i]); err != nil {
			return nil, fmt.Errorf("create: %w", notification.WithPrefix(fmt.Sprintf("drafts[%d]", i), err))
		}
	}
	out := make([]notification.Notification, len(drafts))
	err := s.submit(ctx, len(drafts), func(w *wtx) error {
		for i := range drafts {
			n, err := w.create(&drafts[i])
			if err != nil {
				return err
			}
			out[i] = n
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	return out, nil
}

// checkKeys checks the fields of a draft that become bbolt keys: one that
// bbolt refused would fail the whole batch, other callers' requests too.
func checkKeys(d *notification.Draft) error {
	if err := notification.ValidateUserID(d.UserID); err != nil {
		return err
	}
	if len(d.IdempotencyKey) > notification.MaxIdempotencyKeyLen {
		return &notification.FieldError{
			Field:   "idempotency_key",
			Problem: fmt.Sprintf("is %d bytes, at most %d allowed", len(d.IdempotencyKey), notification.MaxIdempotencyKeyLen),
		}
	}
	return nil
}

// create stores one draft, or finds the notification of its idempotency key.
func (w *wtx) create(d *notification.Draft) (notification.Notification, error) {
	uk := userKey(d.UserID)

	// A used idempotency key answers with the first notification.
	var ik []byte
	if d.IdempotencyKey != "" {
		ik = append(uk[:len(uk):len(uk)], d.IdempotencyKey...)
		if v := w.idem.Get(ik); len(v) == idLen {
			n, ok, err := w.get(uk, ulid.ULID(v))
			if err != nil || ok {
				return n, err
			}
		}
	}

	// Store the notification, its unread entry and the count.
	id, err := w.s.newID()
	if err != nil {
		return notification.Notification{}, err
	}
	n := notification.Notification{
		ID:        id.String(),
		UserID:    d.UserID,
		Type:      d.Type,
		Title:     d.Title,
		Body:      d.Body,
		Link:      d.Link,
		Data:      bytes.Clone(d.Data),
		CreatedAt: ulid.Time(id.Time()).UTC(),
	}
	if err := w.insert(uk, id, &n); err != nil {
		return notification.Notification{}, err
	}
	if ik != nil {
		if err := w.idem.Put(ik, id[:]); err != nil {
			return notification.Notification{}, fmt.Errorf("put idempotency key: %w", err)
		}
	}

	// Tell the sockets and the other replicas.
	ev := n
	ev.Data = bytes.Clone(n.Data)
	w.emit(uk, notification.Event{
		UserID:       n.UserID,
		Kind:         notification.KindCreated,
		Notification: &ev,
		UnreadCount:  int(w.unreadCount(uk)),
	})
	if err := w.putOutbox(notification.Change{
		Kind:         notification.KindCreated,
		UserID:       n.UserID,
		Notification: &ev,
	}); err != nil {
		return notification.Notification{}, err
	}
	return n, nil
}

// insert puts a new notification and its read or unread entry.
func (w *wtx) insert(uk []byte, id ulid.ULID, n *notification.Notification) error {
	if err := w.notifs.Put(id[:], encodeNotification(n)); err != nil {
		return fmt.Errorf("put notification: %w", err)
	}
	tag := tagUnread
	if n.IsRead {
		tag = tagRead
	}
	if err := w.items.Put(entryKey(uk, tag, id), nil); err != nil {
		return fmt.Errorf("put item entry: %w", err)
	}
	if !n.IsRead {
		w.setUnreadCount(uk, w.unreadCount(uk)+1)
	}
	return nil
}

// readState tells whether the user has id, and whether it is unread.
func readState(items *bolt.Bucket, uk []byte, id ulid.ULID) (has, unread bool) {
	if exists(items, entryKey(uk, tagUnread, id)) {
		return true, true
	}
	return exists(items, entryKey(uk, tagRead, id)), false
}

// get reads one notification of the user inside the writer's transaction.
func (w *wtx) get(uk []byte, id ulid.ULID) (notification.Notification, bool, error) {
	has, unread := readState(w.items, uk, id)
	if !has {
		return notification.Notification{}, false, nil
	}
	n, err := decodeNotification(id, w.notifs.Get(id[:]), !unread)
	if err != nil {
		return notification.Notification{}, false, fmt.Errorf("read %s: %w", id, err)
	}
	return n, true, nil
}

// newID returns the next ULID: monotonic within a millisecond and never
// below the last one, even if the clock steps back. Writer goroutine only.
func (s *Store) newID() (ulid.ULID, error) {
	ms := ulid.Timestamp(s.opts.Now())
	if ms < s.lastMs {
		ms = s.lastMs
	}
	id, err := ulid.New(ms, s.entropy)
	if errors.Is(err, ulid.ErrMonotonicOverflow) {
		// Billions of IDs in one millisecond: borrow the next one.
		ms++
		id, err = ulid.New(ms, s.entropy)
	}
	if err != nil {
		return ulid.ULID{}, fmt.Errorf("new id: %w", err)
	}
	s.lastMs = ms
	return id, nil
}

// Get returns one notification of the user, or an error wrapping ErrNotFound
// (also when the ID belongs to another user).
func (s *Store) Get(userID, id string) (notification.Notification, error) {
	if err := notification.ValidateUserID(userID); err != nil {
		return notification.Notification{}, fmt.Errorf("get: %w", err)
	}
	uid, err := ulid.ParseStrict(id)
	if err != nil {
		return notification.Notification{}, fmt.Errorf("get: %w",
			&notification.FieldError{Field: "id", Problem: "is not a valid id"})
	}
	uk := userKey(userID)
	var n notification.Notification
	err = s.view(func(tx *bolt.Tx) error {
		has, unread := readState(tx.Bucket(bucketItems), uk, uid)
		if !has {
			return ErrNotFound
		}
		var err error
		n, err = decodeNotification(uid, tx.Bucket(bucketNotifications).Get(uid[:]), !unread)
		return err
	})
	if err != nil {
		return notification.Notification{}, fmt.Errorf("get %s: %w", id, err)
	}
	return n, nil
}

// List returns one page of the user's notifications, newest first. It fails
// with an error wrapping a *notification.FieldError for an invalid query.
func (s *Store) List(q ListQuery) (Page, error) {
	if err := notification.ValidateUserID(q.UserID); err != nil {
		return Page{}, fmt.Errorf("list: %w", err)
	}
	if q.Limit < 1 || q.Limit > MaxListLimit {
		return Page{}, fmt.Errorf("list: %w", &notification.FieldError{
			Field: "limit", Problem: fmt.Sprintf("must be 1 to %d", MaxListLimit)})
	}
	var before ulid.ULID
	if q.Before != "" {
		var err error
		if before, err = ulid.ParseStrict(q.Before); err != nil {
			return Page{}, fmt.Errorf("list: %w",
				&notification.FieldError{Field: "before", Problem: "is not a valid id"})
		}
	}

	uk := userKey(q.UserID)
	var page Page
	err := s.view(func(tx *bolt.Tx) error {
		notifs, items := tx.Bucket(bucketNotifications), tx.Bucket(bucketItems)
		unread := newEntryIter(items, uk, tagUnread, before, q.Before != "")
		read := &entryIter{}
		if !q.UnreadOnly {
			read = newEntryIter(items, uk, tagRead, before, q.Before != "")
		}
		for {
			// Merge the two ranges newest first.
			it, isRead := unread, false
			if read.ok && (!unread.ok || read.id.Compare(unread.id) > 0) {
				it, isRead = read, true
			}
			if !it.ok {
				return nil
			}
			if len(page.Notifications) == q.Limit {
				page.Next = page.Notifications[q.Limit-1].ID
				return nil
			}
			n, err := decodeNotification(it.id, notifs.Get(it.id[:]), isRead)
			if err != nil {
				return fmt.Errorf("read %s: %w", it.id, err)
			}
			page.Notifications = append(page.Notifications, n)
			it.prev()
		}
	})
	if err != nil {
		return Page{}, fmt.Errorf("list: %w", err)
	}
	return page, nil
}

// entryIter walks one kind of a user's entries backwards (newest first).
type entryIter struct {
	c      *bolt.Cursor
	prefix []byte
	id     ulid.ULID
	ok     bool
}

// newEntryIter positions an iterator at the user's newest entry of tag,
// or the newest below before when hasBefore.
func newEntryIter(items *bolt.Bucket, uk []byte, tag byte, before ulid.ULID, hasBefore bool) *entryIter {
	it := &entryIter{c: items.Cursor(), prefix: tagPrefix(uk, tag)}
	bound := prefixEnd(it.prefix)
	if hasBefore {
		bound = entryKey(uk, tag, before)
	}
	it.set(seekBefore(it.c, bound))
	return it
}

func (it *entryIter) set(k []byte) {
	it.ok = isEntryOf(k, it.prefix)
	if it.ok {
		it.id, _ = splitItemKey(k)
	}
}

func (it *entryIter) prev() {
	k, _ := it.c.Prev()
	it.set(k)
}

// seekBefore moves c to the last key below bound (the last key of all when
// bound is nil) and returns it, or nil.
func seekBefore(c *bolt.Cursor, bound []byte) []byte {
	if bound == nil {
		k, _ := c.Last()
		return k
	}
	if k, _ := c.Seek(bound); k == nil {
		k, _ = c.Last()
		return k
	}
	k, _ := c.Prev()
	return k
}

// exists reports whether b holds key k, whatever its value (the items bucket
// stores empty values, which Get cannot tell from absent ones reliably).
func exists(b *bolt.Bucket, k []byte) bool {
	got, _ := b.Cursor().Seek(k)
	return bytes.Equal(got, k)
}

// reversed returns ns in the opposite order, in place.
func reversed(ns []notification.Notification) []notification.Notification {
	slices.Reverse(ns)
	return ns
}
