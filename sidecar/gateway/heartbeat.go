package gateway

import (
	"time"

	"github.com/heraldhq/herald/sidecar/metrics"
)

// janitor is the gateway's one background goroutine. It pings one shard of
// sockets per tick, so each socket is pinged once per Heartbeat and the
// pings are spread over the interval rather than sent in one burst; and
// every TokenCheckInterval it closes sockets whose token has expired.
// Half-open sockets need no work here: their read deadline (2×Heartbeat
// after their last frame) ends their read loop.
func (g *Gateway) janitor() {
	defer close(g.janitorDone)
	// Shard i is due at start + k×Heartbeat + i×step. Catching up on every
	// due shard at each tick keeps the period at Heartbeat even when ticks
	// are dropped because this goroutine ran late (a loaded machine).
	step := max(g.opts.Heartbeat/numShards, time.Millisecond)
	ping := time.NewTicker(step)
	defer ping.Stop()
	expiry := time.NewTicker(g.opts.TokenCheckInterval)
	defer expiry.Stop()
	next, due := 0, time.Now().Add(step)
	for {
		select {
		case <-g.janitorStop:
			return
		case now := <-ping.C:
			for pinged := 0; !now.Before(due) && pinged < numShards; pinged++ {
				g.manager.RangeShard(next, (*conn).ping)
				next = (next + 1) % numShards
				due = due.Add(step)
			}
			if now.After(due) {
				// More than a whole round behind: start again from now.
				due = now.Add(step)
			}
		case now := <-expiry.C:
			g.manager.Range(func(c *conn) {
				if now.After(c.expiresAt) {
					g.log.Debug("token expired", "conn_id", c.id, "user_id", c.userID)
					c.close(ClosePolicy, "token expired", metrics.EvictTokenExpired, true)
				}
			})
		}
	}
}
