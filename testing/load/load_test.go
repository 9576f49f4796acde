package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/sidecar/config"
	"github.com/heraldhq/herald/testing/heraldtest"
	"github.com/heraldhq/herald/testing/rediskit"
)

// TestMain lets the test binary act as a load worker: the fleet re-executes
// os.Executable() (here, the test binary) with HERALD_LOAD_WORKER=1.
func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		os.Exit(workerMain(os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

// smokeOptions returns options for tiny runs against nodes, with a secret
// file every node shares.
func smokeOptions(t *testing.T, secretFile string, nodes ...*heraldtest.Node) options {
	t.Helper()
	o := defaultOptions()
	for _, n := range nodes {
		o.WS = append(o.WS, "ws://"+n.HTTPAddr+"/ws")
	}
	o.Socket = nodes[0].Config.Socket
	o.SecretFile = secretFile
	o.Conns = 20
	o.Timeout = 10 * time.Second
	o.Settle, o.Hold = 100*time.Millisecond, 200*time.Millisecond
	o.Rate, o.Duration, o.Warmup, o.Drain = 200, time.Second, 200*time.Millisecond, 10*time.Second
	o.Callers, o.RPCConns = 4, 2
	o.Unread, o.Spread, o.Batch = 5, time.Second, 10
	if err := o.resolve(needWS | needRPC | needConns); err != nil {
		t.Fatal(err)
	}
	return o
}

// startNode starts one in-process Herald and returns it with its secret file.
func startNode(t *testing.T) (*heraldtest.Node, string) {
	t.Helper()
	n := heraldtest.Start(t, heraldtest.Options{})
	n.WaitReady(10 * time.Second)
	return n, filepath.Join(n.Config.DataDir, "secret")
}

func TestIdleSmoke(t *testing.T) {
	n, secret := startNode(t)
	o := smokeOptions(t, secret, n)
	o.ServerPIDs = []int{os.Getpid()} // the node runs in this process
	r, err := runIdle(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Synced != 20 || r.Failed != 0 {
		t.Fatalf("synced %d failed %d, want 20 and 0: %s", r.Synced, r.Failed, countsString(r.Errors))
	}
	if r.ServerConnections != -1 && r.ServerConnections != 20 {
		t.Errorf("herald_connections = %v, want 20", r.ServerConnections)
	}
	if r.ClosedByServer != 0 {
		t.Errorf("server closed %d sockets: %s", r.ClosedByServer, countsString(r.Closes))
	}
	if r.RSSAfter == 0 || r.ConnectRate <= 0 || r.Sync.Count != 20 || r.ServerCPURamp.Wall <= 0 {
		t.Errorf("missing figures: %+v", r)
	}
}

func TestIdleSplitsOverChildProcesses(t *testing.T) {
	n, secret := startNode(t)
	o := smokeOptions(t, secret, n)
	o.MaxPerProcess = 7 // 20 clients: 3 worker processes
	r, err := runIdle(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Processes != 3 || r.Synced != 20 || r.Failed != 0 {
		t.Fatalf("processes %d synced %d failed %d, want 3, 20, 0: %s",
			r.Processes, r.Synced, r.Failed, countsString(r.Errors))
	}
}

func TestIdleSourceAddresses(t *testing.T) {
	n, secret := startNode(t)
	o := smokeOptions(t, secret, n)
	o.Sources = 3 // clients bind 127.0.0.1, .2 and .3
	r, err := runIdle(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Sources) != 3 || r.Synced != 20 {
		t.Fatalf("sources %v synced %d, want 3 and 20: %s", r.Sources, r.Synced, countsString(r.Errors))
	}
}

func TestFanoutSmoke(t *testing.T) {
	n, secret := startNode(t)
	o := smokeOptions(t, secret, n)
	o.ForceChildren = true
	o.Batch = 1 // CreateNotification
	r, err := runFanout(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkFanout(t, r)
}

// TestFanoutTwoReplicas runs fanout over two replicas joined by a real Redis:
// clients of every other user sit on the replica that did not create.
func TestFanoutTwoReplicas(t *testing.T) {
	redis := rediskit.Start(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("k", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var nodes []*heraldtest.Node
	for range 2 {
		n := heraldtest.Start(t, heraldtest.Options{
			RedisURL:  redis.URL(),
			Configure: func(c *config.Config) { c.JWTSecretFile = secret },
		})
		n.WaitReady(20 * time.Second)
		nodes = append(nodes, n)
	}
	o := smokeOptions(t, secret, nodes...)
	o.Batch = 10 // CreateNotifications
	r, err := runFanout(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkFanout(t, r)
}

func checkFanout(t *testing.T, r *fanoutResult) {
	t.Helper()
	if r.Created != 200 || len(r.CreateErrors) != 0 {
		t.Fatalf("created %d (errors %s), want 200", r.Created, countsString(r.CreateErrors))
	}
	if r.Expected != 200 || r.Delivered != 200 || r.Lost != 0 || r.Duplicates != 0 || r.Misdelivered != 0 {
		t.Fatalf("expected %d delivered %d lost %d dup %d misdelivered %d",
			r.Expected, r.Delivered, r.Lost, r.Duplicates, r.Misdelivered)
	}
	if r.Latency.Count != 200 || r.Latency.P99 <= 0 {
		t.Errorf("latency %+v", r.Latency)
	}
}

func TestStormSmoke(t *testing.T) {
	n, secret := startNode(t)
	o := smokeOptions(t, secret, n)
	o.ServerPIDs = []int{os.Getpid()}
	r, err := runStorm(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if r.Prefilled != 100 || r.Synced != 20 || r.SyncShort != 0 || r.Failed != 0 {
		t.Fatalf("prefilled %d synced %d short %d failed %d: %s",
			r.Prefilled, r.Synced, r.SyncShort, r.Failed, countsString(r.Errors))
	}
	if r.Sync.Count != 20 || len(r.ServerCPUStorm.Each) != 1 {
		t.Errorf("sync summary %+v, server CPU %+v", r.Sync, r.ServerCPUStorm)
	}
}

func TestCreateSmokeThroughCommandLine(t *testing.T) {
	n, _ := startNode(t)
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"create", "--socket", n.Config.Socket,
		"--callers", "4", "--duration", "300ms", "--batch", "10", "--json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var rep struct {
		Scenario string
		Result   createResult
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, stdout.String())
	}
	if rep.Scenario != "create" || len(rep.Result.Runs) != 2 {
		t.Fatalf("report %+v", rep)
	}
	for _, run := range rep.Result.Runs {
		if run.Calls == 0 || len(run.Errors) != 0 || run.Notifications != run.Calls*int64(run.Batch) {
			t.Errorf("%s run: %+v", run.Mode, run)
		}
	}
}

func TestCommandLineUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no scenario", nil, 2, "a scenario is required"},
		{"unknown scenario", []string{"nope"}, 2, "unknown scenario"},
		{"missing ws", []string{"idle", "--conns", "5", "--data-dir", "x"}, 2, "--ws is required"},
		{"bad ws", []string{"idle", "--ws", "http://x/ws", "--data-dir", "x"}, 2, "ws:// or wss://"},
		{"no secret", []string{"idle", "--ws", "ws://127.0.0.1:1/ws", "--conns", "5"}, 2, "--secret-file or --data-dir"},
		{"help", []string{"idle", "-h"}, 0, "-conns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.code, tt.want)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	one := []string{"ws://127.0.0.1:8787/ws"}
	three := []string{"ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws", "ws://127.0.0.1:3/ws"}
	tests := []struct {
		name    string
		in      planInput
		procs   int
		sources int
		wantErr string
	}{
		{"fits one process", planInput{conns: 1000, urls: one, noFile: 20000}, 1, 0, ""},
		{"sources as asked", planInput{conns: 18000, urls: one, noFile: 20000, sources: 1}, 1, 0, ""},
		{"19000 on one server", planInput{conns: 19000, urls: one, noFile: 20000}, 1, 0, ""},
		{"19001 on one server", planInput{conns: 19001, urls: one, noFile: 20000}, 0, 0, "add replicas"},
		{"50000 on one server", planInput{conns: 50000, urls: one, noFile: 20000}, 0, 0, "3 replicas"},
		{"50000 over three", planInput{conns: 50000, urls: three, noFile: 20000}, 3, 0, ""},
		{"forced split", planInput{conns: 20, urls: one, noFile: 20000, maxPerProc: 7}, 3, 0, ""},
		{"split forbidden", planInput{conns: 20, urls: one, noFile: 20000, maxPerProc: 7, inProcess: true},
			0, 0, "child processes are off"},
		{"ports need sources", planInput{conns: 60000, urls: one, noFile: 100000}, 1, 0, ""},
		{"too few sources", planInput{conns: 60000, urls: one, noFile: 100000, sources: 1}, 0, 0, "source addresses"},
		{"sources off loopback", planInput{conns: 60000, urls: []string{"ws://10.0.0.1:1/ws"}, noFile: 100000},
			0, 0, "not on loopback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := makePlan(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Procs != tt.procs {
				t.Errorf("procs %d, want %d", p.Procs, tt.procs)
			}
			if tt.sources > 0 && len(p.Sources) != tt.sources {
				t.Errorf("sources %v, want %d", p.Sources, tt.sources)
			}
			if tt.name == "ports need sources" && len(p.Sources) < 2 {
				t.Errorf("60000 connections to one destination got sources %v", p.Sources)
			}
		})
	}
}

func TestPlanSpreadsOverSources(t *testing.T) {
	ports, err := ephemeralPorts()
	if err != nil {
		t.Skip(err)
	}
	comfort := int(float64(ports) * portComfort)
	p, err := makePlan(planInput{conns: 18000, urls: []string{"ws://127.0.0.1:1/ws"}, noFile: 20000})
	if err != nil {
		t.Fatal(err)
	}
	if want := (18000 + comfort - 1) / comfort; len(p.Sources) != want && want > 1 {
		t.Errorf("sources %v, want %d for %d ephemeral ports", p.Sources, want, ports)
	}
}

func TestHistogram(t *testing.T) {
	h := NewHistogram()
	for v := int64(1); v <= 100000; v++ {
		h.Record(v * 1000) // 1µs .. 100ms
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := q * 100000 * 1000
		got := float64(h.Quantile(q))
		if math.Abs(got-want)/want > 0.01 {
			t.Errorf("q%.3f = %.0f, want %.0f ±1%%", q, got, want)
		}
	}
	if h.Max() != 100000*1000 || h.Min() != 1000 || h.Count() != 100000 {
		t.Errorf("max %d min %d count %d", h.Max(), h.Min(), h.Count())
	}

	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	back := NewHistogram()
	if err := json.Unmarshal(b, back); err != nil {
		t.Fatal(err)
	}
	merged := NewHistogram()
	merged.Merge(back)
	merged.Merge(h)
	if merged.Count() != 200000 || merged.Quantile(0.5) != h.Quantile(0.5) || merged.Max() != h.Max() {
		t.Errorf("merged count %d p50 %d max %d", merged.Count(), merged.Quantile(0.5), merged.Max())
	}
	if NewHistogram().Quantile(0.99) != 0 {
		t.Error("empty histogram quantile not 0")
	}
}
