package store

import (
	"context"
	"fmt"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/sidecar/notification"
)

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

// MarkRead marks ids of the user read. It returns the ids that were unread
// (in the order given, without repeats) and the unread count after. An id
// that does not exist for the user fails the whole call with an error
// wrapping ErrNotFound and changes nothing; ids already read change nothing
// and are no error. It emits one KindRead event with the changed ids, if any.
func (s *Store) MarkRead(ctx context.Context, userID string, ids []string) (changed []string, unread int, err error) {
	uk, parsed, err := checkUserIDs(userID, ids)
	if err != nil {
		return nil, 0, fmt.Errorf("mark read: %w", err)
	}
	err = s.submit(ctx, len(parsed), func(w *wtx) error {
		if err := w.checkExist(uk, parsed); err != nil {
			return reject(err)
		}
		changed = changed[:0]
		for _, id := range parsed {
			ok, err := w.markRead(uk, id)
			if err != nil {
				return err
			}
			if ok {
				changed = append(changed, id.String())
			}
		}
		unread = w.decUnread(uk, len(changed))
		if len(changed) == 0 {
			return nil
		}
		return w.emitAndShip(uk, userID, notification.KindRead, changed, "", unread)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("mark read: %w", err)
	}
	return changed, unread, nil
}

// MarkAllRead marks all of the user's notifications read and returns how
// many were unread. When any was, it emits a KindReadAll event and, when the
// store is replicated, an outbox change whose UpTo is the user's newest ID,
// so that other replicas mark read the same notifications and no newer one.
func (s *Store) MarkAllRead(ctx context.Context, userID string) (changed int, err error) {
	if err := notification.ValidateUserID(userID); err != nil {
		return 0, fmt.Errorf("mark all read: %w", err)
	}
	uk := userKey(userID)
	err = s.submit(ctx, 1, func(w *wtx) error {
		marked, err := w.readAllUpTo(uk, nil)
		changed = len(marked)
		if err != nil || changed == 0 {
			return err
		}
		upTo := w.newestID(uk).String()
		return w.emitAndShip(uk, userID, notification.KindReadAll, nil, upTo, 0)
	})
	if err != nil {
		return 0, fmt.Errorf("mark all read: %w", err)
	}
	return changed, nil
}

// markRead moves id from the user's unread entries to the read ones and
// reports whether it was unread. It does not touch the count.
func (w *wtx) markRead(uk []byte, id ulid.ULID) (bool, error) {
	k := entryKey(uk, tagUnread, id)
	if !exists(w.items, k) {
		return false, nil
	}
	if err := w.items.Delete(k); err != nil {
		return false, fmt.Errorf("delete unread entry: %w", err)
	}
	if err := w.items.Put(entryKey(uk, tagRead, id), nil); err != nil {
		return false, fmt.Errorf("put read entry: %w", err)
	}
	return true, nil
}

// newestID returns the user's highest ID, read or unread (zero if none).
func (w *wtx) newestID(uk []byte) ulid.ULID {
	var zero ulid.ULID
	newest := zero
	for _, tag := range []byte{tagRead, tagUnread} {
		it := newEntryIter(w.items, uk, tag, zero, false)
		if it.ok && it.id.Compare(newest) > 0 {
			newest = it.id
		}
	}
	return newest
}

// readAllUpTo marks read the user's unread entries with an ID up to and
// including upTo (all of them when upTo is nil), fixes the count and returns
// the IDs it marked read, oldest first.
func (w *wtx) readAllUpTo(uk []byte, upTo *ulid.ULID) ([]ulid.ULID, error) {
	// Collect first: deleting under a moving cursor skips keys.
	var ids []ulid.ULID
	prefix := tagPrefix(uk, tagUnread)
	c := w.items.Cursor()
	for k, _ := c.Seek(prefix); isEntryOf(k, prefix); k, _ = c.Next() {
		id, _ := splitItemKey(k)
		if upTo != nil && id.Compare(*upTo) > 0 {
			break
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		if _, err := w.markRead(uk, id); err != nil {
			return nil, err
		}
	}
	if upTo == nil {
		// All read: zero also a count that drifted from the index.
		if w.unreadCount(uk) != 0 {
			w.setUnreadCount(uk, 0)
		}
		return ids, nil
	}
	w.decUnread(uk, len(ids))
	return ids, nil
}

// Delete deletes ids of the user and returns the unread count after. An id
// that does not exist fails the call with an error wrapping ErrNotFound and
// changes nothing. Deleted IDs are tombstoned, so that a replayed remote
// "created" never brings one back. It emits one KindDeleted event.
func (s *Store) Delete(ctx context.Context, userID string, ids []string) (unread int, err error) {
	uk, parsed, err := checkUserIDs(userID, ids)
	if err != nil {
		return 0, fmt.Errorf("delete: %w", err)
	}
	err = s.submit(ctx, len(parsed), func(w *wtx) error {
		if err := w.checkExist(uk, parsed); err != nil {
			return reject(err)
		}
		deleted := make([]string, 0, len(parsed))
		wasUnread := 0
		for _, id := range parsed {
			u, err := w.remove(uk, id)
			if err != nil {
				return err
			}
			if u {
				wasUnread++
			}
			if err := w.tombstone(uk, id); err != nil {
				return err
			}
			deleted = append(deleted, id.String())
		}
		unread = w.decUnread(uk, wasUnread)
		return w.emitAndShip(uk, userID, notification.KindDeleted, deleted, "", unread)
	})
	if err != nil {
		return 0, fmt.Errorf("delete: %w", err)
	}
	return unread, nil
}

// remove deletes one notification of the user and its entry and reports
// whether it was unread. It does not touch the count.
func (w *wtx) remove(uk []byte, id ulid.ULID) (wasUnread bool, err error) {
	_, unread := readState(w.items, uk, id)
	tag := tagRead
	if unread {
		tag = tagUnread
	}
	if err := w.items.Delete(entryKey(uk, tag, id)); err != nil {
		return false, fmt.Errorf("delete item entry: %w", err)
	}
	if err := w.notifs.Delete(id[:]); err != nil {
		return false, fmt.Errorf("delete notification: %w", err)
	}
	return unread, nil
}

// tombstone records that id was deleted, dated now.
func (w *wtx) tombstone(uk []byte, id ulid.ULID) error {
	ms := ulid.Timestamp(w.s.opts.Now())
	if err := w.tombs.Put(itemKey(uk, id), putUint64(ms)); err != nil {
		return fmt.Errorf("put tombstone: %w", err)
	}
	return nil
}

// checkExist returns an error wrapping ErrNotFound naming the first of ids
// that the user does not have.
func (w *wtx) checkExist(uk []byte, ids []ulid.ULID) error {
	for _, id := range ids {
		if has, _ := readState(w.items, uk, id); !has {
			return fmt.Errorf("%s: %w", id, ErrNotFound)
		}
	}
	return nil
}

// decUnread lowers the user's unread count by n and returns it.
func (w *wtx) decUnread(uk []byte, n int) int {
	count := w.unreadCount(uk)
	if n == 0 {
		return int(count)
	}
	if uint64(n) > count {
		// The entries and the count disagree; the entries are the truth.
		user, _, _ := userOfKey(uk)
		w.s.log.Error("unread count below index", "user_id", user, "count", count, "removed", n)
		count = uint64(n)
	}
	count -= uint64(n)
	w.setUnreadCount(uk, count)
	return int(count)
}

// emitAndShip emits a read, read_all or deleted event and writes its change
// to the outbox.
func (w *wtx) emitAndShip(uk []byte, userID string, kind notification.Kind, ids []string, upTo string, count int) error {
	w.emit(uk, notification.Event{UserID: userID, Kind: kind, IDs: ids, UnreadCount: count})
	return w.putOutbox(notification.Change{Kind: kind, UserID: userID, IDs: ids, UpTo: upTo})
}

// checkUserIDs validates a user ID and a list of IDs and returns the user
// key and the IDs parsed, without repeats.
func checkUserIDs(userID string, ids []string) ([]byte, []ulid.ULID, error) {
	if err := notification.ValidateUserID(userID); err != nil {
		return nil, nil, err
	}
	if err := notification.ValidateIDs("ids", ids); err != nil {
		return nil, nil, err
	}
	parsed, err := parseIDs("ids", ids)
	if err != nil {
		return nil, nil, err
	}
	return userKey(userID), dedupe(parsed), nil
}

// Unread returns the user's unread snapshot with at most limit notifications
// (the newest ones, oldest first). Notifications, UnreadCount and Seq come
// from one read transaction, so they agree with each other.
func (s *Store) Unread(userID string, limit int) (Snapshot, error) {
	if err := notification.ValidateUserID(userID); err != nil {
		return Snapshot{}, fmt.Errorf("unread: %w", err)
	}
	if limit < 0 {
		return Snapshot{}, fmt.Errorf("unread: %w",
			&notification.FieldError{Field: "limit", Problem: "must not be negative"})
	}
	uk := userKey(userID)
	var snap Snapshot
	err := s.view(func(tx *bolt.Tx) error {
		notifs, items := tx.Bucket(bucketNotifications), tx.Bucket(bucketItems)
		unread, seq := decodeUserState(items.Get(tagPrefix(uk, tagState)))
		snap.UnreadCount, snap.Seq = int(unread), seq

		var zero ulid.ULID
		for it := newEntryIter(items, uk, tagUnread, zero, false); it.ok; it.prev() {
			if len(snap.Notifications) == limit {
				snap.Truncated = true
				break
			}
			n, err := decodeNotification(it.id, notifs.Get(it.id[:]), false)
			if err != nil {
				return fmt.Errorf("read %s: %w", it.id, err)
			}
			snap.Notifications = append(snap.Notifications, n)
		}
		return nil
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("unread: %w", err)
	}
	snap.Notifications = reversed(snap.Notifications)
	return snap, nil
}

// UnreadCount returns the user's unread count.
func (s *Store) UnreadCount(userID string) (int, error) {
	if err := notification.ValidateUserID(userID); err != nil {
		return 0, fmt.Errorf("unread count: %w", err)
	}
	uk := userKey(userID)
	var n int
	err := s.view(func(tx *bolt.Tx) error {
		unread, _ := decodeUserState(tx.Bucket(bucketItems).Get(tagPrefix(uk, tagState)))
		n = int(unread)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("unread count: %w", err)
	}
	return n, nil
}
