package bus

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/sidecar/notification"
)

// subscribeChunk is the most channels one SUBSCRIBE or UNSUBSCRIBE names.
const subscribeChunk = 500

// live is the bus's Pub/Sub connection: the subscribed user channels, plus
// one pattern subscription on every live channel.
//
// Why the pattern: a bare message (PROTOCOL.md, published by another
// program) must be stored on every replica, also on those with no socket of
// its user, which therefore do not SUBSCRIBE to its channel. Redis cannot
// filter by content, so the pattern delivers every message on every live
// channel; the receiver drops Herald's own envelopes from it after a prefix
// check and handles only bare messages from it, while envelopes are taken
// from the per-user subscriptions only. The cost is that every replica reads
// every envelope once more; at a few thousand changes a second over the
// cluster that is a small share of one core.
//
// Why the bus reads the PubSub itself instead of using go-redis's Channel():
// Channel drops a message when the consumer is slow for a minute, and hides
// connection errors, while the bus must see every loss to report it and to
// catch up from the stream.
type live struct {
	mu         sync.Mutex
	ps         *redis.PubSub       // the current connection; nil while replaced
	subscribed map[string]struct{} // user IDs whose channels are subscribed
	closed     bool                // set at shutdown: no new connection

	lastRecv atomic.Int64 // unix nanoseconds of the last message, ack or pong
	up       atomic.Bool  // the receiver believes the connection works
	wasUp    atomic.Bool  // it worked at least once
}

func (l *live) init() { l.subscribed = make(map[string]struct{}) }

// current returns the connection, how long it has been quiet and whether it
// is believed up.
func (l *live) current() (*redis.PubSub, time.Duration, bool) {
	l.mu.Lock()
	ps := l.ps
	l.mu.Unlock()
	quiet := time.Since(time.Unix(0, l.lastRecv.Load()))
	return ps, quiet, l.up.Load()
}

// isCurrent reports whether ps is still the connection in use.
func (l *live) isCurrent(ps *redis.PubSub) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ps == ps
}

// replace closes ps so that the receiver opens a new connection.
func (l *live) replace(ps *redis.PubSub) {
	l.mu.Lock()
	if l.ps == ps {
		l.ps = nil
	}
	l.mu.Unlock()
	_ = ps.Close()
}

// closeCurrent closes the connection for good, at shutdown.
func (l *live) closeCurrent() {
	l.mu.Lock()
	l.closed = true
	ps := l.ps
	l.ps = nil
	l.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
	}
}

// appendUsers appends the subscribed user IDs to dst.
func (l *live) appendUsers(dst []string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for u := range l.subscribed {
		dst = append(dst, u)
	}
	return dst
}

// openLive creates the connection, subscribed to the pattern and to the channel
// of every subscribed user. It returns nil after closeCurrent. A Redis that
// is down is no error here: go-redis remembers the subscriptions and sends
// them when the receiver's first Receive connects.
func (r *Redis) openLive(ctx context.Context) *redis.PubSub {
	l := &r.live
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	ps := r.client.PSubscribe(ctx, r.keys.pattern)
	chans := make([]string, 0, len(l.subscribed))
	for u := range l.subscribed {
		chans = append(chans, r.keys.channel(u))
	}
	for c := range slices.Chunk(chans, subscribeChunk) {
		if err := ps.Subscribe(ctx, c...); err != nil {
			break // the rest is remembered and sent on connect
		}
	}
	l.ps = ps
	l.lastRecv.Store(time.Now().UnixNano())
	return ps
}

// updateLive subscribes to the channels of adds and unsubscribes from those of
// removes, skipping users already in the wanted state, and returns the users
// whose state changed. go-redis records each change even when Redis is down
// and replays the whole set on its next connection, so the set it
// resubscribes after a reconnect is exactly the wanted one.
func (r *Redis) updateLive(ctx context.Context, adds, removes []string) (
	added, removed []string, err error,
) {
	l := &r.live
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, u := range adds {
		if _, ok := l.subscribed[u]; !ok {
			l.subscribed[u] = struct{}{}
			added = append(added, u)
		}
	}
	for _, u := range removes {
		if _, ok := l.subscribed[u]; ok {
			delete(l.subscribed, u)
			removed = append(removed, u)
		}
	}
	if l.ps == nil {
		return added, removed, nil // openLive subscribes the whole set
	}
	var errs []error
	for c := range slices.Chunk(r.channels(added), subscribeChunk) {
		errs = append(errs, l.ps.Subscribe(ctx, c...))
	}
	for c := range slices.Chunk(r.channels(removed), subscribeChunk) {
		errs = append(errs, l.ps.Unsubscribe(ctx, c...))
	}
	return added, removed, errors.Join(errs...)
}

// resubscribeLive sends SUBSCRIBE for the whole set again (Redis ignores a
// repeated SUBSCRIBE). It repairs the one case go-redis's replay misses: a
// SUBSCRIBE whose write failed while go-redis reconnected at once.
func (r *Redis) resubscribeLive(ctx context.Context) error {
	l := &r.live
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ps == nil || len(l.subscribed) == 0 {
		return nil
	}
	users := make([]string, 0, len(l.subscribed))
	for u := range l.subscribed {
		users = append(users, u)
	}
	for c := range slices.Chunk(r.channels(users), subscribeChunk) {
		if err := l.ps.Subscribe(ctx, c...); err != nil {
			return err
		}
	}
	return nil
}

func (r *Redis) channels(users []string) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = r.keys.channel(u)
	}
	return out
}

// runLive owns the live connection: it opens it, receives and applies
// messages in arrival order, and opens a new one when the health loop
// closed a silent one, until ctx ends.
func (r *Redis) runLive(ctx context.Context) {
	appliers := r.startLiveAppliers(ctx, r.opts.TailWorkers)
	defer appliers.stop()
	bo := newBackoff(r.opts.BackoffMin, r.opts.BackoffMax)
	for ctx.Err() == nil {
		ps := r.openLive(ctx)
		if ps == nil {
			return
		}
		r.receive(ctx, ps, &bo, appliers)
	}
}

// receive reads ps until it is closed or ctx ends. go-redis reconnects and
// resubscribes by itself after a connection error; each error is reported,
// and the first message after one means the connection is back.
func (r *Redis) receive(ctx context.Context, ps *redis.PubSub, bo *backoff, appliers *liveAppliers) {
	for {
		msg, err := ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil || !r.live.isCurrent(ps) {
				return
			}
			r.liveDown(err)
			if !wait(ctx, bo.next(), r.liveWake) {
				return
			}
			continue
		}
		bo.reset()
		r.live.lastRecv.Store(time.Now().UnixNano())
		r.liveUp()
		if m, ok := msg.(*redis.Message); ok {
			r.handleLive(ctx, m, appliers)
		}
	}
}

// liveDown records that the live connection was lost: messages published
// from now on until it is back are lost to Pub/Sub, so the tailer is woken
// to fetch them from the stream.
func (r *Redis) liveDown(err error) {
	r.live.up.Store(false)
	if r.state.setLive(err) {
		r.log.Warn("live subscription lost", "node_id", r.opts.NodeID, "error", err)
	}
	r.kickTail()
}

// liveUp records that the live connection works. The live appliers wait
// until the catch-up has brought what Pub/Sub lost meanwhile (liveGate).
func (r *Redis) liveUp() {
	if r.live.up.Swap(true) {
		return
	}
	r.gate.hold()
	r.state.setLive(nil)
	if r.live.wasUp.Swap(true) {
		r.metrics.reconnects.Inc()
		r.log.Info("live subscription restored", "node_id", r.opts.NodeID)
		r.ctl.requestResync()
	} else {
		r.log.Debug("live subscription up", "node_id", r.opts.NodeID)
	}
	r.kickTail() // catch up on what was published during the gap
}

// handleLive decodes one message of the live connection and hands it to
// its user's applier; bare messages (rare) are handled here.
func (r *Redis) handleLive(ctx context.Context, m *redis.Message, appliers *liveAppliers) {
	user, ok := r.keys.userOf(m.Channel)
	if !ok {
		return
	}
	if m.Pattern != "" {
		if !isEnvelope(m.Payload) {
			r.handleBare(ctx, m.Channel, user, m.Payload)
		}
		return
	}
	var c notification.Change
	if err := json.Unmarshal([]byte(m.Payload), &c); err != nil || c.Kind == "" {
		return // a bare message or garbage: the pattern subscription handles it
	}
	if c.UserID != user {
		r.metrics.remote.WithLabelValues("live", remoteInvalid).Inc()
		r.warnDropped("live change dropped: user differs from its channel",
			"user_id", user, "kind", string(c.Kind), "origin", c.Origin)
		return
	}
	appliers.dispatch(ctx, c)
}

// applyRemote applies a change received from Redis and counts the result.
// It returns the store's error, if any. A change already applied here is
// not written again.
//
// Changes whose Origin is this replica's node ID are applied like any
// other. Normally they are this replica's own echo: its store already has
// them, so the read-only check (applied) or ApplyRemote finds nothing to do
// and no event is emitted; the commit hook pushed the change to the sockets
// when it was made here, so nothing is pushed twice (BH-04). Skipping them
// instead would silently lose changes whenever the node ID does not mean
// "made by this store": two replicas started with the same --node-id, or a
// replica with a fixed node ID whose data directory was wiped and must
// catch up its own earlier changes from the stream. Such a change does
// change state here; it is applied, counted as own_applied and warned about.
func (r *Redis) applyRemote(ctx context.Context, path string, c notification.Change) error {
	invalid, err := r.applyRemoteBatch(ctx, path, []notification.Change{c})
	if err != nil {
		return err
	}
	return invalid
}

// applyRemoteBatch applies changes in order as applyRemote applies each,
// in one store request, so that they share a durable commit. It returns
// the store's error, if any, after which none of them was applied, and
// otherwise the refusal of the last invalid change (the others applied).
func (r *Redis) applyRemoteBatch(ctx context.Context, path string, changes []notification.Change) (invalid, err error) {
	// The read-only check looks at the committed state, so it may skip a
	// change only if no change before it in the batch touches its user: a
	// read of an ID created earlier in the batch is not applied yet.
	// created is the exception, since an ID that exists stays known.
	todo := changes[:0:0]
	var pending map[string]struct{}
	for _, c := range changes {
		_, touched := pending[c.UserID]
		if (!touched || c.Kind == notification.KindCreated) && r.applied(c) {
			r.metrics.remote.WithLabelValues(path, r.unchangedLabel(c)).Inc()
			continue
		}
		if len(changes) > 1 {
			if pending == nil {
				pending = make(map[string]struct{})
			}
			pending[c.UserID] = struct{}{}
		}
		todo = append(todo, c)
	}
	if len(todo) == 0 {
		return nil, nil
	}
	results, err := r.opts.Store.ApplyRemoteBatch(ctx, todo)
	if err != nil {
		if ctx.Err() == nil {
			r.metrics.remote.WithLabelValues(path, remoteError).Add(float64(len(todo)))
			r.warnDropped("apply remote changes failed", "path", path, "changes", len(todo), "error", err)
		}
		return nil, err
	}
	for i, res := range results {
		c := todo[i]
		own := c.Origin == r.opts.NodeID
		switch {
		case res.Invalid != nil:
			invalid = res.Invalid
			r.metrics.remote.WithLabelValues(path, remoteInvalid).Inc()
			r.warnDropped("remote change dropped: invalid", "path", path, "user_id", c.UserID,
				"kind", string(c.Kind), "origin", c.Origin, "error", res.Invalid)
		case res.Changed && own:
			r.metrics.remote.WithLabelValues(path, remoteOwnApplied).Inc()
			r.warnForeignOwn(path, c)
		case res.Changed:
			r.metrics.remote.WithLabelValues(path, remoteApplied).Inc()
		default:
			r.metrics.remote.WithLabelValues(path, r.unchangedLabel(c)).Inc()
		}
	}
	return invalid, nil
}

// unchangedLabel is the metric label of a change that changed nothing here:
// own for this replica's normal echo.
func (r *Redis) unchangedLabel(c notification.Change) string {
	if c.Origin == r.opts.NodeID {
		return remoteOwn
	}
	return remoteUnchanged
}

// warnForeignOwn logs, rate-limited, that a change bearing this replica's
// node ID changed its store, i.e. this store did not make it or lost it.
// No notification content is logged.
func (r *Redis) warnForeignOwn(path string, c notification.Change) {
	r.ownWarn.warn(r.log, "this replica's node id appears on changes it did not make or lost: "+
		"its data directory was replaced, or two replicas share --node-id; applying them",
		"node_id", r.opts.NodeID, "path", path, "kind", string(c.Kind), "user_id", c.UserID)
}

// isEnvelope reports whether a payload carries a kind, i.e. is a change
// published by a Herald rather than a bare notification. Herald's envelopes
// start with the kind, so the common case costs no decoding.
func isEnvelope(payload string) bool {
	if strings.HasPrefix(payload, `{"kind":"`) {
		return true
	}
	var probe struct {
		Kind json.RawMessage `json:"kind"`
	}
	if err := json.Unmarshal([]byte(payload), &probe); err != nil {
		return false
	}
	return len(probe.Kind) > 0 && string(probe.Kind) != "null"
}
