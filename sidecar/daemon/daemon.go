// Package daemon assembles one Herald from its parts and runs it: the store,
// the bus, the gateway, the NotificationService, the HTTP listener and, in
// sidecar mode, the gRPC listener on the Unix socket.
//
// Start-up opens everything that can fail (the store's file lock, the HTTP
// address, the socket path) before anything is served, so a bad start fails
// fast with one clear error. Shutdown runs in the reverse order of start.
package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"

	"github.com/heraldhq/herald/plugin"
	"github.com/heraldhq/herald/plugin/heraldv1"
	"github.com/heraldhq/herald/sidecar/auth"
	"github.com/heraldhq/herald/sidecar/bus"
	"github.com/heraldhq/herald/sidecar/config"
	"github.com/heraldhq/herald/sidecar/gateway"
	"github.com/heraldhq/herald/sidecar/metrics"
	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/sidecar/service"
	"github.com/heraldhq/herald/sidecar/store"
)

// Mode says how the host reaches the NotificationService.
type Mode int

const (
	// SidecarMode serves gRPC on the configured Unix socket.
	SidecarMode Mode = iota
	// PluginMode leaves gRPC to go-plugin; the caller serves Service().
	PluginMode
)

// Daemon is one running Herald. Create it with New, run it with Run.
type Daemon struct {
	cfg    config.Config
	mode   Mode
	log    hclog.Logger
	nodeID string

	store    *store.Store
	gateway  *gateway.Gateway
	bus      bus.Bus
	service  *service.Service
	registry *prometheus.Registry

	httpLn  net.Listener
	httpSrv *http.Server
	grpcLn  net.Listener
	grpcSrv *grpc.Server

	stopping atomic.Bool
}

// New builds a Herald from cfg: it validates cfg, opens the store (failing
// fast when another process holds it), binds the HTTP address and, in
// SidecarMode, the socket. Nothing is served until Run.
func New(ctx context.Context, cfg config.Config, mode Mode, logger hclog.Logger) (d *Daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	if err := config.CheckDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	built := &Daemon{cfg: cfg, mode: mode, log: logger, registry: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			err = errors.Join(err, built.closeAll())
		}
	}()
	d = built
	d.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	verifier, issuer, err := loadKeys(cfg)
	if err != nil {
		return nil, err
	}
	d.store, err = store.Open(store.Options{
		Path:       cfg.DBPath(),
		Replicated: cfg.RedisURL != "",
		OnCommit:   d.onCommit,
		Logger:     logger.Named("store"),
	})
	if err != nil {
		return nil, err
	}
	if d.nodeID, err = d.resolveNodeID(ctx); err != nil {
		return nil, err
	}
	if err := d.buildParts(verifier, issuer); err != nil {
		return nil, err
	}
	if err := d.listen(); err != nil {
		return nil, err
	}
	return d, nil
}

// buildParts creates the gateway, the bus and the service around the store.
func (d *Daemon) buildParts(verifier *auth.Verifier, issuer *auth.Issuer) error {
	m := metrics.New(d.registry)
	interest := &lateInterest{}
	gw, err := gateway.New(gateway.Options{
		NodeID:          d.nodeID,
		Heartbeat:       d.cfg.Heartbeat,
		SyncLimit:       d.cfg.SyncLimit,
		MaxConnsPerUser: d.cfg.MaxConnsPerUser,
		AllowedOrigins:  d.cfg.AllowedOrigins,
		Logger:          d.log.Named("gateway"),
		Metrics:         m,
	}, d.store, verifier, interest)
	if err != nil {
		return fmt.Errorf("gateway: %w", err)
	}
	d.gateway = gw

	if d.cfg.RedisURL == "" {
		d.bus = bus.NewLocal(d.nodeID, gw.Count)
	} else {
		rb, err := bus.NewRedis(bus.RedisOptions{
			URL:             d.cfg.RedisURL,
			NodeID:          d.nodeID,
			Namespace:       d.cfg.RedisNamespace,
			ChannelPrefix:   d.cfg.ChannelPrefix,
			StreamRetention: d.cfg.StreamRetention,
			Store:           d.store,
			LocalCount:      gw.Count,
			Logger:          d.log.Named("bus"),
			Registerer:      d.registry,
		})
		if err != nil {
			return fmt.Errorf("redis bus: %w", err)
		}
		d.bus = rb
	}
	interest.set(d.bus)

	opts := service.Options{Store: d.store, Presence: d.bus.Presence, Logger: d.log.Named("rpc")}
	if issuer != nil {
		opts.Tokens = issuer
	}
	d.service = service.New(opts)
	return nil
}

// listen binds the HTTP address and, in sidecar mode, the Unix socket.
func (d *Daemon) listen() error {
	ln, err := net.Listen("tcp", d.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on --http-addr %s: %w", d.cfg.HTTPAddr, err)
	}
	d.httpLn = ln
	d.httpSrv = &http.Server{
		Handler:           d.routes(),
		ReadHeaderTimeout: readHeaderTimeout,
		ErrorLog:          auth.RedactingLogger(d.log.Named("http")),
	}
	if d.mode != SidecarMode {
		return nil
	}
	d.grpcLn, err = plugin.ListenUnix(d.cfg.SocketPath())
	if err != nil {
		return fmt.Errorf("listen on --socket %s: %w", d.cfg.SocketPath(), err)
	}
	d.grpcSrv = plugin.NewServer(d.service)
	return nil
}

// Service returns the NotificationService, for go-plugin to serve in PluginMode.
func (d *Daemon) Service() heraldv1.NotificationServiceServer { return d.service }

// NodeID returns the replica's node ID.
func (d *Daemon) NodeID() string { return d.nodeID }

// HTTPAddr returns the bound HTTP address, useful with port 0.
func (d *Daemon) HTTPAddr() string { return d.httpLn.Addr().String() }

// Store returns the store, for tests and tools in this module.
func (d *Daemon) Store() *store.Store { return d.store }

// onCommit is the store's commit hook: push to local sockets, wake the shipper.
func (d *Daemon) onCommit(events []notification.Event) {
	if d.gateway != nil {
		d.gateway.OnCommit(events)
	}
	if d.bus != nil {
		d.bus.Kick()
	}
}

// resolveNodeID returns the configured node ID, else the one kept in the
// store, else a new random one that it keeps.
func (d *Daemon) resolveNodeID(ctx context.Context) (string, error) {
	id := d.cfg.NodeID
	if id == "" {
		id = d.store.NodeID()
	}
	if id == "" {
		var b [6]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", fmt.Errorf("generate node id: %w", err)
		}
		id = "herald-" + hex.EncodeToString(b[:])
	}
	if id != d.store.NodeID() {
		if err := d.store.SetNodeID(ctx, id); err != nil {
			return "", fmt.Errorf("store node id: %w", err)
		}
	}
	return id, nil
}

// lateInterest forwards the gateway's Watch/Unwatch to the bus, which is
// built after the gateway because it needs the gateway's counter.
type lateInterest struct{ b atomic.Pointer[bus.Bus] }

func (l *lateInterest) set(b bus.Bus) { l.b.Store(&b) }

func (l *lateInterest) Watch(userID string) {
	if b := l.b.Load(); b != nil {
		(*b).Watch(userID)
	}
}

func (l *lateInterest) Unwatch(userID string) {
	if b := l.b.Load(); b != nil {
		(*b).Unwatch(userID)
	}
}
