// Command taskboard is an example host application for Herald: a small
// project-tracking board whose actions notify users. Assigning a task sends
// task.assigned to the assignee; a comment sends comment.mentioned to every
// @mentioned user in one CreateNotifications call; flagging a task blocked
// sends task.blocked to its watchers and assignee. The page shows a bell with
// the user's unread notifications, kept live by Herald's browser SDK.
//
// It reaches Herald in either of the SDK's two ways:
//
//	taskboard --herald-bin ./bin/herald            # plugin mode: launches Herald
//	taskboard --herald-socket /run/herald/herald.sock  # sidecar mode: attaches
//
// Log in is by user name only (/login?user=alice): this is a demo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/heraldhq/herald/sdk/herald"
)

// options are the command line of the taskboard.
type options struct {
	addr           string
	heraldBin      string
	heraldSocket   string
	heraldHTTPAddr string
	heraldWSURL    string
	heraldDataDir  string
	redisURL       string
	heraldArgs     multiFlag
	publicOrigin   string
	tokenTTL       time.Duration
	sdkJS          string
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("taskboard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address of the taskboard's web server")
	fs.StringVar(&o.heraldBin, "herald-bin", "", "plugin mode: the herald binary to launch")
	fs.StringVar(&o.heraldSocket, "herald-socket", "", "sidecar mode: the Unix socket of a running `herald serve`")
	fs.StringVar(&o.heraldHTTPAddr, "herald-http-addr", "127.0.0.1:8787", "plugin mode: Herald's WebSocket listener")
	fs.StringVar(&o.heraldWSURL, "herald-ws-url", "", "the WebSocket URL browsers open (default ws://<herald-http-addr>/ws)")
	fs.StringVar(&o.heraldDataDir, "herald-data-dir", "taskboard-herald-data", "plugin mode: Herald's data directory")
	fs.StringVar(&o.redisURL, "redis-url", "", "plugin mode: Redis joining this replica's Herald to the others")
	fs.Var(&o.heraldArgs, "herald-arg", "plugin mode: one more argument for `herald serve` (repeatable)")
	fs.StringVar(&o.publicOrigin, "public-origin", "", "plugin mode: the origin browsers load the taskboard from, the only one Herald accepts (default: http://127.0.0.1:PORT and http://localhost:PORT for a loopback --addr)")
	fs.DurationVar(&o.tokenTTL, "token-ttl", 5*time.Minute, "lifetime of the connect tokens given to browsers")
	fs.StringVar(&o.sdkJS, "sdk-js", "", "serve this herald.js instead of the one embedded from sdk/js (for SDK development)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if (o.heraldBin == "") == (o.heraldSocket == "") {
		return o, errors.New("give exactly one of --herald-bin (plugin mode) and --herald-socket (sidecar mode)")
	}
	if o.heraldWSURL == "" {
		o.heraldWSURL = "ws://" + o.heraldHTTPAddr + "/ws"
	}
	if o.sdkJS != "" {
		if _, err := os.Stat(o.sdkJS); err != nil {
			return o, fmt.Errorf("browser SDK: %w (--sdk-js)", err)
		}
	}
	return o, nil
}

// allowedOrigins returns the origins Herald should accept for a taskboard
// listening on addr: --public-origin, or both loopback names for a loopback
// address, or none (any origin, with a warning from Herald) otherwise.
func allowedOrigins(o options, addr net.Addr) []string {
	if o.publicOrigin != "" {
		return []string{o.publicOrigin}
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return nil
	}
	port := strconv.Itoa(tcp.Port)
	return []string{"http://127.0.0.1:" + port, "http://localhost:" + port}
}

// connectHerald launches Herald (plugin mode) or attaches to it (sidecar
// mode). origins are the browser origins a launched Herald accepts.
func connectHerald(ctx context.Context, o options, origins []string, log hclog.Logger) (*herald.Client, error) {
	if o.heraldSocket != "" {
		return herald.Attach(ctx, o.heraldSocket, herald.WithLogger(log))
	}
	args := []string{"serve", "--data-dir", o.heraldDataDir, "--http-addr", o.heraldHTTPAddr}
	if len(origins) > 0 {
		args = append(args, "--allowed-origins", strings.Join(origins, ","))
	}
	args = append(args, o.heraldArgs...) // last, so that they win
	var env []string
	if o.redisURL != "" {
		// Through the environment rather than an argument, so that a Redis
		// password does not show in ps.
		env = append(env, "HERALD_REDIS_URL="+o.redisURL)
	}
	return herald.Launch(ctx, herald.LaunchConfig{Path: o.heraldBin, Args: args, Env: env, Logger: log})
}

// run serves the taskboard until ctx ends. ready, when set, is called with
// the address the web server listens on and the Herald client.
func run(ctx context.Context, o options, stderr io.Writer, ready func(addr string, h *herald.Client)) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	heraldLog := hclog.New(&hclog.LoggerOptions{Name: "taskboard", Output: stderr, Level: hclog.Info})

	// Listen first: with --addr host:0 the port, and so the origin Herald
	// must accept, is known only now.
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	defer ln.Close()

	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	h, err := connectHerald(startCtx, o, allowedOrigins(o, ln.Addr()), heraldLog)
	cancel()
	if err != nil {
		return fmt.Errorf("connect to herald: %w", err)
	}
	defer h.Close() // in plugin mode this stops Herald

	s := &server{board: NewBoard(), herald: h, wsURL: o.heraldWSURL, tokenTTL: o.tokenTTL, sdkJS: o.sdkJS, log: log}
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	mode := "sidecar"
	if o.heraldBin != "" {
		mode = "plugin"
	}
	log.Info("taskboard listening", "addr", "http://"+ln.Addr().String(), "herald_mode", mode, "herald_ws", o.heraldWSURL)
	if ready != nil {
		ready(ln.Addr().String(), h)
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	<-serveErr
	return err
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "taskboard:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "taskboard:", err)
		os.Exit(1)
	}
}
