package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"
)

// fleet is the set of workers holding a run's clients: one in-process worker
// when the clients fit in this process, else child processes of this same
// binary (re-executed with the hidden "worker" subcommand) that talk JSON
// lines over their stdin and stdout.
type fleet struct {
	workers []workerLink
	events  chan event
	wg      sync.WaitGroup
}

// workerLink is the parent's end of one worker.
type workerLink interface {
	send(command) error
	// stop ends the worker (closing its input) and waits for it.
	stop() error
}

// startFleet starts p.Procs workers (children when p.Procs > 1 or
// forceChildren) and sends each its share of base.
func startFleet(ctx context.Context, p plan, base workerSpec, forceChildren bool) (*fleet, error) {
	f := &fleet{events: make(chan event, 64)}
	for w := range p.Procs {
		spec := base
		spec.ID, spec.Workers, spec.Conns = w, p.Procs, p.Conns
		spec.Sources = p.Sources
		var (
			link workerLink
			err  error
		)
		if p.Procs == 1 && !forceChildren {
			link = f.startLocal(ctx)
		} else {
			link, err = f.startChild(w)
		}
		if err != nil {
			f.close()
			return nil, err
		}
		f.workers = append(f.workers, link)
		if err := link.send(command{Op: "start", Spec: &spec}); err != nil {
			f.close()
			return nil, fmt.Errorf("start worker %d: %w", w, err)
		}
	}
	return f, nil
}

// pids returns this process's pid and those of the worker processes, for
// measuring the load generator's own CPU time.
func (f *fleet) pids() []int {
	pids := []int{os.Getpid()}
	for _, w := range f.workers {
		if c, ok := w.(*childLink); ok {
			pids = append(pids, c.cmd.Process.Pid)
		}
	}
	return pids
}

// broadcast sends c to every worker.
func (f *fleet) broadcast(c command) error {
	var errs []error
	for i, w := range f.workers {
		if err := w.send(c); err != nil {
			errs = append(errs, fmt.Errorf("worker %d: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// collect waits for one event named ev from every worker, failing on an
// "error" event, a worker that went away, or the timeout.
func (f *fleet) collect(ev string, timeout time.Duration) ([]event, error) {
	got := make([]event, 0, len(f.workers))
	seen := make(map[int]bool, len(f.workers))
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for len(got) < len(f.workers) {
		select {
		case e := <-f.events:
			switch {
			case e.Ev == "error":
				return got, fmt.Errorf("worker %d: %s", e.Worker, e.Err)
			case e.Ev == ev && !seen[e.Worker]:
				seen[e.Worker] = true
				got = append(got, e)
			}
		case <-timer.C:
			return got, fmt.Errorf("%d of %d workers sent %q within %s", len(got), len(f.workers), ev, timeout)
		}
	}
	return got, nil
}

// ask broadcasts op and collects the answer ev.
func (f *fleet) ask(op, ev string, timeout time.Duration) ([]event, error) {
	if err := f.broadcast(command{Op: op}); err != nil {
		return nil, err
	}
	return f.collect(ev, timeout)
}

// close stops every worker and waits for them, dropping events nobody
// collected so that no worker blocks on its way out.
func (f *fleet) close() error {
	stopDrain := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			select {
			case <-f.events:
			case <-stopDrain:
				return
			}
		}
	}()
	var errs []error
	for _, w := range f.workers {
		errs = append(errs, w.stop())
	}
	f.wg.Wait()
	close(stopDrain)
	<-drained
	return errors.Join(errs...)
}

// localLink runs a worker on a goroutine of this process.
type localLink struct {
	cmds   chan command
	once   sync.Once
	done   chan struct{}
	cancel context.CancelFunc
}

func (f *fleet) startLocal(ctx context.Context) *localLink {
	ctx, cancel := context.WithCancel(ctx)
	l := &localLink{cmds: make(chan command, 4), done: make(chan struct{}), cancel: cancel}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(l.done)
		runWorker(ctx, l.cmds, func(e event) { f.events <- e })
	}()
	return l
}

func (l *localLink) send(c command) error {
	select {
	case l.cmds <- c:
		return nil
	case <-l.done:
		return errors.New("worker has stopped")
	}
}

func (l *localLink) stop() error {
	l.once.Do(func() { close(l.cmds) })
	// The worker closes its clients on the way out; cancel only if it hangs.
	select {
	case <-l.done:
	case <-time.After(30 * time.Second):
		l.cancel()
		<-l.done
	}
	return nil
}

// childLink is a worker in a child process.
type childLink struct {
	id    int
	cmd   *exec.Cmd
	stdin io.WriteCloser
	enc   *json.Encoder
	mu    sync.Mutex
	once  sync.Once
	done  chan struct{}
}

func (f *fleet) startChild(id int) (*childLink, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(exe, "worker")
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker process: %w", err)
	}
	l := &childLink{id: id, cmd: cmd, stdin: stdin, enc: json.NewEncoder(stdin), done: make(chan struct{})}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(l.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 256<<20)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				f.events <- event{Ev: "error", Worker: id, Err: "bad event line: " + err.Error()}
				continue
			}
			f.events <- e
		}
		if err := cmd.Wait(); err != nil {
			f.events <- event{Ev: "error", Worker: id, Err: "worker process: " + err.Error()}
		}
	}()
	return l, nil
}

func (l *childLink) send(c command) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.enc.Encode(c)
}

func (l *childLink) stop() error {
	l.once.Do(func() { l.stdin.Close() })
	select {
	case <-l.done:
		return nil
	case <-time.After(30 * time.Second):
		_ = l.cmd.Process.Kill()
		<-l.done
		return fmt.Errorf("worker %d (pid %d) did not exit within 30s; killed", l.id, l.cmd.Process.Pid)
	}
}
