package bus

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff is a capped exponential backoff with jitter. Not safe for
// concurrent use: each loop keeps its own.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

func newBackoff(min, max time.Duration) backoff { return backoff{min: min, max: max} }

// next returns the next wait: the step doubles up to max, and the wait is a
// random point in the upper half of the step, so replicas that lost Redis
// together do not come back in lockstep.
func (b *backoff) next() time.Duration {
	switch {
	case b.cur == 0:
		b.cur = b.min
	case b.cur < b.max:
		b.cur = min(2*b.cur, b.max)
	}
	half := b.cur / 2
	if half <= 0 {
		return b.cur
	}
	return half + rand.N(half+1)
}

// reset starts the next failure from min again.
func (b *backoff) reset() { b.cur = 0 }

// wait sleeps d, returning early (false) when ctx ends, or (true) when wake
// fires; wake may be nil.
func wait(ctx context.Context, d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	case <-wake:
		return true
	}
}
