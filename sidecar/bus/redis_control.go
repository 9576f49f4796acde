package bus

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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
// presence in Redis, until ctx ends; then it removes the presence.
//
// Presence: each node keeps a hash {ns}:presence:{node} (user → sockets) with
// an expiry of 3 presence intervals, rewritten whole every interval and
// updated at once when a user's first socket opens or last one closes; and
// a sorted set {ns}:nodes (node → time of its last rewrite). A node that
// dies without cleaning up drops out after 3 intervals. Counts of users who
// open a second socket are refreshed at the next interval; this node's own
// count is always read live.
func (r *Redis) runControl(ctx context.Context) {
	t := time.NewTicker(r.opts.PresenceInterval)
	defer t.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	bo := newBackoff(r.opts.BackoffMin, r.opts.BackoffMax)
	r.refreshPresence(ctx)
	for {
		select {
		case <-ctx.Done():
			r.dropPresence(ctx)
			return
		case <-r.ctl.wake:
		case <-retry.C:
			r.ctl.requestResync()
			continue
		case <-t.C:
			r.refreshPresence(ctx)
			continue
		}
		if err := r.applyWatches(ctx); err != nil && ctx.Err() == nil {
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
		if perr := r.updatePresence(ctx, added, removed); perr != nil {
			r.log.Debug("update presence", "error", perr)
		}
	}
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	return nil
}

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

func (r *Redis) presenceTTL() time.Duration { return 3 * r.opts.PresenceInterval }

// updatePresence records users that gained their first or lost their last
// socket here.
func (r *Redis) updatePresence(ctx context.Context, added, removed []string) error {
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, u := range added {
			p.HSet(ctx, r.keys.presence, u, max(r.localCount(u), 1))
		}
		if len(removed) > 0 {
			p.HDel(ctx, r.keys.presence, removed...)
		}
		r.touchPresence(ctx, p)
		return nil
	})
	return err
}

// refreshPresence rewrites this node's presence hash whole.
func (r *Redis) refreshPresence(ctx context.Context) {
	users := r.live.users()
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, r.keys.presence)
		for chunk := range slices.Chunk(users, 500) {
			args := make([]any, 0, 2*len(chunk))
			for _, u := range chunk {
				if n := r.localCount(u); n > 0 {
					args = append(args, u, n)
				}
			}
			if len(args) > 0 {
				p.HSet(ctx, r.keys.presence, args...)
			}
		}
		r.touchPresence(ctx, p)
		stale := time.Now().Add(-10 * r.presenceTTL()).UnixMilli()
		p.ZRemRangeByScore(ctx, r.keys.nodes, "-inf", strconv.FormatInt(stale, 10))
		return nil
	})
	if err != nil && ctx.Err() == nil {
		r.log.Debug("refresh presence", "error", err)
	}
}

// touchPresence renews the presence hash's expiry and this node's entry.
func (r *Redis) touchPresence(ctx context.Context, p redis.Pipeliner) {
	p.PExpire(ctx, r.keys.presence, r.presenceTTL())
	p.ZAdd(ctx, r.keys.nodes, redis.Z{Score: float64(time.Now().UnixMilli()), Member: r.opts.NodeID})
}

// dropPresence removes this node's presence at shutdown, best effort.
func (r *Redis) dropPresence(ctx context.Context) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.FlushTimeout/2)
	defer cancel()
	_, err := r.client.TxPipelined(dctx, func(p redis.Pipeliner) error {
		p.Del(dctx, r.keys.presence)
		p.ZRem(dctx, r.keys.nodes, r.opts.NodeID)
		return nil
	})
	if err != nil {
		r.log.Debug("remove presence at stop", "error", err)
	}
}

// Presence returns the user's live sockets per node: this node's count read
// now, other nodes' as of their last presence update (at most one presence
// interval old for a changed count; at once for a first or last socket).
// Nodes without sockets of the user are left out, except this one.
func (r *Redis) Presence(ctx context.Context, userID string) (map[string]int64, error) {
	out := map[string]int64{r.opts.NodeID: int64(r.localCount(userID))}
	since := time.Now().Add(-r.presenceTTL()).UnixMilli()
	nodes, err := r.client.ZRangeByScore(ctx, r.keys.nodes, &redis.ZRangeBy{
		Min: strconv.FormatInt(since, 10), Max: "+inf",
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("bus: presence of user: read nodes: %w", err)
	}
	nodes = slices.DeleteFunc(nodes, func(n string) bool { return n == r.opts.NodeID })
	if len(nodes) == 0 {
		return out, nil
	}
	cmds := make([]*redis.StringCmd, len(nodes))
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range nodes {
			cmds[i] = p.HGet(ctx, r.keys.presenceOf(n), userID)
		}
		return nil
	})
	if err != nil && err != redis.Nil {
		return nil, fmt.Errorf("bus: presence of user: read counts: %w", err)
	}
	for i, n := range nodes {
		if c, err := cmds[i].Int64(); err == nil && c > 0 {
			out[n] = c
		}
	}
	return out, nil
}
