package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/oklog/ulid/v2"

	"github.com/heraldhq/herald/sidecar/notification"
)

// ApplyRemote applies a change made on another replica, idempotently, and
// stores cursor (when not empty) under cursorName in the same transaction.
// It reports whether the local state changed; only then is an event emitted,
// carrying only what changed. Remote changes never go to the outbox.
//
//   - created inserts the notification with its remote ID and created_at,
//     unread unless it says is_read, unless the ID exists or was deleted here
//     (tombstoned). An idempotency key is not carried between replicas.
//   - read marks read the listed IDs that are unread here; unknown IDs are
//     ignored (a later created of such an ID arrives unread, as a replay of
//     the stream in order would leave it).
//   - read_all marks read every unread ID up to and including UpTo, or all
//     when UpTo is empty.
//   - deleted deletes the listed IDs that exist and tombstones all of them.
//
// An invalid change fails with an error wrapping a *notification.FieldError,
// before anything is written (the cursor neither: a caller that wants to
// skip the change stores it with SetCursor).
func (s *Store) ApplyRemote(ctx context.Context, c notification.Change, cursorName, cursor string) (changed bool, err error) {
	ids, err := checkChange(&c)
	if err != nil {
		return false, fmt.Errorf("apply remote change: %w", err)
	}
	err = s.submit(ctx, len(ids), func(w *wtx) error {
		var err error
		changed, err = w.applyRemote(&c, ids)
		if err != nil || cursor == "" {
			return err
		}
		return w.putCursor(cursorName, cursor)
	})
	if err != nil {
		return false, fmt.Errorf("apply remote %s change: %w", c.Kind, err)
	}
	return changed, nil
}

// RemoteResult is what ApplyRemoteBatch did with one change.
type RemoteResult struct {
	// Changed reports that the change altered the local state (and emitted
	// an event).
	Changed bool
	// Invalid, when set, is why the change was refused: an error wrapping
	// a *notification.FieldError. Nothing of the change was written.
	Invalid error
}

// ApplyRemoteBatch applies changes in their order in one request, so that
// a stream of remote changes shares a durable commit instead of waiting
// for one each; each change is applied exactly as ApplyRemote applies it.
// Invalid changes are skipped and named in their result. An error (a
// failed commit, a cancelled ctx) means none of the batch was applied.
func (s *Store) ApplyRemoteBatch(ctx context.Context, changes []notification.Change) ([]RemoteResult, error) {
	results := make([]RemoteResult, len(changes))
	ids := make([][]ulid.ULID, len(changes))
	items, valid := 0, 0
	for i := range changes {
		var err error
		ids[i], err = checkChange(&changes[i])
		if err != nil {
			results[i].Invalid = fmt.Errorf("apply remote change: %w", err)
			continue
		}
		items += len(ids[i])
		valid++
	}
	if valid == 0 {
		return results, nil
	}
	err := s.submit(ctx, items, func(w *wtx) error {
		for i := range changes {
			if results[i].Invalid != nil {
				continue
			}
			changed, err := w.applyRemote(&changes[i], ids[i])
			var rj *rejection
			if errors.As(err, &rj) {
				results[i].Invalid = fmt.Errorf("apply remote change: %w", rj.err)
				continue
			}
			if err != nil {
				return err
			}
			results[i].Changed = changed
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("apply %d remote changes: %w", len(changes), err)
	}
	return results, nil
}

// applyRemote applies one checked change; ids are checkChange's.
func (w *wtx) applyRemote(c *notification.Change, ids []ulid.ULID) (bool, error) {
	uk := userKey(c.UserID)
	switch c.Kind {
	case notification.KindCreated:
		return w.remoteCreated(uk, c.Notification)
	case notification.KindRead:
		return w.remoteRead(uk, c.UserID, ids)
	case notification.KindReadAll:
		return w.remoteReadAll(uk, c.UserID, ids)
	case notification.KindDeleted:
		return w.remoteDeleted(uk, c.UserID, ids)
	}
	return false, nil
}

// checkChange validates a remote change and returns its IDs parsed: the IDs
// of read and deleted, UpTo of read_all (none when UpTo is empty), the
// notification's ID of created.
func checkChange(c *notification.Change) ([]ulid.ULID, error) {
	if err := notification.ValidateUserID(c.UserID); err != nil {
		return nil, err
	}
	switch c.Kind {
	case notification.KindCreated:
		return checkRemoteNotification(c)
	case notification.KindRead, notification.KindDeleted:
		if err := notification.ValidateIDs("ids", c.IDs); err != nil {
			return nil, err
		}
		ids, err := parseIDs("ids", c.IDs)
		return dedupe(ids), err
	case notification.KindReadAll:
		if c.UpTo == "" {
			return nil, nil
		}
		if err := notification.ValidateID("up_to", c.UpTo); err != nil {
			return nil, err
		}
		id, _ := ulid.ParseStrict(c.UpTo)
		return []ulid.ULID{id}, nil
	default:
		return nil, &notification.FieldError{Field: "kind", Problem: fmt.Sprintf("unknown kind %q", c.Kind)}
	}
}

// checkRemoteNotification validates the notification of a remote created.
func checkRemoteNotification(c *notification.Change) ([]ulid.ULID, error) {
	n := c.Notification
	if n == nil {
		return nil, &notification.FieldError{Field: "notification", Problem: "must be set for kind created"}
	}
	if n.UserID != c.UserID {
		return nil, &notification.FieldError{Field: "notification.user_id", Problem: "differs from user_id"}
	}
	if err := notification.ValidateID("notification.id", n.ID); err != nil {
		return nil, err
	}
	d := notification.Draft{UserID: n.UserID, Type: n.Type, Title: n.Title, Body: n.Body, Link: n.Link, Data: n.Data}
	if err := d.Validate(); err != nil {
		return nil, notification.WithPrefix("notification", err)
	}
	if n.CreatedAt.IsZero() {
		return nil, &notification.FieldError{Field: "notification.created_at", Problem: "must be set"}
	}
	id, _ := ulid.ParseStrict(n.ID)
	return []ulid.ULID{id}, nil
}

// remoteCreated inserts a remote notification unless it exists or was deleted.
func (w *wtx) remoteCreated(uk []byte, rn *notification.Notification) (bool, error) {
	id, _ := ulid.ParseStrict(rn.ID)
	if v := w.notifs.Get(id[:]); v != nil {
		// Herald's own IDs never collide; a bare message published with
		// the ID of another user's notification is refused, not ignored.
		if !bytes.Equal(bodyUserKey(v), uk) {
			return false, reject(&notification.FieldError{
				Field: "notification.id", Problem: "is the id of another user's notification"})
		}
		return false, nil
	}
	if w.tombs.Get(itemKey(uk, id)) != nil {
		return false, nil
	}
	n := *rn
	n.ID = id.String()
	n.CreatedAt = n.CreatedAt.UTC()
	n.Data = bytes.Clone(rn.Data)
	if err := w.insert(uk, id, &n); err != nil {
		return false, err
	}
	w.emit(uk, notification.Event{
		UserID:       n.UserID,
		Kind:         notification.KindCreated,
		Notification: &n,
		UnreadCount:  int(w.unreadCount(uk)),
	})
	return true, nil
}

// remoteRead marks read the listed IDs that are unread here.
func (w *wtx) remoteRead(uk []byte, userID string, ids []ulid.ULID) (bool, error) {
	var changed []string
	for _, id := range ids {
		ok, err := w.markRead(uk, id)
		if err != nil {
			return false, err
		}
		if ok {
			changed = append(changed, id.String())
		}
	}
	if len(changed) == 0 {
		return false, nil
	}
	count := w.decUnread(uk, len(changed))
	w.emit(uk, notification.Event{
		UserID: userID, Kind: notification.KindRead, IDs: changed, UnreadCount: count,
	})
	return true, nil
}

// remoteReadAll marks read every unread ID up to UpTo (all without one).
// When newer notifications stay unread here, the sockets must not be told
// "all read": they get a read event naming the IDs that were marked.
func (w *wtx) remoteReadAll(uk []byte, userID string, upTo []ulid.ULID) (bool, error) {
	var bound *ulid.ULID
	if len(upTo) == 1 {
		bound = &upTo[0]
	}
	marked, err := w.readAllUpTo(uk, bound)
	if err != nil || len(marked) == 0 {
		return false, err
	}
	count := int(w.unreadCount(uk))
	if count == 0 {
		w.emit(uk, notification.Event{UserID: userID, Kind: notification.KindReadAll})
		return true, nil
	}
	ids := make([]string, len(marked))
	for i, id := range marked {
		ids[i] = id.String()
	}
	w.emit(uk, notification.Event{
		UserID: userID, Kind: notification.KindRead, IDs: ids, UnreadCount: count,
	})
	return true, nil
}

// remoteDeleted deletes the listed IDs that exist and tombstones them all.
func (w *wtx) remoteDeleted(uk []byte, userID string, ids []ulid.ULID) (bool, error) {
	var deleted []string
	wasUnread := 0
	for _, id := range ids {
		if has, _ := readState(w.items, uk, id); has {
			u, err := w.remove(uk, id)
			if err != nil {
				return false, err
			}
			if u {
				wasUnread++
			}
			deleted = append(deleted, id.String())
		}
		if err := w.tombstone(uk, id); err != nil {
			return false, err
		}
	}
	if len(deleted) == 0 {
		return false, nil
	}
	count := w.decUnread(uk, wasUnread)
	w.emit(uk, notification.Event{
		UserID: userID, Kind: notification.KindDeleted, IDs: deleted, UnreadCount: count,
	})
	return true, nil
}
