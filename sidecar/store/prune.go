package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

// pruneBatch is the most keys one prune transaction deletes, so that a big
// prune never holds the writer for long: each batch is one request in the
// writer's queue, between the others. pruneScanMax is the most keys one scan
// visits, so that no read transaction is long either.
const (
	pruneBatch   = 1000
	pruneScanMax = 20000
)

// Prune deletes read notifications created before olderThan, and idempotency
// keys and tombstones older than it, and returns how many notifications it
// deleted. Unread notifications are never pruned. It works in transactions
// of at most 1000 deletions, each queued like any write, so writers are not
// starved; on ctx's end it stops between two of them and returns what it
// had deleted with ctx.Err(). It emits no events: sockets keep what they
// show, and each replica prunes its own file.
//
// A pruned notification is forgotten: if a replay of the Redis stream later
// brings its "created" again, it comes back unread, and the replay's later
// "read" marks it read again. Keep the retention longer than the stream's
// window to avoid that churn.
func (s *Store) Prune(ctx context.Context, olderThan time.Time) (int, error) {
	horizon := ulid.Timestamp(olderThan)
	deleted, err := s.pruneBucket(ctx, bucketNotifications, s.oldReadNotifications(horizon), deleteReadNotifications)
	if err != nil {
		return deleted, fmt.Errorf("prune notifications: %w", err)
	}
	idemOld := func(_, v []byte) bool { return len(v) == idLen && ulid.ULID(v).Time() < horizon }
	if _, err := s.pruneBucket(ctx, bucketIdempotency, scanAll(idemOld), deleteKeys(bucketIdempotency)); err != nil {
		return deleted, fmt.Errorf("prune idempotency keys: %w", err)
	}
	tombOld := func(_, v []byte) bool { return getUint64(v) < horizon }
	if _, err := s.pruneBucket(ctx, bucketTombstones, scanAll(tombOld), deleteKeys(bucketTombstones)); err != nil {
		return deleted, fmt.Errorf("prune tombstones: %w", err)
	}
	s.log.Debug("store pruned", "notifications", deleted, "older_than", olderThan)
	return deleted, nil
}

// A pruneScan collects up to pruneBatch keys to delete from the bucket,
// starting at from (nil: the first key), and returns them with the key to
// resume at (nil: the scan is over). Keys are copied out of the transaction.
type pruneScan func(b *bolt.Bucket, tx *bolt.Tx, from []byte) (keys [][]byte, next []byte)

// A pruneDelete deletes keys in the writer's transaction and returns how
// many it deleted.
type pruneDelete func(w *wtx, keys [][]byte) (int, error)

// pruneBucket alternates a read-only scan and a bounded delete until the
// scan is over: it never deletes under a moving cursor.
func (s *Store) pruneBucket(ctx context.Context, name []byte, scan pruneScan, del pruneDelete) (int, error) {
	total := 0
	var from []byte
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		var keys [][]byte
		var next []byte
		err := s.view(func(tx *bolt.Tx) error {
			keys, next = scan(tx.Bucket(name), tx, from)
			return nil
		})
		if err != nil {
			return total, err
		}
		if len(keys) > 0 {
			var n int
			err := s.submit(ctx, len(keys), func(w *wtx) error {
				var err error
				n, err = del(w, keys)
				return err
			})
			if err != nil {
				return total, err
			}
			total += n
		}
		if next == nil {
			return total, nil
		}
		from = next
	}
}

// scanAll returns a scan over every key, selecting those old says are old.
func scanAll(old func(k, v []byte) bool) pruneScan {
	return func(b *bolt.Bucket, _ *bolt.Tx, from []byte) ([][]byte, []byte) {
		var keys [][]byte
		c := b.Cursor()
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
		}
		for visited := 0; k != nil; k, v = c.Next() {
			if len(keys) == pruneBatch || visited == pruneScanMax {
				return keys, bytes.Clone(k)
			}
			visited++
			if old(k, v) {
				keys = append(keys, bytes.Clone(k))
			}
		}
		return keys, nil
	}
}

// oldReadNotifications returns a scan of the notifications created before
// horizon (Unix ms) that are read. The notifications bucket is in ID order,
// which is time order, so the scan ends at the first new one. It collects
// user key ‖ ID of each.
func (s *Store) oldReadNotifications(horizon uint64) pruneScan {
	return func(b *bolt.Bucket, tx *bolt.Tx, from []byte) ([][]byte, []byte) {
		items := tx.Bucket(bucketItems)
		var keys [][]byte
		c := b.Cursor()
		k, v := c.First()
		if from != nil {
			k, v = c.Seek(from)
		}
		for visited := 0; k != nil; k, v = c.Next() {
			if len(keys) == pruneBatch || visited == pruneScanMax {
				return keys, bytes.Clone(k)
			}
			visited++
			id, ok := splitItemKey(k)
			if !ok || len(k) != idLen {
				continue
			}
			if id.Time() >= horizon {
				break
			}
			uk := bodyUserKey(v)
			if uk != nil && exists(items, entryKey(uk, tagRead, id)) {
				keys = append(keys, itemKey(uk, id))
			}
		}
		return keys, nil
	}
}

// deleteReadNotifications deletes notifications, given as user key ‖ ID,
// that are still read (one could have been deleted since the scan; none
// becomes unread again).
func deleteReadNotifications(w *wtx, keys [][]byte) (int, error) {
	n := 0
	for _, k := range keys {
		id, _ := splitItemKey(k)
		entry := entryKey(k[:len(k)-idLen], tagRead, id)
		if !exists(w.items, entry) {
			continue
		}
		if err := w.items.Delete(entry); err != nil {
			return 0, fmt.Errorf("delete read entry: %w", err)
		}
		if err := w.notifs.Delete(id[:]); err != nil {
			return 0, fmt.Errorf("delete notification: %w", err)
		}
		n++
	}
	return n, nil
}

// deleteKeys returns a delete of keys from the named bucket.
func deleteKeys(name []byte) pruneDelete {
	return func(w *wtx, keys [][]byte) (int, error) {
		b := w.tx.Bucket(name)
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return 0, fmt.Errorf("delete %s key: %w", name, err)
			}
		}
		return len(keys), nil
	}
}

// RunRetention prunes what is older than maxAge now and then every interval,
// until ctx ends; then it returns nil (or an error wrapping ErrClosed if the
// store is closed first). It blocks: run it on a goroutine the
// caller owns and waits for. Failures are logged and retried at the next tick.
func (s *Store) RunRetention(ctx context.Context, every, maxAge time.Duration) error {
	if every <= 0 || maxAge <= 0 {
		return fmt.Errorf("run retention: interval %v and max age %v must be positive", every, maxAge)
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		start := time.Now()
		n, err := s.Prune(ctx, s.opts.Now().Add(-maxAge))
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrClosed):
			return fmt.Errorf("run retention: %w", err)
		case err != nil:
			s.log.Warn("retention prune failed", "error", err)
		case n > 0:
			s.log.Info("retention pruned", "notifications", n, "duration", time.Since(start))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
