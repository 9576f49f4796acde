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
	err = s.submit(ctx, func(w *wtx) error {
		if err := w.checkExist(uk, parsed); err != nil {
			return reject(err)
		}
		changed = changed[:0]
		for _, id := range parsed {
			k := itemKey(uk, id)
			if !exists(w.unread, k) {
				continue
			}
			if err := w.unread.Delete(k); err != nil {
				return fmt.Errorf("delete unread entry: %w", err)
			}
			changed = append(changed, id.String())
		}
		count, err := w.decUnread(uk, len(changed))
		unread = count
		if err != nil || len(changed) == 0 {
			return err
		}
		return w.emitAndShip(uk, userID, notification.KindRead, changed, "", count)
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
	err = s.submit(ctx, func(w *wtx) error {
		marked, err := w.readAllUpTo(uk, nil)
		changed = len(marked)
		if err != nil || changed == 0 {
			return err
		}
		var upTo string
		if k := seekBefore(w.notifs.Cursor(), prefixEnd(uk)); isItemOf(k, uk) {
			id, _ := splitItemKey(k)
			upTo = id.String()
		}
		return w.emitAndShip(uk, userID, notification.KindReadAll, nil, upTo, 0)
	})
	if err != nil {
		return 0, fmt.Errorf("mark all read: %w", err)
	}
	return changed, nil
}

// readAllUpTo deletes the user's unread entries with an ID up to and
// including upTo (all of them when upTo is nil), fixes the count and returns
// the IDs it marked read, oldest first.
func (w *wtx) readAllUpTo(uk []byte, upTo *ulid.ULID) ([]ulid.ULID, error) {
	// Collect first: deleting under a moving cursor skips keys.
	var ids []ulid.ULID
	c := w.unread.Cursor()
	for k, _ := c.Seek(uk); isItemOf(k, uk); k, _ = c.Next() {
		id, _ := splitItemKey(k)
		if upTo != nil && id.Compare(*upTo) > 0 {
			break
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		if err := w.unread.Delete(itemKey(uk, id)); err != nil {
			return nil, fmt.Errorf("delete unread entry: %w", err)
		}
	}
	if upTo == nil {
		// All read: zero also a count that drifted from the index.
		if w.unreadCount(uk) == 0 {
			return ids, nil
		}
		return ids, w.setUnreadCount(uk, 0)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	_, err := w.decUnread(uk, len(ids))
	return ids, err
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
	err = s.submit(ctx, func(w *wtx) error {
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
		count, err := w.decUnread(uk, wasUnread)
		unread = count
		if err != nil {
			return err
		}
		return w.emitAndShip(uk, userID, notification.KindDeleted, deleted, "", count)
	})
	if err != nil {
		return 0, fmt.Errorf("delete: %w", err)
	}
	return unread, nil
}

// remove deletes one notification and its unread entry and reports whether
// it was unread. It does not touch the count.
func (w *wtx) remove(uk []byte, id ulid.ULID) (wasUnread bool, err error) {
	k := itemKey(uk, id)
	if err := w.notifs.Delete(k); err != nil {
		return false, fmt.Errorf("delete notification: %w", err)
	}
	if !exists(w.unread, k) {
		return false, nil
	}
	if err := w.unread.Delete(k); err != nil {
		return false, fmt.Errorf("delete unread entry: %w", err)
	}
	return true, nil
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
		if w.notifs.Get(itemKey(uk, id)) == nil {
			return fmt.Errorf("%s: %w", id, ErrNotFound)
		}
	}
	return nil
}

// decUnread lowers the user's unread count by n and returns it.
func (w *wtx) decUnread(uk []byte, n int) (int, error) {
	count := w.unreadCount(uk)
	if n == 0 {
		return int(count), nil
	}
	if uint64(n) > count {
		// The index and the count disagree; the index is the truth.
		w.s.log.Error("unread count below index", "count", count, "removed", n)
		count = uint64(n)
	}
	count -= uint64(n)
	return int(count), w.setUnreadCount(uk, count)
}

// emitAndShip emits a read, read_all or deleted event and writes its change
// to the outbox.
func (w *wtx) emitAndShip(uk []byte, userID string, kind notification.Kind, ids []string, upTo string, count int) error {
	if err := w.emit(uk, notification.Event{
		UserID: userID, Kind: kind, IDs: ids, UnreadCount: count,
	}); err != nil {
		return err
	}
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
		notifs := tx.Bucket(bucketNotifications)
		snap.UnreadCount = int(getUint64(tx.Bucket(bucketCounts).Get(uk)))
		snap.Seq = getUint64(tx.Bucket(bucketSeqs).Get(uk))

		c := tx.Bucket(bucketUnread).Cursor()
		for k := seekBefore(c, prefixEnd(uk)); isItemOf(k, uk); k, _ = c.Prev() {
			if len(snap.Notifications) == limit {
				snap.Truncated = true
				break
			}
			id, _ := splitItemKey(k)
			v := notifs.Get(k)
			if v == nil {
				return fmt.Errorf("unread entry %s without notification: %w", id, errCorrupt)
			}
			n, err := decodeNotification(userID, id, v, false)
			if err != nil {
				return fmt.Errorf("read %s: %w", id, err)
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
		n = int(getUint64(tx.Bucket(bucketCounts).Get(uk)))
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("unread count: %w", err)
	}
	return n, nil
}
