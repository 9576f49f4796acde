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
// queued up while it waited for a commit in one request (drainInto).
type liveAppliers struct {
	seed   maphash.Seed
	queues []chan notification.Change
	wg     sync.WaitGroup
}

// startLiveAppliers starts n appliers that apply with r.applyRemote until
// stop is called. The caller owns them: it must call stop.
func (r *Redis) startLiveAppliers(ctx context.Context, n int) *liveAppliers {
	la := &liveAppliers{seed: maphash.MakeSeed(), queues: make([]chan notification.Change, n)}
	for i := range la.queues {
		q := make(chan notification.Change, liveQueueLen)
		la.queues[i] = q
		la.wg.Add(1)
		go func() {
			defer la.wg.Done()
			batch := make([]notification.Change, 0, remoteBatch)
			for c := range q {
				batch = append(batch[:0], c)
				batch = drainInto(q, batch)
				_, _ = r.applyRemoteBatch(ctx, "live", batch) // counted and logged there
				clear(batch)
			}
		}()
	}
	return la
}

// remoteBatch is the most remote changes applied in one store request.
// Under light load a change is applied alone at once; when changes arrive
// faster than commits, those queued meanwhile share the next commit.
const remoteBatch = 256

// drainInto appends to batch what q holds already, up to remoteBatch,
// without waiting.
func drainInto(q chan notification.Change, batch []notification.Change) []notification.Change {
	for len(batch) < remoteBatch {
		select {
		case c, ok := <-q:
			if !ok {
				return batch
			}
			batch = append(batch, c)
		default:
			return batch
		}
	}
	return batch
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
