package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Reasons for not being ready before the first check.
var (
	errNotChecked   = errors.New("not checked yet")
	errNotConnected = errors.New("not connected yet")
)

// readiness is what Ready reports, updated by the loops that find out.
type readiness struct {
	mu       sync.Mutex
	caughtUp bool  // the first catch-up after start reached the stream's end
	redisErr error // the last PING's error, nil while Redis answers
	liveErr  error // why the live subscription is down, nil while it is up
}

func (s *readiness) init() {
	s.redisErr, s.liveErr = errNotChecked, errNotConnected
}

func (s *readiness) ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.redisErr != nil:
		return fmt.Errorf("%w: %w", ErrRedisDown, s.redisErr)
	case s.liveErr != nil:
		return fmt.Errorf("%w: %w", ErrLiveDown, s.liveErr)
	case !s.caughtUp:
		return ErrCatchingUp
	}
	return nil
}

// setRedis records a PING result and reports whether Redis changed state.
func (s *readiness) setRedis(err error) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed = (s.redisErr == nil) != (err == nil)
	s.redisErr = err
	return changed
}

// setLive records the live subscription's state and reports whether it changed.
func (s *readiness) setLive(err error) (changed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	changed = (s.liveErr == nil) != (err == nil)
	s.liveErr = err
	return changed
}

// setCaughtUp records that the catch-up reached the stream's end and reports
// whether it is the first time.
func (s *readiness) setCaughtUp() (first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	first = !s.caughtUp
	s.caughtUp = true
	return first
}

// runHealth pings Redis and checks the live subscription every
// HealthInterval until ctx ends.
func (r *Redis) runHealth(ctx context.Context) {
	t := time.NewTicker(r.opts.HealthInterval)
	defer t.Stop()
	for {
		r.checkRedis(ctx)
		r.checkLive(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkRedis pings Redis on the command connection pool.
func (r *Redis) checkRedis(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, 2*r.opts.HealthInterval)
	err := r.client.Ping(pctx).Err()
	cancel()
	if ctx.Err() != nil {
		return
	}
	if !r.state.setRedis(err) {
		return
	}
	if err != nil {
		r.metrics.redisUp.Set(0)
		r.log.Warn("redis unreachable", "node_id", r.opts.NodeID, "error", err)
		return
	}
	r.metrics.redisUp.Set(1)
	r.log.Info("redis reachable", "node_id", r.opts.NodeID)
	// Cut every backoff short: Redis is back.
	signal(r.shipWake)
	signal(r.liveWake)
	r.kickTail()
}

// checkLive pings the live connection when it has been quiet for an
// interval, and declares it silent after three: go-redis would wait forever
// on a half-open connection, so a silent one is closed and opened afresh.
func (r *Redis) checkLive(ctx context.Context) {
	ps, quiet, up := r.live.current()
	if ps == nil || !up {
		return
	}
	switch {
	case quiet > 3*r.opts.HealthInterval:
		r.liveDown(fmt.Errorf("no answer from the live connection for %v", quiet.Round(time.Millisecond)))
		r.live.replace(ps)
	case quiet > r.opts.HealthInterval:
		pctx, cancel := context.WithTimeout(ctx, r.opts.HealthInterval)
		err := ps.Ping(pctx) // the PONG arrives through the receiver
		cancel()
		if err != nil && ctx.Err() == nil {
			r.log.Debug("ping live connection", "error", err)
		}
	}
}
