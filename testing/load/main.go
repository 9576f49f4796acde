// Command load is Herald's load generator. It drives one or more running
// Heralds through their WebSocket and gRPC interfaces and reports what it
// measured, as a table or (with --json) as one JSON object:
//
//	go run ./testing/load idle   --ws URL --data-dir DIR --conns N [--server-pid PID]
//	go run ./testing/load fanout --ws URL [--ws URL2] --socket PATH --data-dir DIR --conns N --rate R --duration D
//	go run ./testing/load storm  --ws URL --socket PATH --data-dir DIR --conns N --unread M --spread T
//	go run ./testing/load create --socket PATH --callers C [--mode single|batch|both] [--batch 100]
//
// Scenarios:
//
//   - idle holds N WebSocket connections open and reports the connect rate
//     and, with --server-pid, the servers' RSS per connection.
//   - fanout creates notifications through one Herald's RPC at a fixed rate
//     for connected users (possibly on other replicas) and reports delivered,
//     lost and duplicated notifications and create-to-frame latency.
//   - storm gives N users M unread notifications each, then connects them all
//     within T seconds and reports the time from dial to unread_sync.
//   - create measures RPC create throughput with C concurrent callers.
//
// The tool raises its own open-file limit to the hard limit, splits clients
// over child processes (itself, re-executed with the hidden "worker"
// subcommand) when one process cannot hold them, spreads client sockets over
// 127.0.0.x source addresses when one address has too few ephemeral ports,
// and refuses up front a run the machine or the servers cannot hold.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	if os.Getenv(workerEnv) == "1" || (len(os.Args) > 1 && os.Args[1] == "worker") {
		os.Exit(workerMain(os.Stdin, os.Stdout))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// scenario is one subcommand.
type scenario struct {
	name   string
	help   string
	groups int
	flags  func(*flag.FlagSet, *options)
	run    func(context.Context, options) (result, error)
}

var scenarios = []scenario{
	{
		name: "idle", help: "hold N idle connections; connect rate and server RSS per connection",
		groups: needWS | needConns,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.DurationVar(&o.Settle, "settle", o.Settle, "wait after the ramp before measuring RSS")
			fs.DurationVar(&o.Hold, "hold", o.Hold, "keep the connections open this long after measuring")
		},
		run: func(ctx context.Context, o options) (result, error) { return wrap(runIdle(ctx, o)) },
	},
	{
		name: "fanout", help: "create notifications at a rate for connected users; delivery and latency",
		groups: needWS | needConns | needRPC,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.Float64Var(&o.Rate, "rate", o.Rate, "notifications created per second")
			fs.DurationVar(&o.Duration, "duration", o.Duration, "how long to create")
			fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "wait between the last connect and the first create")
			fs.DurationVar(&o.Drain, "drain", o.Drain, "most time to wait for outstanding deliveries")
			fs.IntVar(&o.Callers, "callers", o.Callers, "concurrent create callers")
			fs.IntVar(&o.Batch, "batch", 1, "notifications per create call (1: CreateNotification, more: CreateNotifications)")
		},
		run: func(ctx context.Context, o options) (result, error) { return wrap(runFanout(ctx, o)) },
	},
	{
		name: "storm", help: "N users with M unread each reconnect within T; time to unread_sync",
		groups: needWS | needConns | needRPC,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.IntVar(&o.Unread, "unread", o.Unread, "unread notifications per user before the storm")
			fs.DurationVar(&o.Spread, "spread", o.Spread, "the window the connects are spread over")
			fs.IntVar(&o.Batch, "batch", o.Batch, "notifications per CreateNotifications call in the prefill")
			fs.IntVar(&o.Callers, "callers", o.Callers, "concurrent prefill callers")
		},
		run: func(ctx context.Context, o options) (result, error) { return wrap(runStorm(ctx, o)) },
	},
	{
		name: "create", help: "RPC create throughput with C callers, single and batched",
		groups: needRPC,
		flags: func(fs *flag.FlagSet, o *options) {
			fs.IntVar(&o.Callers, "callers", 1, "concurrent callers")
			fs.DurationVar(&o.Duration, "duration", o.Duration, "how long each mode runs")
			fs.IntVar(&o.Batch, "batch", o.Batch, "notifications per CreateNotifications call")
			fs.StringVar(&o.Mode, "mode", o.Mode, "single, batch or both")
		},
		run: func(ctx context.Context, o options) (result, error) { return wrap(runCreate(ctx, o)) },
	},
}

// wrap turns a typed result into the interface without a typed nil.
func wrap[T result](r T, err error) (result, error) {
	if err != nil {
		var zero T
		if any(r) == any(zero) {
			return nil, err
		}
	}
	return r, err
}

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

// run is main without the process: it parses args, runs one scenario and
// prints its report. It returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	rep, o, err := runArgs(ctx, args, stderr)
	if rep != nil && rep.Result != nil {
		if perr := rep.print(stdout, o.JSON); perr != nil {
			fmt.Fprintln(stderr, "load:", perr)
			return 1
		}
		if o.JSONOut != "" {
			var buf bytes.Buffer
			perr := rep.print(&buf, true)
			if perr == nil {
				perr = os.WriteFile(o.JSONOut, buf.Bytes(), 0o644)
			}
			if perr != nil {
				fmt.Fprintln(stderr, "load: --json-out:", perr)
				return 1
			}
		}
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "load:", err)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "load:", err)
		return 1
	}
	return 0
}

func runArgs(ctx context.Context, args []string, stderr io.Writer) (*report, options, error) {
	var none options
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return nil, none, fmt.Errorf("%w: a scenario is required", errUsage)
		}
		return nil, none, flag.ErrHelp
	}
	var sc *scenario
	for i := range scenarios {
		if scenarios[i].name == args[0] {
			sc = &scenarios[i]
		}
	}
	if sc == nil {
		usage(stderr)
		return nil, none, fmt.Errorf("%w: unknown scenario %q", errUsage, args[0])
	}

	o := defaultOptions()
	fs := flag.NewFlagSet("load "+sc.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	registerFlags(fs, &o, sc.groups)
	sc.flags(fs, &o)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, none, err
		}
		return nil, none, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, none, fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if err := o.resolve(sc.groups); err != nil {
		return nil, o, fmt.Errorf("%w: %v", errUsage, err)
	}

	rep := &report{Scenario: sc.name, Args: args[1:], Machine: newMachine()}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return nil, o, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, o, err
		}
		defer pprof.StopCPUProfile()
	}
	res, err := sc.run(ctx, o)
	rep.Machine.LoadEnd = loadAvg()
	rep.Machine.Net = readNetCounters().sub(rep.Machine.net0)
	rep.Result = res
	return rep, o, err
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: go run ./testing/load <scenario> [flags]   (<scenario> -h for its flags)")
	fmt.Fprintln(w, "scenarios:")
	for _, s := range scenarios {
		fmt.Fprintf(w, "  %-7s %s\n", s.name, s.help)
	}
}
