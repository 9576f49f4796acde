package bus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/redis/go-redis/v9"

	"golang.org/x/time/rate"
)

// dropLog rate-limits a kind of warning: a publisher that floods a channel
// with garbage must not flood the logs too. Every occurrence is counted in a
// metric whether it is logged or not.
type dropLog struct {
	lim        *rate.Limiter
	suppressed atomic.Int64
}

func newDropLog() *dropLog {
	return &dropLog{lim: rate.NewLimiter(rate.Limit(1), 5)} // 1 a second, bursts of 5
}

// newForeignOwnLog limits the warning about changes that bear this node's
// ID but were missing here (warnForeignOwn): a wiped replica catching up
// may apply thousands of them, and one line every ten seconds says enough.
func newForeignOwnLog() *dropLog {
	return &dropLog{lim: rate.NewLimiter(rate.Every(10*time.Second), 1)}
}

// warn logs msg at warn level unless the limiter refuses, adding how many
// warnings were suppressed since the last one. args must hold no
// notification content: ids, lengths and reasons only.
func (d *dropLog) warn(log hclog.Logger, msg string, args ...any) {
	if !d.lim.Allow() {
		d.suppressed.Add(1)
		return
	}
	if n := d.suppressed.Swap(0); n > 0 {
		args = append(args, "suppressed", n)
	}
	log.Warn(msg, args...)
}

// warnDropped logs a dropped message at warn, at most about once a second,
// with how many warnings were suppressed since the last one. args must hold
// no notification content: ids, lengths and reasons only.
func (r *Redis) warnDropped(msg string, args ...any) {
	r.drops.warn(r.log, msg, args...)
}

// redisLogger receives go-redis's own log lines (dial failures, dropped
// connections), at debug: the bus reports every Redis problem itself, at the
// level it deserves, and go-redis would otherwise write to stderr outside
// hclog.
type redisLogger struct{ l hclog.Logger }

func (g redisLogger) Printf(_ context.Context, format string, v ...any) {
	g.l.Debug(fmt.Sprintf(format, v...))
}

// setRedisLogger installs the go-redis logger. go-redis has one logger per
// process, so the first bus created names it.
var setRedisLogger sync.Once

func installRedisLogger(l hclog.Logger) {
	setRedisLogger.Do(func() { redis.SetLogger(redisLogger{l: l.Named("go-redis")}) })
}
