package gateway

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/sidecar/auth"
	"github.com/heraldhq/herald/sidecar/metrics"
	"github.com/heraldhq/herald/testing/wsclient"
)

// TestTokenExpiryClosesSocket is BH-12: once exp + leeway has passed, the
// socket is closed with 1008 "token expired" within a check interval;
// notifications made meanwhile are in the next unread_sync.
func TestTokenExpiryClosesSocket(t *testing.T) {
	const leeway = time.Second
	e := newEnvLeeway(t, Options{TokenCheckInterval: 100 * time.Millisecond}, leeway)
	exp := time.Now().Add(2 * time.Second).Truncate(time.Second)
	tok := signed(t, jwt.MapClaims{"sub": "u1", "exp": exp.Unix(), "iat": time.Now().Unix()})
	c, _ := e.dial("u1", wsclient.Options{Token: tok})

	// Create notifications until well after the close.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := e.st.Create(context.Background(), drafts("u1", 1)); err != nil {
					t.Errorf("create: %v", err)
					return
				}
			}
		}
	}()
	code, reason, err := c.WaitClosed(waitTimeout)
	closedAt := time.Now()
	if err != nil {
		t.Fatal(err)
	}
	// Three more after the close, then stop.
	n := len(e.allIDs("u1"))
	eventually(t, "more notifications", func() bool { return len(e.allIDs("u1")) >= n+3 })
	close(stop)
	wg.Wait()

	if code != int(ClosePolicy) || reason != "token expired" {
		t.Fatalf("closed with %d %q, want 1008 token expired", code, reason)
	}
	if closedAt.Before(exp.Add(leeway)) {
		t.Fatalf("closed at %s, before exp+leeway %s", closedAt, exp.Add(leeway))
	}
	t.Logf("closed %s after exp+leeway", closedAt.Sub(exp.Add(leeway)).Round(time.Millisecond))
	if got := counter(t, e.m.Evictions.WithLabelValues(metrics.EvictTokenExpired)); got != 1 {
		t.Fatalf("token_expired evictions = %v", got)
	}

	// Nothing was lost: what the socket missed is in the next sync.
	live := notificationIDs(t, c)
	_, f := e.dial("u1", wsclient.Options{})
	var seen []string
	for _, n := range decodeSync(t, f).Notifications {
		seen = append(seen, n.ID)
	}
	all := e.allIDs("u1")
	if !slices.Equal(seen, all) {
		t.Fatalf("next sync holds %d of %d notifications", len(seen), len(all))
	}
	if len(live) == 0 || len(live) >= len(all) {
		t.Fatalf("live frames %d of %d: want some before the close and some missed after", len(live), len(all))
	}
}

// TestClockSkewAccepted: tokens from a signer whose clock is 3 s ahead or
// behind are accepted with the default leeway.
func TestClockSkewAccepted(t *testing.T) {
	e := newEnvLeeway(t, Options{}, auth.DefaultLeeway)
	for _, skew := range []time.Duration{-3 * time.Second, 3 * time.Second} {
		signerNow := time.Now().Add(skew)
		tok := signed(t, jwt.MapClaims{"sub": "u1", "iat": signerNow.Unix(), "nbf": signerNow.Unix(),
			"exp": signerNow.Add(time.Minute).Unix()})
		c, _ := e.dial("u1", wsclient.Options{Token: tok})
		c.Close()
	}
}
