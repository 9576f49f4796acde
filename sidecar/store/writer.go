package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/sidecar/notification"
)

// A request's life: queued by submit, then either taken by the writer (it
// will be applied or fail with its batch, and the caller waits for that) or
// abandoned by a caller whose ctx ended first (the writer skips it). The CAS
// on state decides which, so a caller that returned ctx.Err() never has its
// change applied behind its back.
const (
	reqQueued int32 = iota
	reqTaken
	reqAbandoned
)

// request is one write call waiting for the writer.
type request struct {
	ctx   context.Context
	state atomic.Int32
	// apply runs inside the batch's transaction on the writer goroutine. It
	// returns reject(err) to refuse the request, and then must not have
	// written anything; any other error fails the whole batch.
	apply func(w *wtx) error
	// done receives the request's answer; buffered so the writer never waits.
	done chan error
	// items is the number of notifications or IDs the request writes, at
	// least 1; it bounds the size of a batch transaction.
	items int
}

// maxBatchItems bounds the items of one batch, so that a queue full of big
// requests (1,000 calls of 1,000 notifications) never makes one huge
// transaction: the writer stops draining once it is reached. A single
// request bigger than it still commits, alone.
const maxBatchItems = 20000

// rejection marks an error of one request that leaves the batch going.
type rejection struct{ err error }

func (r *rejection) Error() string { return r.err.Error() }
func (r *rejection) Unwrap() error { return r.err }

// reject refuses the request being applied without failing its batch. The
// caller must not have written anything before.
func reject(err error) error { return &rejection{err: err} }

// submit queues apply for the writer and waits until it is durable. It
// returns ctx.Err() if ctx ends before the writer takes the request (the
// request is then never applied), ErrClosed after Close, the request's own
// rejection, or the batch's commit error.
func (s *Store) submit(ctx context.Context, items int, apply func(w *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{ctx: ctx, apply: apply, done: make(chan error, 1), items: max(items, 1)}

	// Queue it. The queue is bounded: a full queue pushes back on callers.
	s.sendMu.RLock()
	if s.closed {
		s.sendMu.RUnlock()
		return ErrClosed
	}
	select {
	case s.reqs <- r:
		s.sendMu.RUnlock()
	case <-ctx.Done():
		s.sendMu.RUnlock()
		return ctx.Err()
	}

	// Wait for the answer; give up only if the writer has not taken it yet.
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		if r.state.CompareAndSwap(reqQueued, reqAbandoned) {
			return ctx.Err()
		}
		return <-r.done
	}
}

// runWriter is the writer goroutine: it takes one request, drains whatever
// else is queued, up to MaxBatch requests and maxBatchItems items, and
// commits them together. There is no timer: under light load a request
// commits alone at once; under heavy load the queue fills while a commit
// syncs, and the next commit takes it all. It ends when Close has closed
// the queue and every queued request is answered.
//
// Known limit: a commit costs about one random page write per distinct user
// in it (the user's unread index entries and count live under the user's key
// in the items bucket), plus two fsyncs. Bursts spread over many users are
// therefore bounded by the disk's random-write rate, below the throughput
// targets on our test machine (BENCHMARKS.md). Going further needs per-user
// index changes logged sequentially and merged into the items bucket in
// larger, less frequent transactions, with reads overlaying the unmerged part.
func (s *Store) runWriter() {
	defer close(s.writerDone)
	batch := make([]*request, 0, s.opts.MaxBatch)
	for r := range s.reqs {
		batch = append(batch[:0], r)
		items := r.items
	fill:
		for len(batch) < s.opts.MaxBatch && items < maxBatchItems {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
				items += r.items
			default:
				break fill
			}
		}
		s.commit(batch)
		clear(batch)
		// Let the callers just answered queue their next request before the
		// next drain. Without this yield the writer drains at once, finds
		// only the few that came back first, and commits alternate between
		// a small and a big batch: 64 callers made 32 calls per commit, and
		// 44 with it; in batches of 100, 4 and 6 of 8 callers. On a shared,
		// loaded machine that gave 30-80% more notifications/s in 5 of 6
		// A/B pairs (one was 26% worse). A yield, not a delay: a lone
		// caller commits at once.
		runtime.Gosched()
	}
}

// commit applies a batch in one transaction, hands its events to OnCommit
// and answers every request.
func (s *Store) commit(batch []*request) {
	// Take the requests whose callers still wait.
	live := make([]*request, 0, len(batch))
	for _, r := range batch {
		if !r.state.CompareAndSwap(reqQueued, reqTaken) {
			continue
		}
		if err := r.ctx.Err(); err != nil {
			r.done <- err
			continue
		}
		live = append(live, r)
	}
	if len(live) == 0 {
		return
	}

	// Apply them all in one transaction; a rejected request rolls back only
	// its events (it wrote nothing).
	w := &wtx{s: s}
	answers := make([]error, len(live))
	err := s.db.Update(func(tx *bolt.Tx) error {
		w.bind(tx)
		for i, r := range live {
			mark, afterMark := len(w.events), len(w.after)
			err := r.apply(w)
			var rj *rejection
			if errors.As(err, &rj) {
				answers[i] = rj.err
				w.events, w.after = w.events[:mark], w.after[:afterMark]
				continue
			}
			if err != nil {
				return err
			}
		}
		return w.flush()
	})
	if err != nil {
		s.log.Error("store commit failed", "error", err, "requests", len(live))
		err = fmt.Errorf("store commit: %w", err)
		for _, r := range live {
			r.done <- err
		}
		return
	}

	// Durable: publish, then answer, so an event is out before the host's "ok".
	s.commits.Add(1)
	s.committed.Add(int64(len(live)))
	s.outboxDepth.Add(w.outboxDelta)
	for _, f := range w.after {
		f()
	}
	if len(w.events) > 0 && s.opts.OnCommit != nil {
		s.opts.OnCommit(w.events)
	}
	for i, r := range live {
		r.done <- answers[i]
	}
}

// wtx is the writer's view of one batch transaction.
type wtx struct {
	s  *Store
	tx *bolt.Tx

	notifs, items, idem, tombs, outbox, meta *bolt.Bucket

	// users caches the state of the users the batch touches; flush writes
	// the changed ones once, at the end of the batch.
	users map[string]*userState

	events []notification.Event
	after  []func()
	// outboxDelta is how many outbox records the batch added minus removed.
	outboxDelta int64
}

// appendFillPercent is the fill of the buckets written in key order. Not
// 1.0: remote notifications land a little behind the newest local ones.
const appendFillPercent = 0.9

// userState is a user's unread count and last event Seq, stored under
// user key ‖ tagState in the items bucket as two big-endian uint64.
type userState struct {
	unread, seq uint64
	dirty       bool
}

func (w *wtx) bind(tx *bolt.Tx) {
	w.tx = tx
	w.notifs = tx.Bucket(bucketNotifications)
	w.items = tx.Bucket(bucketItems)
	// IDs grow, so notifications and outbox records are appended: full pages
	// halve the pages each commit writes (bbolt splits at half by default).
	w.notifs.FillPercent = appendFillPercent
	w.idem = tx.Bucket(bucketIdempotency)
	w.tombs = tx.Bucket(bucketTombstones)
	w.outbox = tx.Bucket(bucketOutbox)
	w.outbox.FillPercent = appendFillPercent
	w.meta = tx.Bucket(bucketMeta)
	w.users = make(map[string]*userState)
}

// user returns the batch's copy of a user's state.
func (w *wtx) user(uk []byte) *userState {
	if st, ok := w.users[string(uk)]; ok {
		return st
	}
	st := &userState{}
	st.unread, st.seq = decodeUserState(w.items.Get(tagPrefix(uk, tagState)))
	w.users[string(uk)] = st
	return st
}

// flush writes the changed user states, at the end of the batch transaction.
func (w *wtx) flush() error {
	for uk, st := range w.users {
		if !st.dirty {
			continue
		}
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), st.unread)
		v = binary.BigEndian.AppendUint64(v, st.seq)
		if err := w.items.Put(tagPrefix([]byte(uk), tagState), v); err != nil {
			return fmt.Errorf("put user state: %w", err)
		}
	}
	return nil
}

// decodeUserState decodes a stored user state; absent means zero.
func decodeUserState(v []byte) (unread, seq uint64) {
	if len(v) != 16 {
		return 0, 0
	}
	return binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:])
}

// afterCommit registers f to run on the writer after the batch is durable.
func (w *wtx) afterCommit(f func()) { w.after = append(w.after, f) }

// unreadCount returns the user's unread count.
func (w *wtx) unreadCount(uk []byte) uint64 { return w.user(uk).unread }

// setUnreadCount sets the user's unread count.
func (w *wtx) setUnreadCount(uk []byte, n uint64) {
	st := w.user(uk)
	st.unread, st.dirty = n, true
}

// emit gives ev the user's next Seq, persisted with the batch, and queues ev
// for OnCommit.
func (w *wtx) emit(uk []byte, ev notification.Event) {
	st := w.user(uk)
	st.seq++
	st.dirty = true
	ev.Seq = st.seq
	w.events = append(w.events, ev)
}

// putOutbox writes c as an outbox record when the store is replicated.
func (w *wtx) putOutbox(c notification.Change) error {
	if !w.s.opts.Replicated {
		return nil
	}
	c.Origin = w.s.NodeID()
	seq, err := w.outbox.NextSequence()
	if err != nil {
		return fmt.Errorf("outbox sequence: %w", err)
	}
	body, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode outbox change: %w", err)
	}
	v := make([]byte, 0, binary.MaxVarintLen64+len(c.UserID)+len(body))
	v = appendUserKey(v, c.UserID)
	v = append(v, body...)
	if err := w.outbox.Put(putUint64(seq), v); err != nil {
		return fmt.Errorf("put outbox record: %w", err)
	}
	w.outboxDelta++
	return nil
}

// putCursor stores a named cursor.
func (w *wtx) putCursor(name, value string) error {
	if err := w.meta.Put([]byte(metaCursorPrefix+name), []byte(value)); err != nil {
		return fmt.Errorf("put cursor %q: %w", name, err)
	}
	return nil
}
