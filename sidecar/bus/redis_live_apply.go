package bus

import (
	"context"
	"hash/maphash"
	"sync"

	"github.com/heraldhq/herald/sidecar/notification"
)

// liveQueueLen bounds each live applier's queue. When one is full the
// receiver waits, which leaves the messages in the socket; Redis buffers
// them up to its client output limit.
const liveQueueLen = 1024

// liveAppliers apply the live path's changes. One goroutine applying every
// change in turn would be held to one durable store commit per change (about
// 2,000 a second on our test machine), far below the fan-out the live path
// must carry. So changes are split by user over several goroutines: one
// user's changes still go through one goroutine, in arrival order (BH-09),
// while changes of different users are applied side by side and the store
// commits them together (group commit); and each goroutine applies what
// queued up while it waited for a commit in one request (remoteBatch).
type liveAppliers struct {
	seed   maphash.Seed
	queues []chan notification.Change
	wg     sync.WaitGroup
}

// startLiveAppliers starts n appliers (runLiveApplier) that apply until
// stop is called. The caller owns them: it must call stop.
func (r *Redis) startLiveAppliers(ctx context.Context, n int) *liveAppliers {
	la := &liveAppliers{seed: maphash.MakeSeed(), queues: make([]chan notification.Change, n)}
	for i := range la.queues {
		q := make(chan notification.Change, liveQueueLen)
		la.queues[i] = q
		la.wg.Add(1)
		go func() {
			defer la.wg.Done()
			r.runLiveApplier(ctx, q)
		}()
	}
	return la
}

// runLiveApplier applies what arrives on q until q is closed: one change at
// once under light load; what queued up meanwhile in one request when
// changes arrive faster than commits.
func (r *Redis) runLiveApplier(ctx context.Context, q chan notification.Change) {
	var b remoteBatch
	var next notification.Change
	held := false // next was taken from q but did not fit the last batch
	for {
		if !held {
			c, ok := <-q
			if !ok {
				return
			}
			next = c
		}
		b.reset()
		b.add(next)
		held = false
	drain:
		for {
			select {
			case c, ok := <-q:
				if !ok {
					break drain
				}
				if !b.add(c) {
					next, held = c, true
					break drain
				}
			default:
				break drain
			}
		}
		if !r.gate.wait(ctx) {
			return
		}
		_, _ = r.applyRemoteBatch(ctx, "live", b.changes) // counted and logged there
	}
}

// Bounds of one store request of remote changes. A commit's events of one
// user go to each of that user's sockets at once, and a socket's write
// queue holds 256 frames by default: a catch-up of 500 changes of one user
// in one commit would close a healthy tab with 1013. So a batch holds at
// most remoteBatchPerUser changes of any one user, and the rest follow in
// the next commits, in order.
const (
	remoteBatchMax     = 256
	remoteBatchPerUser = 16
)

// remoteBatch collects changes, in order, within the bounds above.
type remoteBatch struct {
	changes []notification.Change
	perUser map[string]int
}

// add appends c, or reports false when c does not fit.
func (b *remoteBatch) add(c notification.Change) bool {
	if len(b.changes) >= remoteBatchMax || b.perUser[c.UserID] >= remoteBatchPerUser {
		return false
	}
	if b.perUser == nil {
		b.perUser = make(map[string]int)
	}
	b.changes = append(b.changes, c)
	b.perUser[c.UserID]++
	return true
}

// reset empties b, keeping its memory.
func (b *remoteBatch) reset() {
	clear(b.changes)
	b.changes = b.changes[:0]
	clear(b.perUser)
}

// dispatch queues c to its user's applier, waiting while that queue is full.
// It reports false when ctx ended first.
func (la *liveAppliers) dispatch(ctx context.Context, c notification.Change) bool {
	q := la.queues[maphash.String(la.seed, c.UserID)%uint64(len(la.queues))]
	select {
	case q <- c:
		return true
	case <-ctx.Done():
		return false
	}
}

// stop closes the queues and waits for the appliers to finish them. Called
// once, after the last dispatch.
func (la *liveAppliers) stop() {
	for _, q := range la.queues {
		close(q)
	}
	la.wg.Wait()
}
