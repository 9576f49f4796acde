package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/heraldhq/herald/sidecar/auth"
	"github.com/heraldhq/herald/sidecar/config"
)

const (
	readHeaderTimeout = 10 * time.Second
	// pruneEvery is how often read notifications past the retention are pruned.
	pruneEvery = time.Hour
)

// Run serves until ctx is cancelled, then shuts down gracefully within
// Config.ShutdownTimeout: new sockets are refused, open ones are flushed and
// closed with 1012, the gRPC server drains, the bus stops, the store closes.
// It returns the first serving error, or nil after a clean stop.
func (d *Daemon) Run(ctx context.Context) error {
	started := []any{"node_id", d.nodeID, "http_addr", d.HTTPAddr(), "mode", d.modeName()}
	if d.grpcLn != nil {
		started = append(started, "socket", d.cfg.SocketPath())
	}
	started = append(started, "data_dir", d.cfg.DataDir, "redis", d.cfg.RedisURL != "",
		"heartbeat", d.cfg.Heartbeat.String(), "sync_limit", d.cfg.SyncLimit)
	d.log.Info("herald started", started...)

	busCtx, stopBus := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBus()
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()

	var bg errgroup.Group
	bg.Go(func() error { return d.bus.Run(busCtx) })
	bg.Go(func() error { d.store.RunRetention(busCtx, pruneEvery, d.cfg.Retention); return nil })

	serving, sctx := errgroup.WithContext(serveCtx)
	serving.Go(func() error { return ignoreClosed(d.httpSrv.Serve(d.httpLn)) })
	if d.grpcSrv != nil {
		serving.Go(func() error { return d.grpcSrv.Serve(d.grpcLn) })
	}
	<-sctx.Done() // ctx cancelled, or a server failed

	d.log.Info("herald stopping", "node_id", d.nodeID)
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.ShutdownTimeout)
	defer cancel()
	err := d.shutdown(stopCtx)
	stopBus()
	err = errors.Join(err, serving.Wait(), bg.Wait(), d.store.Close())
	d.log.Info("herald stopped", "node_id", d.nodeID, "error", err)
	return err
}

// shutdown stops accepting and closes the sockets, in reverse order of start.
func (d *Daemon) shutdown(ctx context.Context) error {
	d.stopping.Store(true)
	var errs []error
	if err := d.gateway.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close sockets: %w", err))
	}
	if err := d.httpSrv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("stop http: %w", err))
	}
	if d.grpcSrv != nil {
		stopGRPC(ctx, d)
	}
	return errors.Join(errs...)
}

// stopGRPC drains in-flight RPCs, cutting them off when ctx ends.
func stopGRPC(ctx context.Context, d *Daemon) {
	done := make(chan struct{})
	go func() {
		d.grpcSrv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		d.grpcSrv.Stop()
		<-done
	}
}

// closeAll releases what New acquired when New fails half way.
func (d *Daemon) closeAll() error {
	var errs []error
	if d.grpcLn != nil {
		errs = append(errs, d.grpcLn.Close())
	}
	if d.httpLn != nil {
		errs = append(errs, d.httpLn.Close())
	}
	if d.store != nil {
		errs = append(errs, d.store.Close())
	}
	return errors.Join(errs...)
}

func (d *Daemon) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/ws", d.gateway)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", d.serveReady)
	mux.Handle("/metrics", promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{}))
	if d.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// Ready returns nil when the daemon can serve: not stopping (the store is
// open from New until the end of Run) and the bus working.
func (d *Daemon) Ready() error {
	if d.stopping.Load() {
		return errors.New("shutting down")
	}
	return d.bus.Ready()
}

func (d *Daemon) serveReady(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := d.Ready(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	fmt.Fprintln(w, "ready")
}

func (d *Daemon) modeName() string {
	if d.mode == PluginMode {
		return "plugin"
	}
	return "sidecar"
}

func ignoreClosed(err error) error {
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// loadKeys builds the token verifier and, for HS256, the issuer of connect
// tokens: from the public key file, the secret file, or the secret generated
// in the data directory.
func loadKeys(cfg config.Config) (*auth.Verifier, *auth.Issuer, error) {
	if cfg.JWTPublicKeyFile != "" {
		pem, err := os.ReadFile(cfg.JWTPublicKeyFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read --jwt-public-key-file: %w", err)
		}
		v, err := auth.NewPublicKeyVerifier(pem, cfg.JWTLeeway)
		if err != nil {
			return nil, nil, fmt.Errorf("--jwt-public-key-file %s: %w", cfg.JWTPublicKeyFile, err)
		}
		return v, nil, nil
	}
	var secret []byte
	var err error
	if cfg.JWTSecretFile != "" {
		secret, err = auth.LoadSecretFile(cfg.JWTSecretFile)
	} else {
		secret, err = auth.LoadOrCreateSecret(cfg.DataDir)
	}
	if err != nil {
		return nil, nil, err
	}
	return auth.NewHS256Verifier(secret, cfg.JWTLeeway), auth.NewHS256Issuer(secret), nil
}
