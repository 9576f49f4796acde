package bus

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// control holds the Watch/Unwatch requests not yet applied. The map has one
// entry per user, the last request wins, so it is bounded by the number of
// users with sockets and the gateway never waits for Redis.
type control struct {
	mu      sync.Mutex
	pending map[string]bool // user ID → wanted
	resync  bool
	wake    chan struct{}
}

func (c *control) init() {
	c.pending = make(map[string]bool)
	c.wake = make(chan struct{}, 1)
}

func (c *control) request(userID string, want bool) {
	if userID == "" {
		return
	}
	c.mu.Lock()
	c.pending[userID] = want
	c.mu.Unlock()
	c.signal()
}

// requestResync asks for the whole subscription set to be sent again.
func (c *control) requestResync() {
	c.mu.Lock()
	c.resync = true
	c.mu.Unlock()
	c.signal()
}

func (c *control) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *control) take() (map[string]bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, rs := c.pending, c.resync
	c.pending, c.resync = make(map[string]bool), false
	return p, rs
}

// runControl turns Watch/Unwatch into subscriptions and keeps this node's
// presence in Redis (redis_presence.go), until ctx ends; then it removes
// the presence.
func (r *Redis) runControl(ctx context.Context) {
	full := time.NewTicker(r.opts.PresenceInterval)
	defer full.Stop()
	diff := time.NewTicker(min(time.Second, r.opts.PresenceInterval))
	defer diff.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	bo := newBackoff(r.opts.BackoffMin, r.opts.BackoffMax)
	var pr presenceState
	r.syncPresence(ctx, &pr, true)
	for {
		select {
		case <-ctx.Done():
			r.dropPresence(ctx)
			return
		case <-r.ctl.wake:
		case <-retry.C:
			r.ctl.requestResync()
			continue
		case <-full.C:
			r.syncPresence(ctx, &pr, true)
			continue
		case <-diff.C:
			r.syncPresence(ctx, &pr, false)
			continue
		}
		err := r.applyWatches(ctx)
		r.syncPresence(ctx, &pr, false)
		if err != nil && ctx.Err() == nil {
			r.log.Debug("update live subscriptions; retrying", "error", err)
			retry.Reset(bo.next())
			continue
		}
		bo.reset()
	}
}

// applyWatches applies the pending Watch/Unwatch requests.
func (r *Redis) applyWatches(ctx context.Context) error {
	pending, resync := r.ctl.take()
	var adds, removes []string
	for u, want := range pending {
		if !want && r.localCount(u) > 0 {
			want = true // another socket of the user is still open here
		}
		if want {
			adds = append(adds, u)
		} else {
			removes = append(removes, u)
		}
	}
	added, removed, err := r.updateLive(ctx, adds, removes)
	if resync || err != nil {
		err = r.resubscribeLive(ctx)
	}
	if len(added)+len(removed) > 0 {
		r.log.Trace("live subscriptions updated", "added", len(added), "removed", len(removed))
	}
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	return nil
}

// localCount is this node's live sockets of a user: LocalCount's answer, or
// without it 1 for a subscribed user.
func (r *Redis) localCount(userID string) int {
	if r.opts.LocalCount == nil {
		r.live.mu.Lock()
		_, ok := r.live.subscribed[userID]
		r.live.mu.Unlock()
		if ok {
			return 1
		}
		return 0
	}
	return r.opts.LocalCount(userID)
}
