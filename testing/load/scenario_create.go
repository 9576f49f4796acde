package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/plugin/heraldv1"
)

// createRun is one closed-loop run of the create scenario.
type createRun struct {
	// Mode is "single" (CreateNotification) or "batch" (CreateNotifications).
	Mode    string  `json:"mode"`
	Callers int     `json:"callers"`
	Batch   int     `json:"batch"`
	Seconds float64 `json:"seconds"`
	Calls   int64   `json:"calls"`
	// Notifications counts created notifications (Calls × Batch when all succeed).
	Notifications int64          `json:"notifications"`
	Errors        map[string]int `json:"errors,omitempty"`
	CallsPerSec   float64        `json:"calls_per_sec"`
	NotesPerSec   float64        `json:"notifications_per_sec"`
	Latency       Summary        `json:"latency"`
	// ServerCPU and LoadCPU are the CPU time of the server (--server-pid)
	// and of this tool during the run.
	ServerCPU cpuUse `json:"server_cpu"`
	LoadCPU   cpuUse `json:"load_cpu"`
}

// createResult is the outcome of the create scenario.
type createResult struct {
	Users int         `json:"users"`
	Runs  []createRun `json:"runs"`
}

func (r *createResult) rows() [][2]string {
	rows := [][2]string{{"users", fmt.Sprintf("%d", r.Users)}}
	for _, run := range r.Runs {
		name := fmt.Sprintf("%s ×%d callers", run.Mode, run.Callers)
		if run.Mode == "batch" {
			name += fmt.Sprintf(", %d per call", run.Batch)
		}
		rows = append(rows,
			[2]string{name, fmt.Sprintf("%.0f calls/s, %.0f notifications/s over %.1fs (%d calls, errors: %s)",
				run.CallsPerSec, run.NotesPerSec, run.Seconds, run.Calls, countsString(run.Errors))},
			[2]string{"  call latency", run.Latency.String()})
		if len(run.ServerCPU.Each) > 0 {
			rows = append(rows, [2]string{"  server CPU", run.ServerCPU.perOp(run.Notifications, "notification")})
		}
		rows = append(rows, [2]string{"  load generator CPU", run.LoadCPU.String()})
	}
	return rows
}

// runCreate measures create throughput: o.Callers goroutines calling in a
// closed loop for o.Duration, with single creates, batches, or both.
func runCreate(ctx context.Context, o options) (*createResult, error) {
	if o.Callers <= 0 || o.Duration <= 0 || o.Batch <= 0 {
		return nil, errors.New("--callers, --duration and --batch must be positive")
	}
	if o.Users <= 0 {
		o.Users = 1000
	}
	var modes []string
	switch o.Mode {
	case "single", "batch":
		modes = []string{o.Mode}
	case "both":
		modes = []string{"single", "batch"}
	default:
		return nil, fmt.Errorf("--mode must be single, batch or both, got %q", o.Mode)
	}
	pool, err := dialRPC(ctx, o.Socket, o.RPCConns)
	if err != nil {
		return nil, err
	}
	defer pool.close()
	r := &createResult{Users: o.Users}
	for _, m := range modes {
		run := createLoop(ctx, o, pool, m)
		r.Runs = append(r.Runs, run)
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
	}
	return r, nil
}

func createLoop(ctx context.Context, o options, pool *rpcPool, mode string) createRun {
	batch := 1
	if mode == "batch" {
		batch = o.Batch
	}
	run := createRun{Mode: mode, Callers: o.Callers, Batch: batch, Errors: map[string]int{}}
	hist := NewHistogram()
	var (
		calls, notes atomic.Int64
		seq          atomic.Int64
		mu           sync.Mutex
		wg           sync.WaitGroup
	)
	serverCPU, loadCPU := startCPU(o.ServerPIDs), startCPU([]int{os.Getpid()})
	start := time.Now()
	deadline := start.Add(o.Duration)
	for w := range o.Callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(w)))
			for ctx.Err() == nil && time.Now().Before(deadline) {
				t := time.Now()
				var err error
				if batch == 1 {
					k := seq.Add(1)
					n := loadNotification(userID(o.UserPrefix, rng.IntN(o.Users)), o.UserPrefix, k, t)
					_, err = pool.client().CreateNotification(ctx, &heraldv1.CreateNotificationRequest{Notification: n})
				} else {
					req := &heraldv1.CreateNotificationsRequest{}
					for range batch {
						k := seq.Add(1)
						req.Notifications = append(req.Notifications,
							loadNotification(userID(o.UserPrefix, rng.IntN(o.Users)), o.UserPrefix, k, t))
					}
					_, err = pool.client().CreateNotifications(ctx, req)
				}
				hist.RecordDuration(time.Since(t))
				if err != nil {
					mu.Lock()
					run.Errors[rpcErrorClass(err)]++
					mu.Unlock()
					continue
				}
				calls.Add(1)
				notes.Add(int64(batch))
			}
		}()
	}
	wg.Wait()
	run.Seconds = time.Since(start).Seconds()
	run.Calls, run.Notifications = calls.Load(), notes.Load()
	run.CallsPerSec = float64(run.Calls) / run.Seconds
	run.NotesPerSec = float64(run.Notifications) / run.Seconds
	run.Latency = Summarize(hist)
	run.ServerCPU, run.LoadCPU = serverCPU.stop(), loadCPU.stop()
	return run
}
