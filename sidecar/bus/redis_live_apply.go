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
// commits them together (group commit).
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
			for c := range q {
				_ = r.applyRemote(ctx, "live", c) // counted and logged there
			}
		}()
	}
	return la
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
