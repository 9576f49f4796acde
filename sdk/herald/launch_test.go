package herald

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// script writes an executable shell script and returns its path.
func script(tb testing.TB, body string) string {
	tb.Helper()
	path := filepath.Join(shortDir(tb), "fake-herald")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o700); err != nil {
		tb.Fatal(err)
	}
	return path
}

func TestLaunchReportsWhyHeraldExited(t *testing.T) {
	cases := []struct {
		name   string
		script string
		want   string
	}{
		{"hclog error line", `echo '{"@level":"info","@message":"starting"}' >&2
echo '{"@level":"error","@message":"open store","error":"locked by pid 7"}' >&2
exit 1`, "open store: locked by pid 7"},
		{"plain message", `echo "herald: --sync-limit must be between 1 and 10000" >&2; exit 2`,
			"herald: --sync-limit must be between 1 and 10000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := script(t, tc.script)
			_, err := Launch(testCtx(t), LaunchConfig{Path: path, Logger: hclog.NewNullLogger()})
			var le *LaunchError
			if !errors.As(err, &le) {
				t.Fatalf("launch: %v, want *LaunchError", err)
			}
			if le.Reason != tc.want || le.Path != path {
				t.Fatalf("LaunchError %+v, want reason %q", le, tc.want)
			}
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "Unrecognized") ||
				strings.Contains(msg, "\n") {
				t.Fatalf("message %q", msg)
			}
		})
	}
}

func TestLaunchEnvWinsOverHost(t *testing.T) {
	t.Setenv("HERALD_E2E_PROBE", "from-host")
	path := script(t, `echo "{\"@level\":\"error\",\"@message\":\"probe=$HERALD_E2E_PROBE\"}" >&2; exit 1`)
	_, err := Launch(testCtx(t), LaunchConfig{
		Path: path, Env: []string{"HERALD_E2E_PROBE=from-config"}, Logger: hclog.NewNullLogger(),
	})
	var le *LaunchError
	if !errors.As(err, &le) || le.Reason != "probe=from-config" {
		t.Fatalf("launch: %v; want the child to see LaunchConfig.Env", err)
	}
}

// TestLaunchContextBoundsStart: a child that never shakes hands is killed
// when Launch's context ends, long before the start timeout.
func TestLaunchContextBoundsStart(t *testing.T) {
	pidFile := filepath.Join(shortDir(t), "pid")
	path := script(t, `echo $$ > `+strconv.Quote(pidFile)+`; exec sleep 300`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	result := make(chan error, 1)
	go func() {
		_, err := Launch(ctx, LaunchConfig{Path: path, Logger: hclog.NewNullLogger(), StartTimeout: 5 * time.Minute})
		result <- err
	}()

	var pid int
	waitFor(t, "the child writes its pid", func() bool {
		raw, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(raw)))
		return err == nil
	})
	cancel()
	select {
	case err := <-result:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("launch: %v, want context.Canceled", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Launch did not return when its context ended")
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("the child (pid %d) still runs: %v", pid, err)
	}
}
