package bus

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Presence in Redis: each node keeps a hash {ns}:presence:{node} (user →
// live sockets) whose expiry is 3 presence intervals, and an entry in the
// sorted set {ns}:nodes (node → time of its last write, unix ms). The
// control goroutine writes the counts that changed about once a second
// (and at once when a user's first socket opens or last closes), and
// rewrites the hash whole every PresenceInterval, which also restores it
// after Redis lost its data. A node that dies without cleaning up drops out
// after 3 intervals. Presence reads this node's count live and the others'
// from Redis.

// presenceState is what the control goroutine last wrote, and the buffers
// it fills on each sync; it owns them. The diff sync runs every second over
// every user with a socket here, so it reuses its maps and slices: at 17,000
// users, fresh ones made about 1.5 MB of garbage a second on an idle
// replica, which showed as RSS growth in the idle benchmark.
type presenceState struct {
	written map[string]int // what Redis holds
	known   bool           // written is what Redis holds; false: rewrite whole

	counts map[string]int // this sync's counts; swapped with written on success
	users  []string
	set    []any
	del    []string
}

func (r *Redis) presenceTTL() time.Duration { return 3 * r.opts.PresenceInterval }

// countLocal fills ps.counts with this node's live sockets per user.
func (r *Redis) countLocal(ps *presenceState) {
	if ps.counts == nil {
		ps.counts = make(map[string]int)
	}
	clear(ps.counts)
	ps.users = r.live.appendUsers(ps.users[:0])
	for _, u := range ps.users {
		if c := r.localCount(u); c > 0 {
			ps.counts[u] = c
		}
	}
	clear(ps.users) // drop the references until the next sync
}

// syncPresence writes this node's counts to Redis: the whole hash when full
// is set or the last write failed, else only what changed since.
func (r *Redis) syncPresence(ctx context.Context, ps *presenceState, full bool) {
	r.countLocal(ps)
	counts := ps.counts
	full = full || !ps.known
	set, del := ps.set[:0], ps.del[:0]
	defer func() {
		clear(set)
		ps.set, ps.del = set[:0], del[:0]
	}()
	for u, c := range counts {
		if full || ps.written[u] != c {
			set = append(set, u, c)
		}
	}
	if !full {
		for u := range ps.written {
			if _, ok := counts[u]; !ok {
				del = append(del, u)
			}
		}
		if len(set) == 0 && len(del) == 0 {
			return
		}
	}
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if full {
			p.Del(ctx, r.keys.presence)
		}
		for chunk := range slices.Chunk(set, 1000) {
			p.HSet(ctx, r.keys.presence, chunk...)
		}
		if len(del) > 0 {
			p.HDel(ctx, r.keys.presence, del...)
		}
		p.PExpire(ctx, r.keys.presence, r.presenceTTL())
		p.ZAdd(ctx, r.keys.nodes, redis.Z{Score: float64(time.Now().UnixMilli()), Member: r.opts.NodeID})
		if full {
			stale := time.Now().Add(-10 * r.presenceTTL()).UnixMilli()
			p.ZRemRangeByScore(ctx, r.keys.nodes, "-inf", strconv.FormatInt(stale, 10))
		}
		return nil
	})
	if err != nil {
		ps.known = false
		if ctx.Err() == nil {
			r.log.Debug("write presence", "error", err)
		}
		return
	}
	ps.written, ps.counts = counts, ps.written
	ps.known = true
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
// now, the other nodes' as they last wrote them (about a second old).
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
