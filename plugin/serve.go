package plugin

import (
	"context"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/heraldhq/herald/plugin/heraldv1"
)

// ErrNotPluginMode is returned by Serve when the process was not started by a
// go-plugin host (the magic cookie is missing or wrong).
var ErrNotPluginMode = errors.New("plugin: not started by a Herald host (the " +
	Handshake.MagicCookieKey + " handshake variable is missing or wrong)")

// stopGrace bounds how long Serve waits for in-flight RPCs when its context
// ends before it closes every connection. go-plugin's own stdio stream never
// ends by itself, so an unbounded graceful stop would hang.
const stopGrace = 500 * time.Millisecond

// ServeOptions configures Serve.
type ServeOptions struct {
	// Impl is the NotificationService to serve. Required.
	Impl heraldv1.NotificationServiceServer
	// Logger receives go-plugin's own logs. It must not write to stdout,
	// which carries the handshake; create it before Serve, because Serve
	// points os.Stdout and os.Stderr at go-plugin's stdio pipes while it runs.
	// Default: JSON on the process's stderr at info level.
	Logger hclog.Logger
	// Context, when set, stops serving when it ends: in-flight RPCs get up to
	// 500 ms, then every connection is closed and Serve returns. The daemon
	// cancels it on SIGTERM or when its parent process died. Nil means
	// Serve runs until the host shuts the plugin down.
	Context context.Context
	// GRPCOptions are added to the gRPC server's options (interceptors,
	// for example). go-plugin adds the AutoMTLS credentials itself.
	GRPCOptions []grpc.ServerOption
}

// InPluginMode reports whether this process was started by a go-plugin host
// with Herald's handshake, that is, whether Serve would serve.
func InPluginMode() bool {
	return os.Getenv(Handshake.MagicCookieKey) == Handshake.MagicCookieValue
}

// Serve serves the NotificationService to the go-plugin host that started
// this process: it prints the one handshake line on stdout, serves gRPC on a
// temporary Unix socket (with mutual TLS when the host asked for AutoMTLS),
// and blocks. It returns nil when the host shuts the plugin down (go-plugin's
// GRPCController.Shutdown, sent by the host's Client.Kill) or when
// opts.Context ends; the caller then has go-plugin's 2-second kill window to
// clean up and exit.
//
// It returns ErrNotPluginMode, without printing anything, when the process
// was not started by a host; see InPluginMode. Serve ignores SIGINT while it
// runs, as go-plugin does: the host decides when the plugin stops.
func Serve(opts ServeOptions) error {
	if opts.Impl == nil {
		return ErrNoImpl
	}
	if !InPluginMode() {
		return ErrNotPluginMode
	}
	logger := opts.Logger
	if logger == nil {
		logger = hclog.New(&hclog.LoggerOptions{
			Name:       "plugin",
			Level:      hclog.Info,
			Output:     os.Stderr,
			JSONFormat: true,
		})
	}

	// go-plugin points os.Stdout and os.Stderr at pipes that only drain while
	// a host streams them, and never restores them; a write after serving
	// would block once the pipe fills.
	defer func(out, errOut *os.File) {
		os.Stdout, os.Stderr = out, errOut
	}(os.Stdout, os.Stderr)

	stopper := &serverStopper{done: make(chan struct{})}
	if opts.Context != nil {
		if err := opts.Context.Err(); err != nil {
			return nil
		}
		unregister := context.AfterFunc(opts.Context, stopper.stop)
		defer func() {
			if !unregister() {
				<-stopper.done // the stop began; let it finish
			}
		}()
	}

	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: VersionedPlugins(opts.Impl),
		GRPCServer: func(base []grpc.ServerOption) *grpc.Server {
			all := append(base, serverOptions()...)
			s := grpc.NewServer(append(all, opts.GRPCOptions...)...)
			stopper.set(s)
			return s
		},
		Logger: logger,
	})
	return nil
}

// serverStopper stops the gRPC server that go-plugin creates, which Serve
// only learns of once go-plugin calls the server factory; the stop may be
// asked for before or after that.
type serverStopper struct {
	mu      sync.Mutex
	srv     *grpc.Server
	stopped bool
	// done is closed when stop has returned.
	done chan struct{}
}

func (st *serverStopper) set(s *grpc.Server) {
	st.mu.Lock()
	st.srv = s
	stopNow := st.stopped
	st.mu.Unlock()
	if stopNow {
		s.Stop()
	}
}

// stop stops the server gracefully within stopGrace, then hard. It runs once,
// on the context's AfterFunc goroutine.
func (st *serverStopper) stop() {
	defer close(st.done)
	st.mu.Lock()
	st.stopped = true
	s := st.srv
	st.mu.Unlock()
	if s == nil {
		return
	}
	graceful := make(chan struct{})
	go func() {
		defer close(graceful)
		s.GracefulStop()
	}()
	timer := time.NewTimer(stopGrace)
	defer timer.Stop()
	select {
	case <-graceful:
	case <-timer.C:
		s.Stop()
		<-graceful
	}
}
