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

// runShipper ships the outbox until ctx ends, then makes a last attempt
// within FlushTimeout. One goroutine ships, oldest record first, and each
// batch goes out in one pipeline on one connection, so the stream and every
// channel see the changes in commit order. Records are removed from the
// outbox only after Redis accepted the whole batch: a failure ships them
// again (a change may reach Redis twice, and applying is idempotent; it is
// never dropped).
func (r *Redis) runShipper(ctx context.Context) {
	poll := time.NewTicker(r.opts.PollInterval)
	defer poll.Stop()
	bo := newBackoff(r.opts.BackoffMin, r.opts.BackoffMax)
	failing := false
	for {
		n, err := r.shipBatch(ctx)
		if ctx.Err() != nil {
			r.flushOnStop(ctx)
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
			// down Redis must not be hammered.
			if !wait(ctx, bo.next(), nil) {
				r.flushOnStop(ctx)
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
		select {
		case <-ctx.Done():
			r.flushOnStop(ctx)
			return
		case <-r.kick:
		case <-poll.C:
		}
	}
}

// shipBatch ships up to ShipBatch outbox records and returns how many.
func (r *Redis) shipBatch(ctx context.Context) (int, error) {
	recs, err := r.opts.Store.Outbox(r.opts.ShipBatch)
	if err != nil {
		return 0, fmt.Errorf("read outbox: %w", err)
	}
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
	keys := make([]uint64, len(recs))
	for i, rec := range recs {
		keys[i] = rec.Key
	}
	if err := r.opts.Store.AckOutbox(ctx, keys); err != nil {
		return 0, fmt.Errorf("ack %d shipped outbox records: %w", len(recs), err)
	}
	r.metrics.shipped.Add(float64(len(recs)))
	return len(recs), nil
}

// flushOnStop ships what it can within FlushTimeout after ctx ended. What
// is left ships at the next start.
func (r *Redis) flushOnStop(ctx context.Context) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.FlushTimeout)
	defer cancel()
	for {
		n, err := r.shipBatch(fctx)
		if err != nil || n < r.opts.ShipBatch {
			break
		}
	}
	if depth, err := r.opts.Store.OutboxDepth(); err == nil && depth > 0 {
		r.log.Info("outbox not empty at stop; it ships at the next start",
			"node_id", r.opts.NodeID, "outbox_depth", depth)
	}
}
