package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/plugin/heraldv1"
)

// fanoutResult is the outcome of the fanout scenario.
type fanoutResult struct {
	Conns     int     `json:"conns"`
	Users     int     `json:"users"`
	Replicas  int     `json:"replicas"`
	Processes int     `json:"processes"`
	Rate      float64 `json:"rate"`
	// Batch is how many notifications one create call carries.
	Batch   int     `json:"batch"`
	Seconds float64 `json:"duration_seconds"`
	// Created counts acknowledged CreateNotification calls.
	Created      int64          `json:"created"`
	CreateErrors map[string]int `json:"create_errors,omitempty"`
	// AchievedRate is Created over the time from the first call to the
	// last answer.
	AchievedRate float64 `json:"achieved_rate"`
	// MaxLagMs is how far the pacer fell behind its schedule at worst.
	MaxLagMs float64 `json:"max_schedule_lag_ms"`
	// Expected counts (notification, connection of its user) pairs.
	Expected     int64   `json:"expected"`
	Delivered    int64   `json:"delivered"`
	Lost         int64   `json:"lost"`
	Duplicates   int64   `json:"duplicates"`
	Misdelivered int64   `json:"misdelivered"`
	DrainSeconds float64 `json:"drain_seconds"`
	// Latency is from the create call's start to the frame's arrival.
	Latency Summary `json:"latency"`
	// LatencyByReplica splits Latency by the replica the clients were on,
	// in --ws order; the first --socket's replica is the creating one.
	LatencyByReplica []Summary `json:"latency_by_replica,omitempty"`
	CreateRPC        Summary   `json:"create_rpc"`
	// ServerCPU and LoadCPU are the CPU time of the servers (--server-pid)
	// and of this tool from the first create to the end of the drain.
	ServerCPU      cpuUse         `json:"server_cpu"`
	LoadCPU        cpuUse         `json:"load_cpu"`
	ConnectFailed  int64          `json:"connect_failed"`
	ClosedByServer int64          `json:"closed_by_server"`
	Closes         map[string]int `json:"closes,omitempty"`
}

func (r *fanoutResult) rows() [][2]string {
	rows := [][2]string{
		{"clients", fmt.Sprintf("%d over %d users, %d replicas, %d processes", r.Conns, r.Users, r.Replicas, r.Processes)},
		{"target rate", fmt.Sprintf("%.0f/s for %.1fs, %d per create call", r.Rate, r.Seconds, r.Batch)},
		{"created", fmt.Sprintf("%d (achieved %.0f/s, worst schedule lag %.1fms)", r.Created, r.AchievedRate, r.MaxLagMs)},
		{"create errors", countsString(r.CreateErrors)},
		{"create RPC", r.CreateRPC.String()},
		{"expected deliveries", fmt.Sprintf("%d", r.Expected)},
		{"delivered", fmt.Sprintf("%d (lost %d, duplicated %d, misdelivered %d; drained in %.2fs)",
			r.Delivered, r.Lost, r.Duplicates, r.Misdelivered, r.DrainSeconds)},
		{"create→frame latency", r.Latency.String()},
	}
	if len(r.LatencyByReplica) > 1 {
		for i, l := range r.LatencyByReplica {
			rows = append(rows, [2]string{fmt.Sprintf("  clients on --ws #%d", i+1), l.String()})
		}
	}
	rows = append(rows, [2]string{"closed by server", fmt.Sprintf("%d (%s)", r.ClosedByServer, countsString(r.Closes))})
	if len(r.ServerCPU.Each) > 0 {
		rows = append(rows, [2]string{"server CPU, create+drain",
			r.ServerCPU.perOp(r.Created, "notification") + fmt.Sprintf(" (each %v)", r.ServerCPU.Each)})
	}
	rows = append(rows, [2]string{"load generator CPU", r.LoadCPU.String()})
	return rows
}

// runFanout connects o.Conns clients, creates notifications for their users
// through one Herald's RPC at o.Rate for o.Duration, and counts what arrives.
func runFanout(ctx context.Context, o options) (*fanoutResult, error) {
	if o.Conns <= 0 || o.Rate <= 0 || o.Duration <= 0 || o.Callers <= 0 {
		return nil, errors.New("--conns, --rate, --duration and --callers must be positive")
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
	r := &fanoutResult{Conns: o.Conns, Users: o.Users, Replicas: len(o.WS), Processes: p.Procs,
		Rate: o.Rate, Batch: max(o.Batch, 1), Seconds: o.Duration.Seconds()}

	f, err := startFleet(ctx, p, o.baseSpec(), o.ForceChildren)
	if err != nil {
		return nil, err
	}
	defer f.close()
	ready, err := f.collect("ready", rampTimeout(o))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if t := mergeEvents(ready); t.Counters.Synced != int64(o.Conns) {
		return nil, fmt.Errorf("only %d of %d clients connected and synced (%s); fanout needs all of them",
			t.Counters.Synced, o.Conns, countsString(t.Errors))
	}
	if err := sleepCtx(ctx, o.Warmup); err != nil {
		return nil, err
	}

	// Create at the paced rate.
	serverCPU, loadCPU := startCPU(o.ServerPIDs), startCPU(f.pids())
	c := createPaced(ctx, o, pool)
	r.Created, r.CreateErrors, r.Expected = c.created, c.errors, c.expected
	r.AchievedRate, r.MaxLagMs, r.CreateRPC = c.achieved, c.maxLagMs, Summarize(c.rpc)

	// Drain: wait until everything expected arrived, or o.Drain passed.
	drainStart := time.Now()
	for {
		evs, err := f.ask("progress", "progress", time.Minute)
		if err != nil {
			return nil, fmt.Errorf("progress: %w", err)
		}
		if mergeEvents(evs).Counters.Delivered >= r.Expected || time.Since(drainStart) > o.Drain {
			break
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
	r.DrainSeconds = time.Since(drainStart).Seconds()
	r.ServerCPU, r.LoadCPU = serverCPU.stop(), loadCPU.stop()

	res, err := f.ask("finish", "result", 2*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	t := mergeEvents(res)
	r.Delivered, r.Duplicates, r.Misdelivered = t.Counters.Delivered, t.Counters.Duplicates, t.Counters.Misdelivered
	r.Lost = max(r.Expected-r.Delivered, 0)
	r.Latency = Summarize(t.latency)
	for _, h := range t.byURL {
		r.LatencyByReplica = append(r.LatencyByReplica, Summarize(h))
	}
	r.ConnectFailed, r.ClosedByServer, r.Closes = t.Counters.Failed, t.Counters.ServerClosed, t.Closes
	return r, nil
}

// pacedOutcome is what createPaced did.
type pacedOutcome struct {
	created  int64
	expected int64
	errors   map[string]int
	achieved float64
	maxLagMs float64
	rpc      *Histogram
}

// createPaced creates o.Rate notifications a second for o.Duration from
// o.Callers goroutines, each for a random user of the run: one
// CreateNotification per notification, or with o.Batch > 1 one
// CreateNotifications per o.Batch notifications (paced o.Rate/o.Batch calls
// a second).
func createPaced(ctx context.Context, o options, pool *rpcPool) pacedOutcome {
	batch := int64(max(o.Batch, 1))
	total := int64(o.Rate * o.Duration.Seconds())
	interval := float64(time.Second) * float64(batch) / o.Rate
	jobs := make(chan int64, 1024) // first seq of each call
	var maxLag atomic.Int64
	start := time.Now()
	go func() {
		defer close(jobs)
		for k := int64(0); k*batch < total; k++ {
			due := start.Add(time.Duration(float64(k) * interval))
			if d := time.Until(due); d > 200*time.Microsecond {
				time.Sleep(d)
			}
			select {
			case jobs <- k * batch:
			case <-ctx.Done():
				return
			}
			if lag := int64(time.Since(due)); lag > maxLag.Load() {
				maxLag.Store(lag)
			}
		}
	}()

	out := pacedOutcome{errors: map[string]int{}, rpc: NewHistogram()}
	var (
		created, expected atomic.Int64
		mu                sync.Mutex
		wg                sync.WaitGroup
	)
	for w := range o.Callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(w)))
			users := make([]int, 0, batch)
			for first := range jobs {
				users = users[:0]
				t := time.Now()
				var err error
				if batch == 1 {
					users = append(users, rng.IntN(o.Users))
					req := &heraldv1.CreateNotificationRequest{
						Notification: loadNotification(userID(o.UserPrefix, users[0]), o.UserPrefix, first, t),
					}
					_, err = pool.client().CreateNotification(ctx, req)
				} else {
					req := &heraldv1.CreateNotificationsRequest{}
					for k := first; k < min(first+batch, total); k++ {
						u := rng.IntN(o.Users)
						users = append(users, u)
						req.Notifications = append(req.Notifications,
							loadNotification(userID(o.UserPrefix, u), o.UserPrefix, k, t))
					}
					_, err = pool.client().CreateNotifications(ctx, req)
				}
				out.rpc.RecordDuration(time.Since(t))
				if err != nil {
					mu.Lock()
					out.errors[rpcErrorClass(err)]++
					mu.Unlock()
					continue
				}
				created.Add(int64(len(users)))
				for _, u := range users {
					expected.Add(int64(connsOfUser(o.Conns, o.Users, u)))
				}
			}
		}()
	}
	wg.Wait()
	out.created, out.expected = created.Load(), expected.Load()
	out.achieved = float64(out.created) / time.Since(start).Seconds()
	out.maxLagMs = float64(maxLag.Load()) / 1e6
	return out
}

// connsOfUser returns how many of conns clients belong to user u when client
// i belongs to user i % users.
func connsOfUser(conns, users, u int) int {
	n := conns / users
	if u < conns%users {
		n++
	}
	return n
}
