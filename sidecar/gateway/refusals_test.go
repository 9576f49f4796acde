package gateway

import (
	"net/http"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/heraldhq/herald/sidecar/metrics"
	"github.com/heraldhq/herald/testing/wsclient"
)

// TestDeadTokenThrottled (BH-12): a client retrying an expired token in a
// loop gets 401 refusalLimit times, then 429 with Retry-After without the
// token being verified; other tokens are not affected.
func TestDeadTokenThrottled(t *testing.T) {
	e := newEnv(t, Options{})
	expired := signed(t, jwt.MapClaims{"sub": "u1", "exp": time.Now().Add(-5 * time.Minute).Unix()})
	for i := range refusalLimit {
		status, _, err := wsclient.Handshake(e.url, wsclient.Options{Token: expired})
		if err != nil || status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: status %d, %v; want 401", i, status, err)
		}
	}
	before := counter(t, e.m.Rejects.WithLabelValues(metrics.RejectThrottled))
	status, body, err := wsclient.Handshake(e.url, wsclient.Options{Token: expired})
	if err != nil || status != http.StatusTooManyRequests {
		t.Fatalf("attempt %d: status %d %q, %v; want 429", refusalLimit, status, body, err)
	}
	if got := counter(t, e.m.Rejects.WithLabelValues(metrics.RejectThrottled)); got != before+1 {
		t.Errorf("throttled rejects = %v, want %v", got, before+1)
	}
	// A fresh token of the same user still connects.
	c, _ := e.dial("u1", wsclient.Options{})
	c.Close()
}

func TestRefusedTokensWindowAndBound(t *testing.T) {
	now := time.Unix(1000, 0)
	rt := newRefusedTokens(func() time.Time { return now })
	for range refusalLimit {
		rt.record("tok")
	}
	if _, ok := rt.throttled("tok"); !ok {
		t.Fatal("token not throttled after the limit")
	}
	if _, ok := rt.throttled(""); ok {
		t.Fatal("empty token throttled")
	}
	now = now.Add(refusalWindow)
	if _, ok := rt.throttled("tok"); ok {
		t.Fatal("token still throttled after the window")
	}
	for i := range 2 * refusalMaxTokens {
		rt.record(string(rune(i)) + "x")
	}
	if n := len(rt.entries); n > refusalMaxTokens {
		t.Fatalf("%d entries kept, bound is %d", n, refusalMaxTokens)
	}
}
