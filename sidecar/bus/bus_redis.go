package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/sidecar/store"
)

// Errors returned by Redis.Ready and NewRedis.
var (
	// ErrNotRunning is returned by Ready before Run started or after it ended.
	ErrNotRunning = errors.New("bus: not running")
	// ErrCatchingUp is returned by Ready until the first catch-up from the
	// stream after start reached the stream's end.
	ErrCatchingUp = errors.New("bus: catching up with the redis stream")
	// ErrRedisDown is returned by Ready while Redis does not answer PING.
	ErrRedisDown = errors.New("bus: redis unreachable")
	// ErrLiveDown is returned by Ready while the live Pub/Sub subscription is
	// disconnected or silent.
	ErrLiveDown = errors.New("bus: live subscription down")
	// ErrInvalidOptions is wrapped by NewRedis for every invalid option.
	ErrInvalidOptions = errors.New("bus: invalid redis options")
)

// Defaults of RedisOptions.
const (
	DefaultNamespace        = "herald"
	DefaultChannelPrefix    = "notifications:"
	DefaultStreamRetention  = 7 * 24 * time.Hour
	DefaultPollInterval     = 5 * time.Second
	DefaultHealthInterval   = 2 * time.Second
	DefaultTailBlock        = time.Second
	DefaultPresenceInterval = 10 * time.Second
	DefaultBackoffMin       = 100 * time.Millisecond
	DefaultBackoffMax       = 5 * time.Second
	DefaultFlushTimeout     = time.Second
	DefaultAckDelay         = 20 * time.Millisecond

	// stopMargin is how long past FlushTimeout Run waits for the loops that
	// talk to Redis during stop before it closes the client under them.
	stopMargin       = 250 * time.Millisecond
	DefaultShipBatch = 256
	DefaultTailBatch = 500
	// DefaultTailWorkers is how many users' changes catch-up, and the live
	// path, apply side by side.
	DefaultTailWorkers = 8
)

// RedisOptions configures the Redis bus. The zero value of each optional
// field means its default; NewRedis applies the defaults and reports every
// invalid field at once.
type RedisOptions struct {
	// URL locates Redis. Required. Accepted forms:
	//   - redis://[user:pass@]host:port[/db][?option=value...] and rediss:// (TLS),
	//     and unix:///path/to/redis.sock: one Redis server (redis.ParseURL);
	//   - redis+sentinel://[user:pass@]host:port?master_name=NAME[&addr=host:port...]
	//     (or a redis:// URL with master_name): Sentinel (redis.ParseFailoverURL);
	//   - redis+cluster://[user:pass@]host:port[?addr=host:port...] (or a redis:// URL
	//     with addr): Redis Cluster (redis.ParseClusterURL).
	// rediss+sentinel:// and rediss+cluster:// select TLS. Query options are
	// go-redis option names in snake case (dial_timeout=3s, pool_size=20, ...).
	URL string
	// NodeID is this replica's ID, the Origin of its changes. Default: the
	// store's NodeID; one of the two is required.
	NodeID string
	// Namespace prefixes every Redis key of the bus (the stream, presence,
	// bare-message claims), so Heralds of different clusters can share a
	// Redis. Default "herald".
	Namespace string
	// ChannelPrefix is the prefix of the live channels, {prefix}{user_id}.
	// Default "notifications:". It is not namespaced: clusters sharing a
	// Redis need different prefixes too.
	ChannelPrefix string
	// StreamRetention is how long changes stay in the catch-up stream
	// (trimmed approximately on every XADD), and how long a bare message's
	// claimed ID is kept. Default 7 days.
	StreamRetention time.Duration
	// Store is this replica's store, opened with Replicated. Required.
	Store *store.Store
	// LocalCount reports this replica's live sockets of a user, for Presence
	// and to confirm an Unwatch. Optional: without it a watched user counts 1.
	LocalCount LocalCounter
	// Logger receives the bus's logs. Default: a null logger.
	Logger hclog.Logger
	// Registerer, when set, receives the bus's metrics.
	Registerer prometheus.Registerer

	// PollInterval is how often the shipper looks at the outbox without a
	// Kick. Default 5s.
	PollInterval time.Duration
	// HealthInterval is how often Redis and the live subscription are
	// pinged; both are reported down after about 3 intervals without an
	// answer (Ready turns not-ready within 10s with the default). Default 2s.
	HealthInterval time.Duration
	// TailBlock is how long one XREAD of the catch-up waits for new entries.
	// It bounds how late a stream reset is noticed. Default 1s; must be > 0.
	TailBlock time.Duration
	// PresenceInterval is how often this replica rewrites its presence hash
	// in Redis; entries of a replica silent for 3 intervals are ignored.
	// Default 10s.
	PresenceInterval time.Duration
	// BackoffMin and BackoffMax bound the exponential backoff (with jitter)
	// between retries after a Redis error. Defaults 100ms and 5s.
	BackoffMin, BackoffMax time.Duration
	// FlushTimeout bounds the last attempt to ship the outbox when Run's
	// context ends. Default 1s (go-plugin kills a plugin 2s after asking).
	FlushTimeout time.Duration
	// AckDelay is how long shipped records may stay in the outbox before
	// they are removed (in one commit with those shipped meanwhile); after a
	// crash they are shipped again. Default 20ms.
	AckDelay time.Duration
	// ShipBatch is the most outbox records one pipeline ships. Default 256.
	ShipBatch int
	// TailBatch is the most stream entries one XREAD returns. Default 500.
	TailBatch int
	// TailWorkers is how many goroutines apply a batch of stream entries,
	// each taking the changes of its share of the users in order; the live
	// path runs as many appliers, split by user the same way. Default 8.
	TailWorkers int
}

func (o *RedisOptions) applyDefaults() {
	if o.NodeID == "" && o.Store != nil {
		o.NodeID = o.Store.NodeID()
	}
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.ChannelPrefix == "" {
		o.ChannelPrefix = DefaultChannelPrefix
	}
	setDefault(&o.StreamRetention, DefaultStreamRetention)
	setDefault(&o.PollInterval, DefaultPollInterval)
	setDefault(&o.HealthInterval, DefaultHealthInterval)
	setDefault(&o.TailBlock, DefaultTailBlock)
	setDefault(&o.PresenceInterval, DefaultPresenceInterval)
	setDefault(&o.BackoffMin, DefaultBackoffMin)
	setDefault(&o.BackoffMax, DefaultBackoffMax)
	setDefault(&o.FlushTimeout, DefaultFlushTimeout)
	setDefault(&o.AckDelay, DefaultAckDelay)
	if o.ShipBatch == 0 {
		o.ShipBatch = DefaultShipBatch
	}
	if o.TailBatch == 0 {
		o.TailBatch = DefaultTailBatch
	}
	if o.TailWorkers == 0 {
		o.TailWorkers = DefaultTailWorkers
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// validate reports every invalid field at once.
func (o *RedisOptions) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, args...)...))
	}
	if o.URL == "" {
		bad("url is required")
	}
	if o.Store == nil {
		bad("store is required")
	}
	if o.NodeID == "" {
		bad("node id is required (neither NodeID nor the store's node id is set)")
	}
	if o.Store != nil && o.Store.NodeID() != "" && o.Store.NodeID() != o.NodeID {
		// The outbox records carry the store's node ID as their origin;
		// with another one here, this replica would not recognise its own
		// echoes, nor warn about foreign changes bearing its ID (applyRemote).
		bad("node id %q differs from the store's %q", o.NodeID, o.Store.NodeID())
	}
	if strings.ContainsAny(o.Namespace, "{}") {
		bad("namespace %q must not contain { or }", o.Namespace)
	}
	for name, d := range map[string]time.Duration{
		"stream retention": o.StreamRetention, "poll interval": o.PollInterval,
		"health interval": o.HealthInterval, "tail block": o.TailBlock,
		"presence interval": o.PresenceInterval, "backoff min": o.BackoffMin,
		"backoff max": o.BackoffMax, "flush timeout": o.FlushTimeout, "ack delay": o.AckDelay,
	} {
		if d < 0 {
			bad("%s %v must not be negative", name, d)
		}
	}
	if o.BackoffMax < o.BackoffMin {
		bad("backoff max %v is below backoff min %v", o.BackoffMax, o.BackoffMin)
	}
	if o.ShipBatch < 1 || o.TailBatch < 1 || o.TailWorkers < 1 {
		bad("ship batch %d, tail batch %d and tail workers %d must be at least 1",
			o.ShipBatch, o.TailBatch, o.TailWorkers)
	}
	return errors.Join(errs...)
}

// Redis is the bus of a replicated Herald. See the package comment for what
// it does; redis_*.go hold its parts, one goroutine each:
//
//   - the shipper (redis_shipper.go) ships the outbox to the stream and the
//     live channels;
//   - the live receiver (redis_live.go) reads the Pub/Sub connection and
//     applies what it receives, in arrival order;
//   - the control loop (redis_control.go) turns Watch/Unwatch into
//     SUBSCRIBE/UNSUBSCRIBE and keeps presence in Redis;
//   - the tailer (redis_tail.go) catches up from the stream;
//   - the health loop (redis_health.go) pings Redis and the live connection.
//
// Scale, step by step (figures from this package's benchmarks on a quiet
// 2-core machine; on one shared with other busy processes, less than half):
//
//   - Shipping: one pipeline per outbox batch on one connection; Redis takes
//     tens of thousands of XADD+PUBLISH a second, far above what one replica
//     commits.
//   - Live path: received changes are split by user over a few appliers
//     (redis_live_apply.go), so changes of different users share a durable
//     commit; a replica applies every change of the cluster, which bounds
//     the cluster's change rate (BENCHMARKS.md: at 1,000 a second two
//     replicas keep up; at 4,000 a second the second falls seconds behind
//     on our 2-core test machine). Every replica
//     also reads every envelope of the cluster once more through the pattern
//     subscription (see live).
//   - Catch-up: about 2,000 entries a second for one user, twice that spread
//     over users; a replica away for an hour at 100 changes a second is ready
//     again in a few minutes.
//   - One stream and classic Pub/Sub: the cluster's total change rate is
//     bounded by one Redis (shard); see the known limit on keys.
//
// It is safe for concurrent use. Its mutexes (control.mu, live.mu,
// readiness.mu) are leaves: none is taken while another is held. live.mu is
// held across go-redis's SUBSCRIBE calls, so the Pub/Sub connection and the
// subscribed set change together.
type Redis struct {
	opts    RedisOptions
	log     hclog.Logger
	client  redis.UniversalClient
	keys    keys
	metrics *redisMetrics
	scripts scripts
	drops   *dropLog
	ownWarn *dropLog // limits warnForeignOwn (see applyRemote)

	kick     chan struct{} // wakes the shipper; capacity 1, coalescing
	tailKick chan struct{} // wakes the tailer from a backoff wait
	liveWake chan struct{} // wakes the live receiver from a backoff wait
	shipWake chan struct{} // wakes the shipper from a backoff wait

	ctl   control
	live  live
	gate  liveGate
	state readiness

	running atomic.Bool
	done    atomic.Bool
}

var _ Bus = (*Redis)(nil)

// NewRedis checks opts and returns a Redis bus. It does not connect: Run
// does, and keeps retrying while Redis is unreachable.
func NewRedis(opts RedisOptions) (*Redis, error) {
	opts.applyDefaults()
	if err := opts.validate(); err != nil {
		return nil, err
	}
	installRedisLogger(opts.Logger)
	client, err := newClient(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: url: %w", ErrInvalidOptions, err)
	}
	m, err := newRedisMetrics(opts.Registerer, opts.Store)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("bus: register metrics: %w", err)
	}
	r := &Redis{
		opts:     opts,
		log:      opts.Logger,
		client:   client,
		keys:     newKeys(opts.Namespace, opts.ChannelPrefix, opts.NodeID),
		metrics:  m,
		scripts:  newScripts(),
		drops:    newDropLog(),
		ownWarn:  newForeignOwnLog(),
		kick:     make(chan struct{}, 1),
		tailKick: make(chan struct{}, 1),
		liveWake: make(chan struct{}, 1),
		shipWake: make(chan struct{}, 1),
	}
	r.ctl.init()
	r.live.init()
	r.gate.init()
	r.state.init()
	return r, nil
}

// Run connects to Redis and does the bus's work until ctx is cancelled. On
// cancel it makes a last attempt to ship the outbox (within FlushTimeout),
// stops every goroutine, waits for them and closes the Redis client. It
// returns nil, or an error if called twice.
func (r *Redis) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("bus: Run called twice")
	}
	defer r.done.Store(true)
	r.log.Info("redis bus starting", "node_id", r.opts.NodeID, "namespace", r.opts.Namespace,
		"channel_prefix", r.opts.ChannelPrefix, "stream", r.keys.stream,
		"stream_retention", r.opts.StreamRetention)

	// The shipper and the control loop still talk to Redis after ctx ends
	// (the last flush, removing the presence), within FlushTimeout. The
	// other loops may sit in a blocking read (XREAD, the Pub/Sub connection,
	// a PING to a hung Redis); they stop when the client is closed, after
	// the first two finished.
	var first, late sync.WaitGroup
	first.Add(2)
	go func() { defer first.Done(); r.runShipper(ctx) }()
	go func() { defer first.Done(); r.runControl(ctx) }()
	late.Add(3)
	go func() { defer late.Done(); r.runLive(ctx) }()
	go func() { defer late.Done(); r.runHealth(ctx) }()
	go func() { defer late.Done(); r.runTail(ctx) }()

	<-ctx.Done()
	r.live.closeCurrent() // unblocks the live receiver
	firstDone := make(chan struct{})
	go func() { first.Wait(); close(firstDone) }() // ends with the first two
	grace := time.NewTimer(r.opts.FlushTimeout + stopMargin)
	select {
	case <-firstDone:
	case <-grace.C:
		// A hung Redis holds a command past the flush timeout (go-redis
		// applies no context cancel to a blocked read): closing the client
		// ends it, and what is left ships at the next start.
		r.log.Warn("redis did not answer during stop; closing", "node_id", r.opts.NodeID)
	}
	grace.Stop()
	err := r.client.Close()
	<-firstDone
	late.Wait()
	r.metrics.redisUp.Set(0)
	r.log.Info("redis bus stopped", "node_id", r.opts.NodeID)
	if err != nil && !errors.Is(err, redis.ErrClosed) {
		r.log.Debug("close redis client", "error", err)
	}
	return nil
}

// Kick wakes the shipper; it never blocks, and kicks coalesce.
func (r *Redis) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// kickTail wakes the tailer from a backoff wait; it never blocks.
func (r *Redis) kickTail() { signal(r.tailKick) }

// signal makes a non-blocking, coalescing send on a channel of capacity 1.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Watch queues a subscription to the user's live channel. It never blocks on
// I/O; Watch and Unwatch of one user coalesce to the last call.
func (r *Redis) Watch(userID string) { r.ctl.request(userID, true) }

// Unwatch queues the end of the user's live subscription. It is kept while
// LocalCount still reports sockets of the user.
func (r *Redis) Unwatch(userID string) { r.ctl.request(userID, false) }

// Ready returns nil while the bus works: Run is running, the first catch-up
// reached the stream's end, Redis answers and the live subscription is up.
// Otherwise it returns an error wrapping ErrNotRunning, ErrCatchingUp,
// ErrRedisDown or ErrLiveDown.
func (r *Redis) Ready() error {
	if !r.running.Load() || r.done.Load() {
		return ErrNotRunning
	}
	return r.state.ready()
}

// NodeID returns this replica's node ID.
func (r *Redis) NodeID() string { return r.opts.NodeID }
