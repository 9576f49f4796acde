package cli

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/heraldhq/herald/plugin"
	"github.com/heraldhq/herald/sidecar/config"
	"github.com/heraldhq/herald/sidecar/daemon"
)

// pluginShutdownBudget keeps cleanup inside go-plugin's 2-second kill window.
const pluginShutdownBudget = 1500 * time.Millisecond

// parentPollInterval is how often a plugin-mode Herald checks that the host
// that launched it is still alive.
const parentPollInterval = 500 * time.Millisecond

func serveCommand(io ioPair) *ffcli.Command {
	cfg := config.Default()
	fs := flag.NewFlagSet("herald serve", flag.ContinueOnError)
	config.RegisterServeFlags(fs, &cfg)
	return &ffcli.Command{
		Name:       "serve",
		ShortUsage: "herald serve [flags]",
		ShortHelp:  "run Herald: gRPC on a Unix socket, WebSocket on --http-addr",
		LongHelp: strings.TrimSpace(`
Runs Herald. Without flags it keeps its data in ./herald-data, serves gRPC on
./herald-data/herald.sock and WebSockets on http://127.0.0.1:8787/ws, as a
single instance. Set --redis-url to join other replicas.

Launched by a host through the Go SDK (go-plugin), it serves gRPC to that host
instead of the socket and exits when the host goes away.`),
		FlagSet: fs,
		Exec: func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("serve takes no arguments, got %q", args)
			}
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			if plugin.InPluginMode() {
				return servePlugin(ctx, cfg, io)
			}
			return serveSidecar(ctx, cfg, io)
		},
	}
}

// newLogger writes to stderr; never to stdout, which carries the plugin handshake.
func newLogger(cfg config.Config, io ioPair, json bool) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "herald",
		Level:      hclog.LevelFromString(cfg.LogLevel),
		JSONFormat: json,
		Output:     io.err,
	})
}

func serveSidecar(ctx context.Context, cfg config.Config, io ioPair) error {
	logger := newLogger(cfg, io, cfg.LogFormat == "json")
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	d, err := daemon.New(ctx, cfg, daemon.SidecarMode, logger)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// servePlugin serves the RPC through go-plugin to the host that launched us.
// It stops when the host shuts the plugin down, when the host dies (its PID
// is no longer our parent), or on SIGTERM, and cleans up within the host's
// kill window.
func servePlugin(ctx context.Context, cfg config.Config, io ioPair) error {
	// When the host dies, our stderr is a pipe nobody reads: Go would kill
	// the process with SIGPIPE on the next log line, before any cleanup
	// (sockets left open, go-plugin's socket file left behind). With SIGPIPE
	// routed to a channel, such writes fail with EPIPE instead.
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE)

	// go-plugin re-logs the plugin's stderr when it is hclog JSON.
	logger := newLogger(cfg, io, true)
	cfg.ShutdownTimeout = min(cfg.ShutdownTimeout, pluginShutdownBudget)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM)
	defer stop()

	d, err := daemon.New(ctx, cfg, daemon.PluginMode, logger)
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	runDone := make(chan error, 1)
	go func() { runDone <- d.Run(runCtx) }()

	// Serve stops with runCtx too, so its socket file is removed however we stop.
	served := make(chan struct{})
	go func() {
		if err := plugin.Serve(plugin.ServeOptions{Impl: d.Service(), Logger: logger, Context: runCtx}); err != nil {
			logger.Error("plugin serve", "error", err)
		}
		close(served)
	}()

	select {
	case <-served:
		logger.Debug("host shut the plugin down")
	case <-watchParent(runCtx, logger):
	case <-runCtx.Done():
	case err := <-runDone: // the daemon failed; put it back for the return below
		runDone <- err
	}
	cancel()
	<-served
	return <-runDone
}

// watchParent closes the returned channel when the process that launched us
// exits: on Linux an orphan is re-parented, so our parent PID changes. Without
// this an orphaned Herald would keep the store's lock, the HTTP port and its
// Redis subscriptions after its host died (field case BH-16).
func watchParent(ctx context.Context, logger hclog.Logger) <-chan struct{} {
	parent := os.Getppid()
	gone := make(chan struct{})
	go func() {
		t := time.NewTicker(parentPollInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if os.Getppid() != parent {
					logger.Warn("host process exited; stopping", "host_pid", parent)
					close(gone)
					return
				}
			}
		}
	}()
	return gone
}
