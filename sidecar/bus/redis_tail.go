package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/heraldhq/herald/sidecar/notification"
)

// runTail catches up from the stream until ctx ends: it reads the stream
// from the cursor kept in the store, applies its changes (this replica's own
// too: see applyRemote) and moves the cursor on. After an error it waits (backoff, or until the
// live connection comes back) and starts again from the stored cursor.
func (r *Redis) runTail(ctx context.Context) {
	bo := newBackoff(r.opts.BackoffMin, r.opts.BackoffMax)
	for {
		err := r.tailSession(ctx, &bo)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.log.Debug("stream catch-up interrupted", "node_id", r.opts.NodeID, "error", err)
		}
		if !wait(ctx, bo.next(), r.tailKick) {
			return
		}
	}
}

// tailSession reads the stream from the stored cursor until an error.
func (r *Redis) tailSession(ctx context.Context, bo *backoff) error {
	stored, err := r.opts.Store.Cursor(r.keys.cursorName())
	if err != nil {
		return fmt.Errorf("read stream cursor: %w", err)
	}
	cur, err := parseCursor(stored)
	if err != nil {
		r.log.Warn("stream cursor unreadable; reading the stream from its start",
			"node_id", r.opts.NodeID, "error", err)
		cur = cursor{}
	}
	isNew := cur.epoch == ""
	checkGap, first := true, true
	for {
		// The epoch is read before every XREAD: a Redis restarted without
		// its data starts a new stream whose IDs may sort below the cursor.
		epoch, err := r.streamEpoch(ctx)
		if err != nil {
			return err
		}
		if cur.epoch != epoch {
			r.logEpochChange(cur, epoch, isNew)
			cur = cursor{epoch: epoch}
			checkGap = true
		}
		if checkGap {
			if cur, err = r.checkGap(ctx, cur, isNew); err != nil {
				return err
			}
			checkGap, isNew = false, false
		}

		// The first read of a session does not block, so that a replica
		// already at the end knows it at once.
		block := r.opts.TailBlock
		if first {
			block, first = -1, false
		}
		epochAtRead := r.gate.current()
		res, err := r.client.XRead(ctx, &redis.XReadArgs{
			Streams: []string{r.keys.stream, cur.id.String()},
			Count:   int64(r.opts.TailBatch),
			Block:   block,
		}).Result()
		if errors.Is(err, redis.Nil) {
			r.atStreamEnd(epochAtRead)
			continue
		}
		if err != nil {
			return fmt.Errorf("read stream: %w", err)
		}
		bo.reset()
		var entries []redis.XMessage
		if len(res) > 0 {
			entries = res[0].Messages
		}
		if cur, err = r.applyEntries(ctx, cur, entries); err != nil {
			return err
		}
		if len(entries) < r.opts.TailBatch {
			r.atStreamEnd(epochAtRead)
		} else {
			r.metrics.streamLag.Set(time.Since(time.UnixMilli(int64(cur.id.ms))).Seconds())
		}
	}
}

// atStreamEnd records that the catch-up has applied everything there was
// when its read of the gate's epoch e began.
func (r *Redis) atStreamEnd(e uint64) {
	r.gate.caughtUp(e)
	r.metrics.streamLag.Set(0)
	if r.state.setCaughtUp() {
		r.log.Info("caught up with the redis stream", "node_id", r.opts.NodeID)
	}
}

// applyEntries applies a batch of stream entries and returns the cursor
// after them, stored once for the batch.
//
// Each ApplyRemote waits for a durable commit, so one after the other a
// replica catching up would apply about one entry per fsync. The entries
// are therefore split by user over TailWorkers goroutines that run side by
// side, so the store commits their calls together; each user's changes stay
// in stream order, which is all that applying needs (a change only ever
// refers to its own user's notifications). The cursor moves only after the
// whole batch is applied: a crash in between applies part of it again,
// which changes nothing. Entries that change nothing here (this replica's
// own echo, those the live path applied first) cost no write, except
// deleted, which the read-only check never skips (see applied).
func (r *Redis) applyEntries(
	ctx context.Context, cur cursor, entries []redis.XMessage,
) (cursor, error) {
	shards := make([][]notification.Change, r.opts.TailWorkers)
	next := cur
	for _, e := range entries {
		id, err := parseStreamID(e.ID)
		if err != nil {
			return cur, fmt.Errorf("stream entry: %w", err)
		}
		next = cursor{epoch: cur.epoch, id: id, n: next.n + 1}
		c, ok := r.decodeEntry(e)
		// Own-origin entries are applied too: a replica whose store was
		// wiped recovers its own earlier changes this way (applyRemote).
		if ok {
			i := shardOf(c.UserID, len(shards))
			shards[i] = append(shards[i], c)
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, changes := range shards {
		if len(changes) == 0 {
			continue
		}
		g.Go(func() error { return r.applyInOrder(gctx, changes) })
	}
	if err := g.Wait(); err != nil {
		return cur, err // read the batch again from the stored cursor
	}
	if len(entries) > 0 {
		if err := r.opts.Store.SetCursor(ctx, r.keys.cursorName(), next.String()); err != nil {
			return cur, fmt.Errorf("store stream cursor: %w", err)
		}
	}
	return next, nil
}

// applyInOrder applies changes in their order, skipping invalid ones, in
// requests within remoteBatch's bounds that share a commit.
func (r *Redis) applyInOrder(ctx context.Context, changes []notification.Change) error {
	var b remoteBatch
	flush := func() error {
		if len(b.changes) == 0 {
			return nil
		}
		_, err := r.applyRemoteBatch(ctx, "stream", b.changes)
		b.reset()
		return err
	}
	for _, c := range changes {
		if b.add(c) {
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		b.add(c)
	}
	return flush()
}

// shardOf maps a user to one of n shards.
func shardOf(userID string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(userID))
	return int(h.Sum32() % uint32(n))
}

// decodeEntry returns the change of a stream entry, or false (counted and
// logged) when it holds none.
func (r *Redis) decodeEntry(e redis.XMessage) (notification.Change, bool) {
	var c notification.Change
	raw, _ := e.Values[streamField].(string)
	if err := json.Unmarshal([]byte(raw), &c); err != nil || c.Kind == "" {
		r.metrics.remote.WithLabelValues("stream", remoteInvalid).Inc()
		r.warnDropped("stream entry dropped: not a change", "entry_id", e.ID, "length", len(raw))
		return c, false
	}
	return c, true
}

// streamEpoch returns the stream's epoch, a random value stored next to it
// the first time any replica looks; a Redis that lost its data gets a new
// one, which tells the replicas that the stream started again.
func (r *Redis) streamEpoch(ctx context.Context) (string, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	mine := hex.EncodeToString(b[:])
	set := redis.SetArgs{Mode: "NX", Get: true}
	old, err := r.client.SetArgs(ctx, r.keys.epoch, mine, set).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return mine, nil
	case err != nil:
		return "", fmt.Errorf("read stream epoch: %w", err)
	}
	return old, nil
}

func (r *Redis) logEpochChange(cur cursor, epoch string, isNew bool) {
	if isNew {
		r.log.Info("catching up from the start of the redis stream", "node_id", r.opts.NodeID)
		return
	}
	r.log.Warn("redis stream was reset (redis lost its data, or the stream was deleted); "+
		"reading the new stream from its start",
		"node_id", r.opts.NodeID, "old_epoch", cur.epoch, "epoch", epoch, "old_cursor", cur.id.String())
}

// checkGap reports entries trimmed from the stream before this replica
// read them, which happens when it was away longer than the retention, and
// returns the cursor with its ordinal moved past them. It assumes nobody
// XDELs entries of the stream (a deleted entry would count as trimmed).
func (r *Redis) checkGap(ctx context.Context, cur cursor, isNew bool) (cursor, error) {
	info, err := r.client.XInfoStream(ctx, r.keys.stream).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return cur, nil // no stream yet: nothing was trimmed
		}
		return cur, fmt.Errorf("inspect stream: %w", err)
	}
	trimmed := info.EntriesAdded - info.Length
	if trimmed <= cur.n {
		return cur, nil
	}
	missed := trimmed - cur.n
	first := info.FirstEntry.ID
	cur.n = trimmed
	if isNew {
		r.log.Warn("new replica: changes older than the stream's window are not replicated here",
			"node_id", r.opts.NodeID, "trimmed_entries", missed, "first_entry_id", first)
		return cur, nil
	}
	r.metrics.gaps.Inc()
	gap := time.Duration(0)
	if fid, err := parseStreamID(first); err == nil && cur.id.ms > 0 {
		gap = time.UnixMilli(int64(fid.ms)).Sub(time.UnixMilli(int64(cur.id.ms)))
	}
	r.log.Error("stream cursor fell out of the retention window",
		"node_id", r.opts.NodeID, "cursor", cur.id.String(), "first_entry_id", first,
		"missed_entries", missed, "gap", gap)
	return cur, nil
}
