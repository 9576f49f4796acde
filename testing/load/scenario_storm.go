package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/plugin/heraldv1"
)

// stormResult is the outcome of the storm scenario.
type stormResult struct {
	Conns     int `json:"conns"`
	Users     int `json:"users"`
	Replicas  int `json:"replicas"`
	Processes int `json:"processes"`
	// Unread is the unread notifications each user has before the storm.
	Unread        int            `json:"unread"`
	Prefilled     int64          `json:"prefilled"`
	PrefillErrors map[string]int `json:"prefill_errors,omitempty"`
	PrefillRate   float64        `json:"prefill_rate"`
	SpreadSeconds float64        `json:"spread_seconds"`
	// StormSeconds is from the first scheduled connect to the last client done.
	StormSeconds float64 `json:"storm_seconds"`
	Synced       int64   `json:"synced"`
	// SyncShort counts unread_sync frames reporting fewer than Unread.
	SyncShort int64          `json:"sync_short"`
	Failed    int64          `json:"failed"`
	Errors    map[string]int `json:"errors,omitempty"`
	Handshake Summary        `json:"handshake"`
	// Sync is from the start of the dial to the unread_sync frame.
	Sync Summary `json:"sync"`
	// SyncTimeline is Sync by the second of the window the client dialed in.
	SyncTimeline []Summary `json:"sync_timeline,omitempty"`
	// ServerCPUPrefill, ServerCPUStorm and LoadCPUStorm are the CPU time of
	// the servers (--server-pid) and of this tool in each phase.
	ServerCPUPrefill cpuUse `json:"server_cpu_prefill"`
	ServerCPUStorm   cpuUse `json:"server_cpu_storm"`
	LoadCPUStorm     cpuUse `json:"load_cpu_storm"`
}

func (r *stormResult) rows() [][2]string {
	rows := [][2]string{
		{"clients", fmt.Sprintf("%d over %d users, %d replicas, %d processes", r.Conns, r.Users, r.Replicas, r.Processes)},
		{"prefill", fmt.Sprintf("%d unread each, %d created at %.0f/s (errors: %s)",
			r.Unread, r.Prefilled, r.PrefillRate, countsString(r.PrefillErrors))},
		{"storm", fmt.Sprintf("spread over %.1fs, done after %.2fs", r.SpreadSeconds, r.StormSeconds)},
		{"synced", fmt.Sprintf("%d (short %d, failed %d)", r.Synced, r.SyncShort, r.Failed)},
		{"errors", countsString(r.Errors)},
		{"handshake", r.Handshake.String()},
		{"connect→unread_sync", r.Sync.String()},
	}
	rows = append(rows, timelineRows("dialed in", r.SyncTimeline)...)
	if len(r.ServerCPUStorm.Each) > 0 {
		rows = append(rows,
			[2]string{"server CPU, prefill", r.ServerCPUPrefill.perOp(r.Prefilled, "notification")},
			[2]string{"server CPU, storm", r.ServerCPUStorm.perOp(r.Synced, "connect")})
	}
	return append(rows, [2]string{"load generator CPU, storm", r.LoadCPUStorm.String()})
}

// runStorm gives every user o.Unread unread notifications, then connects
// o.Conns clients spread uniformly over o.Spread and measures the time from
// dial to unread_sync.
func runStorm(ctx context.Context, o options) (*stormResult, error) {
	if o.Conns <= 0 || o.Unread < 0 || o.Batch <= 0 || o.Callers <= 0 {
		return nil, errors.New("--conns, --batch and --callers must be positive, --unread not negative")
	}
	pool, err := dialRPC(ctx, o.Socket, o.RPCConns)
	if err != nil {
		return nil, err
	}
	defer pool.close()
	p, err := o.plan()
	if err != nil {
		return nil, err
	}
	r := &stormResult{Conns: o.Conns, Users: o.Users, Replicas: len(o.WS), Processes: p.Procs,
		Unread: o.Unread, SpreadSeconds: o.Spread.Seconds()}

	// Prefill.
	serverCPU := startCPU(o.ServerPIDs)
	pf := prefill(ctx, o, pool)
	r.ServerCPUPrefill = serverCPU.stop()
	r.Prefilled, r.PrefillErrors, r.PrefillRate = pf.created, pf.errors, pf.rate
	if len(pf.errors) > 0 {
		return r, fmt.Errorf("prefill failed: %s", countsString(pf.errors))
	}

	// Storm: the workers schedule each client's dial themselves.
	spec := o.baseSpec()
	spec.Mode = modeStorm
	spec.Spread = o.Spread
	spec.ExpectUnread = o.Unread
	startAt := time.Now().Add(time.Second + time.Duration(p.Procs)*200*time.Millisecond)
	spec.StartAtUnixNs = startAt.UnixNano()
	f, err := startFleet(ctx, p, spec, o.ForceChildren)
	if err != nil {
		return nil, err
	}
	defer f.close()
	if err := sleepCtx(ctx, time.Until(startAt)); err != nil {
		return nil, err
	}
	serverCPU, loadCPU := startCPU(o.ServerPIDs), startCPU(f.pids())
	ready, err := f.collect("ready", o.Spread+o.Timeout+time.Minute)
	if err != nil {
		return nil, fmt.Errorf("storm: %w", err)
	}
	r.StormSeconds = time.Since(startAt).Seconds()
	r.ServerCPUStorm, r.LoadCPUStorm = serverCPU.stop(), loadCPU.stop()
	t := mergeEvents(ready)
	r.Synced, r.SyncShort, r.Failed, r.Errors = t.Counters.Synced, t.Counters.SyncShort, t.Counters.Failed, t.Errors
	r.Handshake, r.Sync = Summarize(t.connect), Summarize(t.sync)
	r.SyncTimeline = timeline(t.bySlot)
	if _, err := f.ask("finish", "result", 2*time.Minute); err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	return r, nil
}

type prefillOutcome struct {
	created int64
	errors  map[string]int
	rate    float64
}

// prefill creates o.Unread notifications for each of o.Users users through
// CreateNotifications batches of o.Batch, from o.Callers goroutines.
func prefill(ctx context.Context, o options, pool *rpcPool) prefillOutcome {
	out := prefillOutcome{errors: map[string]int{}}
	total := int64(o.Users) * int64(o.Unread)
	if total == 0 {
		return out
	}
	batches := make(chan int64, 64) // first index of each batch
	go func() {
		defer close(batches)
		for first := int64(0); first < total; first += int64(o.Batch) {
			select {
			case batches <- first:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		created atomic.Int64
		mu      sync.Mutex
		wg      sync.WaitGroup
	)
	start := time.Now()
	for range o.Callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := range batches {
				req := &heraldv1.CreateNotificationsRequest{}
				for k := first; k < min(first+int64(o.Batch), total); k++ {
					u := int(k / int64(o.Unread)) // user-major: a user's notifications together
					req.Notifications = append(req.Notifications,
						loadNotification(userID(o.UserPrefix, u), o.UserPrefix, k, time.Now()))
				}
				if _, err := pool.client().CreateNotifications(ctx, req); err != nil {
					mu.Lock()
					out.errors[rpcErrorClass(err)]++
					mu.Unlock()
					continue
				}
				created.Add(int64(len(req.Notifications)))
			}
		}()
	}
	wg.Wait()
	out.created = created.Load()
	out.rate = float64(out.created) / time.Since(start).Seconds()
	return out
}
