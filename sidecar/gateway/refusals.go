package gateway

import (
	"crypto/sha256"
	"sync"
	"time"
)

// Defaults of the dead-token throttle.
const (
	// refusalLimit is how many times one token is refused with 401 within
	// refusalWindow before further attempts get 429 without being verified.
	refusalLimit  = 10
	refusalWindow = time.Minute
	// refusalMaxTokens bounds the memory of refused tokens.
	refusalMaxTokens = 4096
)

// refusedTokens throttles clients that retry a refused token in a loop (an
// expired token in a tab that never refreshes it, field case BH-12): after
// refusalLimit refusals of the same token within refusalWindow, the gateway
// answers 429 with Retry-After without verifying the token again. It keeps
// only a hash of each token. It is safe for concurrent use.
type refusedTokens struct {
	mu      sync.Mutex
	entries map[[sha256.Size]byte]*refusal
	now     func() time.Time
}

type refusal struct {
	count int
	since time.Time // start of the window
}

func newRefusedTokens(now func() time.Time) *refusedTokens {
	return &refusedTokens{entries: make(map[[sha256.Size]byte]*refusal), now: now}
}

// throttled reports whether token was refused too often lately, and when the
// client may try again. The empty token is never throttled (it has no
// identity; a missing token costs nothing to refuse).
func (rt *refusedTokens) throttled(token string) (time.Duration, bool) {
	if token == "" {
		return 0, false
	}
	key := sha256.Sum256([]byte(token))
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r, ok := rt.entries[key]
	if !ok {
		return 0, false
	}
	left := refusalWindow - rt.now().Sub(r.since)
	if left <= 0 {
		delete(rt.entries, key)
		return 0, false
	}
	return left, r.count >= refusalLimit
}

// record counts one refusal of token.
func (rt *refusedTokens) record(token string) {
	if token == "" {
		return
	}
	key := sha256.Sum256([]byte(token))
	now := rt.now()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	r, ok := rt.entries[key]
	if !ok || now.Sub(r.since) >= refusalWindow {
		if !ok && len(rt.entries) >= refusalMaxTokens {
			rt.pruneLocked(now)
		}
		rt.entries[key] = &refusal{count: 1, since: now}
		return
	}
	r.count++
}

// pruneLocked drops expired entries, and everything if that is not enough:
// forgetting a refusal only costs one more verification.
func (rt *refusedTokens) pruneLocked(now time.Time) {
	for k, r := range rt.entries {
		if now.Sub(r.since) >= refusalWindow {
			delete(rt.entries, k)
		}
	}
	if len(rt.entries) >= refusalMaxTokens {
		clear(rt.entries)
	}
}
