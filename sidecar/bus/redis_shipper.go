package bus

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// streamField is the field of a stream entry that holds the change JSON.
const streamField = "c"

// shipper is the shipper goroutine's own state.
type shipper struct {
	shippedUpTo uint64    // the highest outbox key Redis accepted
	pending     []uint64  // keys shipped but not yet removed from the outbox
	since       time.Time // when the oldest pending key was shipped
}

// runShipper ships the outbox until ctx ends, then makes a last attempt
// within FlushTimeout. One goroutine ships, oldest record first, and each
// batch goes out in one pipeline on one connection, so the stream and every
// channel see the changes in commit order.
//
// Records are removed from the outbox only after Redis accepted them, and
// the removals are grouped (every AckDelay, or half a batch): each removal
// is a durable commit, and one per shipped change would double the commits
// of a busy replica. A failure ships them again (a change may reach Redis
// twice, and applying is idempotent); nothing is dropped.
func (r *Redis) runShipper(ctx context.Context) {
	poll := time.NewTicker(r.opts.PollInterval)
	defer poll.Stop()
	ackTimer := time.NewTimer(time.Hour)
	ackTimer.Stop()
	defer ackTimer.Stop()
	bo := newBackoff(r.opts.BackoffMin, r.opts.BackoffMax)
	var sh shipper
	failing := false
	for {
		n, err := r.shipBatch(ctx, &sh)
		if err == nil {
			err = r.ackIfDue(ctx, &sh, false)
		}
		if ctx.Err() != nil {
			r.flushOnStop(ctx, &sh)
			return
		}
		if err != nil {
			r.metrics.shipErrors.Inc()
			if !failing {
				failing = true
				depth, _ := r.opts.Store.OutboxDepth()
				r.log.Warn("shipping the outbox to redis failed; retrying",
					"node_id", r.opts.NodeID, "outbox_depth", depth, "error", err)
			}
			// Kicks do not end the wait: every commit kicks, and a
			// down Redis must not be hammered. Redis coming back does.
			if !wait(ctx, bo.next(), r.shipWake) {
				r.flushOnStop(ctx, &sh)
				return
			}
			continue
		}
		if failing {
			failing = false
			r.log.Info("shipping the outbox to redis resumed", "node_id", r.opts.NodeID)
		}
		bo.reset()
		if n == r.opts.ShipBatch {
			continue // there may be more
		}
		if len(sh.pending) > 0 {
			ackTimer.Reset(max(0, r.opts.AckDelay-time.Since(sh.since)))
		}
		select {
		case <-ctx.Done():
			r.flushOnStop(ctx, &sh)
			return
		case <-r.kick:
		case <-poll.C:
		case <-ackTimer.C:
		}
		ackTimer.Stop()
	}
}

// shipBatch ships up to ShipBatch outbox records not shipped yet and
// returns how many.
func (r *Redis) shipBatch(ctx context.Context, sh *shipper) (int, error) {
	all, err := r.opts.Store.Outbox(r.opts.ShipBatch + len(sh.pending))
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
	recs := all[:0]
	for _, rec := range all {
		if rec.Key > sh.shippedUpTo {
			recs = append(recs, rec)
		}
	}
	recs = recs[:min(len(recs), r.opts.ShipBatch)]
	if len(recs) == 0 {
		return 0, nil
	}
	minID := strconv.FormatInt(time.Now().Add(-r.opts.StreamRetention).UnixMilli(), 10) + "-0"
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, rec := range recs {
			p.XAdd(ctx, &redis.XAddArgs{
				Stream: r.keys.stream,
				MinID:  minID,
				Approx: true,
				Values: []any{streamField, rec.Change},
			})
			p.Publish(ctx, r.keys.channel(rec.UserID), rec.Change)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("ship %d outbox records: %w", len(recs), err)
	}
	if len(sh.pending) == 0 {
		sh.since = time.Now()
	}
	for _, rec := range recs {
		sh.pending = append(sh.pending, rec.Key)
	}
	sh.shippedUpTo = recs[len(recs)-1].Key
	r.metrics.shipped.Add(float64(len(recs)))
	return len(recs), nil
}

// ackIfDue removes the shipped records from the outbox when AckDelay passed
// since the oldest was shipped, half a batch waits, or force is set.
func (r *Redis) ackIfDue(ctx context.Context, sh *shipper, force bool) error {
	if len(sh.pending) == 0 {
		return nil
	}
	if !force && len(sh.pending) < r.opts.ShipBatch/2 && time.Since(sh.since) < r.opts.AckDelay {
		return nil
	}
	if err := r.opts.Store.AckOutbox(ctx, sh.pending); err != nil {
		return fmt.Errorf("ack %d shipped outbox records: %w", len(sh.pending), err)
	}
	sh.pending = sh.pending[:0]
	return nil
}

// flushOnStop ships and acknowledges what it can within FlushTimeout after
// ctx ended. What is left ships at the next start.
func (r *Redis) flushOnStop(ctx context.Context, sh *shipper) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.FlushTimeout)
	defer cancel()
	for {
		n, err := r.shipBatch(fctx, sh)
		if err == nil {
			err = r.ackIfDue(fctx, sh, true)
		}
		if err != nil || n < r.opts.ShipBatch {
			break
		}
	}
	if depth, err := r.opts.Store.OutboxDepth(); err == nil && depth > 0 {
		r.log.Info("outbox not empty at stop; it ships at the next start",
			"node_id", r.opts.NodeID, "outbox_depth", depth)
	}
}
