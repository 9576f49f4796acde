package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// OutboxRecord is a local change waiting to be shipped to Redis.
type OutboxRecord struct {
	// Key orders the records; pass it to AckOutbox.
	Key uint64
	// UserID is the change's user, for per-user ordering.
	UserID string
	// Change is the encoded notification.Change (JSON). It is the caller's.
	Change []byte
}

// Outbox returns up to limit outbox records, oldest first. It does not remove
// them: AckOutbox does, once they are shipped.
func (s *Store) Outbox(limit int) ([]OutboxRecord, error) {
	if limit < 1 {
		return nil, fmt.Errorf("read outbox: limit %d, must be at least 1", limit)
	}
	var recs []OutboxRecord
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.First(); k != nil && len(recs) < limit; k, v = c.Next() {
			user, rest, ok := userOfKey(v)
			if len(k) != 8 || !ok {
				return fmt.Errorf("outbox record %x: %w", k, errCorrupt)
			}
			recs = append(recs, OutboxRecord{
				Key:    binary.BigEndian.Uint64(k),
				UserID: user,
				Change: bytes.Clone(rest),
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return recs, nil
}

// OutboxDepth returns how many records wait in the outbox. It reads a counter
// kept in memory, so it is cheap enough for every metrics scrape.
func (s *Store) OutboxDepth() (int, error) {
	if s.isClosed.Load() {
		return 0, ErrClosed
	}
	return int(s.outboxDepth.Load()), nil
}

// AckOutbox removes shipped records, durably. Keys that are not in the
// outbox (already acknowledged) are ignored.
func (s *Store) AckOutbox(ctx context.Context, keys []uint64) error {
	if len(keys) == 0 {
		return nil
	}
	err := s.submit(ctx, len(keys), func(w *wtx) error {
		for _, key := range keys {
			k := putUint64(key)
			if w.outbox.Get(k) == nil {
				continue
			}
			if err := w.outbox.Delete(k); err != nil {
				return fmt.Errorf("delete outbox record: %w", err)
			}
			w.outboxDelta--
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ack outbox: %w", err)
	}
	return nil
}

// countOutbox counts the outbox records, once at Open.
func countOutbox(tx *bolt.Tx) int64 {
	return int64(tx.Bucket(bucketOutbox).Stats().KeyN)
}
