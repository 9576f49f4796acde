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
	pingEvery := max(g.opts.Heartbeat/numShards, time.Millisecond)
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	expiry := time.NewTicker(g.opts.TokenCheckInterval)
	defer expiry.Stop()
	next := 0
	for {
		select {
		case <-g.janitorStop:
			return
		case <-ping.C:
			g.manager.RangeShard(next, (*conn).ping)
			next = (next + 1) % numShards
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
