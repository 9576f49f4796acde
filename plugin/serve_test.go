package plugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/heraldhq/herald/plugin/heraldv1"
)

// childEnv makes the test binary act as a plugin child (see TestMain).
const childEnv = "HERALD_PLUGIN_TEST_CHILD"

// fakeService answers UnreadCount with 42 and nothing else.
type fakeService struct {
	heraldv1.UnimplementedNotificationServiceServer
}

func (fakeService) UnreadCount(
	context.Context,
	*heraldv1.UnreadCountRequest,
) (*heraldv1.UnreadCountResponse, error) {
	return &heraldv1.UnreadCountResponse{UnreadCount: 42}, nil
}

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(runChild(mode))
	}
	os.Exit(m.Run())
}

// runChild serves fakeService in plugin mode and returns the exit code.
func runChild(mode string) int {
	logger := hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true})
	opts := ServeOptions{Impl: fakeService{}, Logger: logger}
	if mode == "sigterm" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
		defer stop()
		opts.Context = ctx
	}
	if err := Serve(opts); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		return 3
	}
	logger.Info("serve returned")
	return 0
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func launchChild(tb testing.TB, mode string, stderr io.Writer) *goplugin.Client {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode)
	c := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: VersionedPlugins(nil),
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           hclog.NewNullLogger(),
		StartTimeout:     30 * time.Second,
		Stderr:           stderr,
	})
	tb.Cleanup(c.Kill)
	return c
}

func dispense(tb testing.TB, c *goplugin.Client) heraldv1.NotificationServiceClient {
	tb.Helper()
	rpc, err := c.Client()
	if err != nil {
		tb.Fatalf("start plugin: %v", err)
	}
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		tb.Fatalf("dispense: %v", err)
	}
	return raw.(heraldv1.NotificationServiceClient)
}

func waitExited(tb testing.TB, c *goplugin.Client) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !c.Exited() {
		if time.Now().After(deadline) {
			tb.Fatal("plugin child did not exit")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeHandshakeAndShutdown(t *testing.T) {
	var stderr syncBuffer
	c := launchChild(t, "plain", &stderr)
	svc := dispense(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := svc.UnreadCount(ctx, &heraldv1.UnreadCountRequest{UserId: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetUnreadCount() != 42 {
		t.Fatalf("unread %d, want 42", resp.GetUnreadCount())
	}
	if c.Protocol() != goplugin.ProtocolGRPC {
		t.Fatalf("protocol %q", c.Protocol())
	}

	// Kill sends GRPCController.Shutdown; Serve returns and the child exits.
	c.Kill()
	waitExited(t, c)
	if !strings.Contains(stderr.String(), "serve returned") {
		t.Fatalf("Serve did not return before the child exited; stderr:\n%s", stderr.String())
	}
}

func TestServeStopsWhenContextEnds(t *testing.T) {
	var stderr syncBuffer
	c := launchChild(t, "sigterm", &stderr)
	svc := dispense(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := svc.UnreadCount(ctx, &heraldv1.UnreadCountRequest{UserId: "u1"}); err != nil {
		t.Fatal(err)
	}
	pid := c.ReattachConfig().Pid
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExited(t, c)
	c.Kill() // waits for go-plugin's stderr reader
	if !strings.Contains(stderr.String(), "serve returned") {
		t.Fatalf("Serve did not return before the child exited; stderr:\n%s", stderr.String())
	}
}

func TestServeOutsidePluginMode(t *testing.T) {
	t.Setenv(Handshake.MagicCookieKey, "")
	if InPluginMode() {
		t.Fatal("InPluginMode without the cookie")
	}
	err := Serve(ServeOptions{Impl: fakeService{}})
	if !errors.Is(err, ErrNotPluginMode) {
		t.Fatalf("Serve: %v, want ErrNotPluginMode", err)
	}
	t.Setenv(Handshake.MagicCookieKey, Handshake.MagicCookieValue)
	if !InPluginMode() {
		t.Fatal("not InPluginMode with the cookie")
	}
	if err := Serve(ServeOptions{}); !errors.Is(err, ErrNoImpl) {
		t.Fatalf("Serve without Impl: %v, want ErrNoImpl", err)
	}
}

func TestNewServerHealthAndNoController(t *testing.T) {
	path := socketPath(t)
	ln, err := ListenUnix(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(fakeService{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})

	conn, err := grpc.NewClient("unix://"+path,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	hc := grpc_health_v1.NewHealthClient(conn)
	for _, name := range []string{"", goplugin.GRPCServiceName, "herald.v1.NotificationService"} {
		resp, err := hc.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: name})
		if err != nil {
			t.Fatalf("health %q: %v", name, err)
		}
		if resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
			t.Fatalf("health %q: %v", name, resp.GetStatus())
		}
	}

	// go-plugin's Kill sends this; a shared sidecar must not obey it.
	err = conn.Invoke(ctx, "/plugin.GRPCController/Shutdown", &emptypb.Empty{}, &emptypb.Empty{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("GRPCController.Shutdown: %v, want Unimplemented", err)
	}
	resp, err := heraldv1.NewNotificationServiceClient(conn).
		UnreadCount(ctx, &heraldv1.UnreadCountRequest{UserId: "u"})
	if err != nil || resp.GetUnreadCount() != 42 {
		t.Fatalf("UnreadCount after Shutdown: %v, %v", resp, err)
	}
}
