package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/heraldhq/herald/sidecar/auth"
)

// workerEnv marks a child process as a worker; the parent sets it so that a
// test binary re-executed as a worker knows what to do before flag parsing.
const workerEnv = "HERALD_LOAD_WORKER"

// Connect modes of a worker.
const (
	// modeRamp connects every client as fast as DialConcurrency allows.
	modeRamp = "ramp"
	// modeStorm connects client i at StartAt + Spread*i/Conns.
	modeStorm = "storm"
)

// workerSpec tells one worker which clients it owns and how to connect them.
// Worker w of W owns the global client indices w, w+W, w+2W, ... below Conns.
type workerSpec struct {
	ID      int `json:"id"`
	Workers int `json:"workers"`
	// Conns is the total number of clients over all workers.
	Conns      int      `json:"conns"`
	URLs       []string `json:"urls"`
	Users      int      `json:"users"`
	UserPrefix string   `json:"user_prefix"`
	// Secret is the HS256 key; the spec travels over a pipe, never argv.
	Secret   []byte        `json:"secret"`
	TokenTTL time.Duration `json:"token_ttl"`
	Sources  []string      `json:"sources,omitempty"`
	Mode     string        `json:"mode"`
	// DialConcurrency bounds clients connecting at once in modeRamp.
	DialConcurrency int   `json:"dial_concurrency"`
	StartAtUnixNs   int64 `json:"start_at_unix_ns,omitempty"`
	// Spread is the storm's window.
	Spread time.Duration `json:"spread,omitempty"`
	// ExpectUnread is the unread count each unread_sync must report at least.
	ExpectUnread int           `json:"expect_unread,omitempty"`
	Timeout      time.Duration `json:"timeout"`
	ReadBuffer   int           `json:"read_buffer"`
}

// userOf returns the user id of global client index i.
func (s *workerSpec) userOf(i int) string { return userID(s.UserPrefix, i%s.Users) }

func userID(prefix string, u int) string { return prefix + strconv.Itoa(u) }

// command is what the parent sends a worker, one JSON line each.
type command struct {
	// Op is "start" (with Spec), "progress" or "finish".
	Op   string      `json:"op"`
	Spec *workerSpec `json:"spec,omitempty"`
}

// event is what a worker sends the parent, one JSON line each.
type event struct {
	// Ev is "ready" (every client connected or failed), "progress",
	// "result" (after finish; the last event) or "error".
	Ev       string         `json:"ev"`
	Worker   int            `json:"worker"`
	Err      string         `json:"err,omitempty"`
	Counters counters       `json:"counters"`
	Errors   map[string]int `json:"errors,omitempty"`
	Closes   map[string]int `json:"closes,omitempty"`
	// ElapsedNs is, in "ready", the time from start to the last client done.
	ElapsedNs int64      `json:"elapsed_ns,omitempty"`
	Connect   *Histogram `json:"connect,omitempty"`
	Sync      *Histogram `json:"sync,omitempty"`
	Latency   *Histogram `json:"latency,omitempty"`
	// LatencyByURL splits Latency by the clients' --ws URL, in order.
	LatencyByURL []*Histogram `json:"latency_by_url,omitempty"`
	// SyncBySlot splits Sync by the second of the run the client dialed in.
	SyncBySlot []*Histogram `json:"sync_by_slot,omitempty"`
}

// runWorker runs one worker: it waits for "start", connects its clients,
// then answers commands until "finish" or until cmds closes. emit must be
// safe to call from one goroutine at a time; runWorker calls it only from
// its own goroutine.
func runWorker(ctx context.Context, cmds <-chan command, emit func(event)) {
	var spec *workerSpec
	for spec == nil {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-cmds:
			if !ok {
				return
			}
			if c.Op == "start" && c.Spec != nil {
				spec = c.Spec
			}
		}
	}
	stats := newClientStats(len(spec.URLs))
	full := func(ev string) event {
		e := event{Ev: ev, Worker: spec.ID, Counters: stats.snapshot()}
		e.Errors, e.Closes = stats.errorCounts()
		return e
	}

	clients, err := buildClients(spec, stats)
	if err != nil {
		emit(event{Ev: "error", Worker: spec.ID, Err: err.Error()})
		return
	}
	started := time.Now()
	connectAll(ctx, spec, clients)
	ready := full("ready")
	ready.ElapsedNs = int64(time.Since(started))
	ready.Connect, ready.Sync, ready.SyncBySlot = stats.connect, stats.sync, stats.slots()
	emit(ready)

	defer closeAll(clients)
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-cmds:
			if !ok {
				return
			}
			switch c.Op {
			case "progress":
				emit(full("progress"))
			case "finish":
				closeAll(clients)
				res := full("result")
				res.Latency, res.LatencyByURL = stats.latency, stats.latencyByURL
				emit(res)
				return
			}
		}
	}
}

// buildClients makes the worker's clients with their tokens.
func buildClients(spec *workerSpec, stats *clientStats) ([]*client, error) {
	if spec.Workers < 1 || spec.ID < 0 || spec.ID >= spec.Workers || spec.Users < 1 || len(spec.URLs) == 0 {
		return nil, fmt.Errorf("load worker: invalid spec (id %d of %d, %d users, %d urls)",
			spec.ID, spec.Workers, spec.Users, len(spec.URLs))
	}
	issuer := auth.NewHS256Issuer(spec.Secret)
	var clients []*client
	for i := spec.ID; i < spec.Conns; i += spec.Workers {
		user := spec.userOf(i)
		tok, _, err := issuer.Issue(user, spec.TokenTTL)
		if err != nil {
			return nil, fmt.Errorf("load worker: issue token: %w", err)
		}
		cs := clientSpec{
			index:   i,
			user:    user,
			url:     spec.URLs[i%len(spec.URLs)],
			urlIdx:  i % len(spec.URLs),
			token:   tok,
			unread:  spec.ExpectUnread,
			timeout: spec.Timeout,
			readBuf: spec.ReadBuffer,
		}
		if len(spec.Sources) > 0 {
			cs.source = spec.Sources[(i/len(spec.URLs))%len(spec.Sources)]
		}
		clients = append(clients, &client{spec: cs, stats: stats})
	}
	return clients, nil
}

// connectAll connects every client by the spec's mode and returns when each
// is synced or has failed.
func connectAll(ctx context.Context, spec *workerSpec, clients []*client) {
	var wg sync.WaitGroup
	switch spec.Mode {
	case modeStorm:
		start := time.Unix(0, spec.StartAtUnixNs)
		for _, c := range clients {
			offset := time.Duration(int64(spec.Spread) * int64(c.spec.index) / int64(max(spec.Conns, 1)))
			due := start.Add(offset)
			c.spec.slot = int(offset / time.Second)
			wg.Add(1)
			go func() {
				defer wg.Done()
				t := time.NewTimer(time.Until(due))
				defer t.Stop()
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				c.connect()
			}()
		}
	default:
		started := time.Now()
		sem := make(chan struct{}, max(spec.DialConcurrency, 1))
		for _, c := range clients {
			select {
			case <-ctx.Done():
			case sem <- struct{}{}:
			}
			if ctx.Err() != nil {
				break
			}
			c.spec.slot = int(time.Since(started) / time.Second)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c.connect()
			}()
		}
	}
	wg.Wait()
}

// closeAll closes the clients, many at a time; it is idempotent.
func closeAll(clients []*client) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256)
	for _, c := range clients {
		if c.conn == nil || c.closing.Load() {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.close()
		}()
	}
	wg.Wait()
}

// workerMain is the child process side: commands on stdin, events on stdout.
func workerMain(stdin io.Reader, stdout io.Writer) int {
	if _, err := raiseNoFile(); err != nil {
		fmt.Fprintln(os.Stderr, "load worker:", err)
	}
	cmds := make(chan command)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var c command
			if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
				fmt.Fprintln(os.Stderr, "load worker: bad command:", err)
				continue
			}
			select {
			case cmds <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	enc := json.NewEncoder(stdout)
	failed := false
	runWorker(ctx, cmds, func(e event) {
		if e.Ev == "error" {
			failed = true
		}
		if err := enc.Encode(e); err != nil {
			fmt.Fprintln(os.Stderr, "load worker: write event:", err)
			cancel()
		}
	})
	if failed {
		return 1
	}
	return 0
}
