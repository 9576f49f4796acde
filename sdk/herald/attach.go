package herald

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/heraldhq/herald/plugin"
)

// controllerShutdown is go-plugin's RPC that stops a plugin's server; go-plugin
// sends it from Kill. An attached host never sends it (see Attach).
const controllerShutdown = "/plugin.GRPCController/Shutdown"

// defaultProbeInterval is how often an attached Client checks that the
// sidecar still accepts connections, for Exited.
const defaultProbeInterval = time.Second

// AttachOption configures Attach.
type AttachOption func(*attachConfig)

type attachConfig struct {
	logger        hclog.Logger
	probeInterval time.Duration
}

// WithLogger sets the logger of go-plugin's client side. Default: none.
func WithLogger(l hclog.Logger) AttachOption {
	return func(c *attachConfig) { c.logger = l }
}

// WithProbeInterval sets how often the Client checks that the sidecar still
// accepts connections (see Client.Exited). Default 1 s.
func WithProbeInterval(d time.Duration) AttachOption {
	return func(c *attachConfig) { c.probeInterval = d }
}

// Attach connects to a `herald serve` sidecar listening on socketPath,
// through go-plugin's reattach path, and checks that it answers its health
// check within ctx. It fails with an error matching ErrUnavailable when
// nothing listens there.
//
// The sidecar is shared: Close only disconnects, and the Client never sends
// go-plugin's shutdown RPC, whatever the sidecar serves. ctx bounds Attach
// only, not the Client's life.
func Attach(ctx context.Context, socketPath string, opts ...AttachOption) (*Client, error) {
	cfg := attachConfig{logger: hclog.NewNullLogger(), probeInterval: defaultProbeInterval}
	for _, o := range opts {
		o(&cfg)
	}
	if err := ctx.Err(); err != nil {
		return nil, fromRPC("Attach", err)
	}

	// go-plugin's reattach probes with a dial that ignores ctx; probe first.
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fromRPC("Attach", ctx.Err())
		}
		return nil, &Error{
			Op:      "Attach",
			Code:    codes.Unavailable,
			Message: fmt.Sprintf("no Herald is listening on %s: %v", socketPath, err),
			cause:   err,
		}
	}
	_ = conn.Close()

	ar := &attachedRunner{path: socketPath, interval: cfg.probeInterval, stop: make(chan struct{})}
	pc := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: plugin.Handshake,
		// The reattach path does not copy VersionedPlugins into Plugins
		// (go-plugin issue #310), so set Plugins itself.
		Plugins:          plugin.PluginSet(nil),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Reattach: &goplugin.ReattachConfig{
			Protocol:        goplugin.ProtocolGRPC,
			ProtocolVersion: plugin.ProtocolVersion,
			Addr:            &net.UnixAddr{Name: socketPath, Net: "unix"},
			ReattachFunc:    func() (runner.AttachedRunner, error) { return ar, nil },
		},
		Logger:          quietStdio{cfg.logger},
		GRPCDialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(neverShutdown)},
	})
	c := &Client{pc: pc, beforeKill: ar.end}

	if c.rpc, err = dispense(pc); err != nil {
		_ = c.Close()
		return nil, &Error{Op: "Attach", Code: codes.Unavailable, Message: err.Error(), cause: err}
	}
	if err := checkHealth(ctx, pc); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// checkHealth asks the server's health service for go-plugin's service name.
func checkHealth(ctx context.Context, pc *goplugin.Client) error {
	proto, err := pc.Client()
	if err != nil {
		return fromRPC("Attach", err)
	}
	gc, ok := proto.(*goplugin.GRPCClient)
	if !ok {
		return &Error{
			Op:      "Attach",
			Code:    codes.Internal,
			Message: fmt.Sprintf("unexpected protocol client %T", proto),
		}
	}
	resp, err := grpc_health_v1.NewHealthClient(gc.Conn).Check(ctx,
		&grpc_health_v1.HealthCheckRequest{Service: goplugin.GRPCServiceName})
	if err != nil {
		return fromRPC("Attach", err)
	}
	if resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		return &Error{Op: "Attach", Code: codes.Unavailable, Message: "herald reports " + resp.GetStatus().String()}
	}
	return nil
}

// neverShutdown drops go-plugin's shutdown RPC, which go-plugin's Kill sends
// on Close: an attached host must not stop a shared sidecar, even one that
// registered go-plugin's controller.
func neverShutdown(
	ctx context.Context,
	method string,
	req, reply any,
	cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker,
	opts ...grpc.CallOption,
) error {
	if method == controllerShutdown {
		return nil
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// attachedRunner is go-plugin's handle on a sidecar the host did not start:
// Kill does nothing, and Wait ends when the Client closes or the socket
// stops accepting connections. The PID is never used: it means nothing
// across containers.
type attachedRunner struct {
	path     string
	interval time.Duration
	stop     chan struct{}
	endOnce  sync.Once
}

var _ runner.AttachedRunner = (*attachedRunner)(nil)

// end makes Wait return; called by Close before go-plugin's Kill, so that
// Kill does not wait for an exit that never comes.
func (r *attachedRunner) end() { r.endOnce.Do(func() { close(r.stop) }) }

// Wait implements runner.AttachedRunner.
func (r *attachedRunner) Wait(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if r.gone() {
				return fmt.Errorf("herald sidecar on %s went away", r.path)
			}
		}
	}
}

// gone reports whether the socket provably has no server: the file is gone
// or nobody accepts on it. A slow or full server counts as alive.
func (r *attachedRunner) gone() bool {
	conn, err := net.DialTimeout("unix", r.path, r.interval)
	if err == nil {
		_ = conn.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT)
}

// Kill implements runner.AttachedRunner; it never stops the sidecar.
func (r *attachedRunner) Kill(context.Context) error { return nil }

// ID implements runner.AttachedRunner. It must not be empty, or go-plugin's
// Kill would skip closing the connection.
func (r *attachedRunner) ID() string { return "unix:" + r.path }

// PluginToHost implements runner.AddrTranslator: the path is the same.
func (r *attachedRunner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

// HostToPlugin implements runner.AddrTranslator: the path is the same.
func (r *attachedRunner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// quietStdio drops the warnings go-plugin logs when the server has no stdio
// service, which a sidecar never has.
type quietStdio struct{ hclog.Logger }

// Named implements hclog.Logger.
func (q quietStdio) Named(name string) hclog.Logger {
	if name == "stdio" {
		return hclog.NewNullLogger()
	}
	return quietStdio{q.Logger.Named(name)}
}
