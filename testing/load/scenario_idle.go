package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// idleResult is the outcome of the idle scenario.
type idleResult struct {
	Conns          int      `json:"conns"`
	Users          int      `json:"users"`
	Replicas       int      `json:"replicas"`
	Processes      int      `json:"processes"`
	Sources        []string `json:"sources,omitempty"`
	Connected      int64    `json:"connected"`
	Synced         int64    `json:"synced"`
	Failed         int64    `json:"failed"`
	ConnectSeconds float64  `json:"connect_seconds"`
	// ConnectRate is synced clients per second of the ramp.
	ConnectRate float64 `json:"connect_rate"`
	Handshake   Summary `json:"handshake"`
	Sync        Summary `json:"sync"`
	// SyncTimeline is Sync by the second of the ramp the client dialed in.
	SyncTimeline []Summary      `json:"sync_timeline,omitempty"`
	Errors       map[string]int `json:"errors,omitempty"`
	// ServerConnections is herald_connections summed over the replicas
	// after settling, or -1 when /metrics was not readable.
	ServerConnections float64 `json:"server_connections"`
	// ClosedByServer counts sockets the servers closed during settle and hold.
	ClosedByServer int64          `json:"closed_by_server"`
	Closes         map[string]int `json:"closes,omitempty"`
	ServerPIDs     []int          `json:"server_pids,omitempty"`
	RSSBefore      int64          `json:"rss_before_bytes,omitempty"`
	RSSAfter       int64          `json:"rss_after_bytes,omitempty"`
	RSSEnd         int64          `json:"rss_end_bytes,omitempty"`
	RSSAfterEach   []int64        `json:"rss_after_each_bytes,omitempty"`
	// RSSPerConn is (RSSAfter − RSSBefore) / Synced, in bytes.
	RSSPerConn float64 `json:"rss_per_conn_bytes,omitempty"`
	// ServerCPURamp and LoadCPURamp are the CPU time the servers and this
	// tool (with its workers) used during the ramp; ServerCPUHold during
	// settle and hold.
	ServerCPURamp cpuUse `json:"server_cpu_ramp"`
	LoadCPURamp   cpuUse `json:"load_cpu_ramp"`
	ServerCPUHold cpuUse `json:"server_cpu_hold"`
}

func (r *idleResult) rows() [][2]string {
	rows := [][2]string{
		{"clients", fmt.Sprintf("%d over %d users, %d replicas, %d processes, source addresses: %s",
			r.Conns, r.Users, r.Replicas, r.Processes, sourcesString(r.Sources))},
		{"connected", fmt.Sprintf("%d (synced %d, failed %d)", r.Connected, r.Synced, r.Failed)},
		{"connect ramp", fmt.Sprintf("%.2fs, %.0f connections/s", r.ConnectSeconds, r.ConnectRate)},
		{"handshake", r.Handshake.String()},
		{"connect→unread_sync", r.Sync.String()},
		{"errors", countsString(r.Errors)},
		{"server herald_connections", fmt.Sprintf("%.0f", r.ServerConnections)},
		{"closed by server", fmt.Sprintf("%d (%s)", r.ClosedByServer, countsString(r.Closes))},
		{"load generator CPU, ramp", r.LoadCPURamp.String()},
	}
	if len(r.ServerPIDs) > 0 {
		rows = append(rows,
			[2]string{"server CPU, ramp", r.ServerCPURamp.perOp(r.Synced, "connect")},
			[2]string{"server CPU, settle+hold", r.ServerCPUHold.String()},
			[2]string{"server RSS", fmt.Sprintf("%s before, %s connected+settled, %s after hold",
				mib(r.RSSBefore), mib(r.RSSAfter), mib(r.RSSEnd))},
			[2]string{"RSS per connection", kib(r.RSSPerConn)})
	}
	return rows
}

// runIdle connects o.Conns clients, lets them settle, holds them open and
// measures the servers' RSS.
func runIdle(ctx context.Context, o options) (*idleResult, error) {
	if o.Conns <= 0 {
		return nil, errors.New("--conns must be positive")
	}
	p, err := o.plan()
	if err != nil {
		return nil, err
	}
	r := &idleResult{Conns: o.Conns, Users: o.Users, Replicas: len(o.WS), Processes: p.Procs,
		Sources: p.Sources, ServerPIDs: o.ServerPIDs, ServerConnections: -1}
	if len(o.ServerPIDs) > 0 {
		if r.RSSBefore, _, err = sumRSS(o.ServerPIDs); err != nil {
			return nil, err
		}
	}

	// Ramp up.
	start := time.Now()
	serverCPU := startCPU(o.ServerPIDs)
	f, err := startFleet(ctx, p, o.baseSpec(), o.ForceChildren)
	if err != nil {
		return nil, err
	}
	defer f.close()
	loadCPU := startCPU(f.pids())
	ready, err := f.collect("ready", rampTimeout(o))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	r.ConnectSeconds = time.Since(start).Seconds()
	r.ServerCPURamp, r.LoadCPURamp = serverCPU.stop(), loadCPU.stop()
	serverCPU = startCPU(o.ServerPIDs)
	t := mergeEvents(ready)
	r.Connected, r.Synced, r.Failed = t.Counters.Connected, t.Counters.Synced, t.Counters.Failed
	r.ConnectRate = float64(r.Synced) / r.ConnectSeconds
	r.Handshake, r.Sync, r.Errors = Summarize(t.connect), Summarize(t.sync), t.Errors
	r.SyncTimeline = timeline(t.bySlot)

	// Settle, then measure.
	if err := sleepCtx(ctx, o.Settle); err != nil {
		return nil, err
	}
	if n, ok := sumServerConnections(o.WS); ok {
		r.ServerConnections = n
	}
	if len(o.ServerPIDs) > 0 {
		if r.RSSAfter, r.RSSAfterEach, err = sumRSS(o.ServerPIDs); err != nil {
			return nil, err
		}
		if r.Synced > 0 {
			r.RSSPerConn = float64(r.RSSAfter-r.RSSBefore) / float64(r.Synced)
		}
	}

	// Hold.
	if err := sleepCtx(ctx, o.Hold); err != nil {
		return nil, err
	}
	r.ServerCPUHold = serverCPU.stop()
	if len(o.ServerPIDs) > 0 {
		if r.RSSEnd, _, err = sumRSS(o.ServerPIDs); err != nil {
			return nil, err
		}
	}
	res, err := f.ask("finish", "result", 2*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("finish: %w", err)
	}
	t = mergeEvents(res)
	r.ClosedByServer, r.Closes = t.Counters.ServerClosed, t.Closes
	return r, nil
}

// rampTimeout bounds a ramp-up generously: the per-client timeout plus 20 ms
// per client per process of work.
func rampTimeout(o options) time.Duration {
	return o.Timeout + time.Minute + time.Duration(o.Conns)*20*time.Millisecond
}

func sumServerConnections(urls []string) (float64, bool) {
	var total float64
	for _, u := range urls {
		n, ok := serverConnections(u)
		if !ok {
			return 0, false
		}
		total += n
	}
	return total, true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
