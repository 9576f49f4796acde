package herald

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"

	"github.com/heraldhq/herald/plugin"
)

// DefaultStartTimeout bounds Launch's wait for Herald's handshake when
// LaunchConfig.StartTimeout is zero.
const DefaultStartTimeout = 30 * time.Second

// LaunchConfig says how to start Herald as a child process.
type LaunchConfig struct {
	// Path is the herald binary. Required.
	Path string
	// Args are its arguments, e.g. "serve", "--data-dir", dir,
	// "--http-addr", addr.
	Args []string
	// Env is added to the host's environment for the child (KEY=value);
	// an entry here wins over the host's value of the same key.
	Env []string
	// Logger receives Herald's logs, re-levelled from its JSON log lines.
	// Default: hclog.Default().
	Logger hclog.Logger
	// StartTimeout bounds the wait for Herald's handshake; a start that
	// takes longer fails and the child is killed. Default DefaultStartTimeout.
	StartTimeout time.Duration
}

// LaunchError is the error of a Launch that did not get a working Herald.
type LaunchError struct {
	// Path is the binary launched.
	Path string
	// Reason is what Herald reported before it exited: its last error log
	// line, or the first line of a panic, or its last line of output.
	// Empty when it said nothing.
	Reason string
	// Err is go-plugin's error, e.g. "plugin exited before we could connect".
	Err error
}

// Error implements error. It leads with Herald's own words; go-plugin's
// message follows in brackets, shortened to its first line.
func (e *LaunchError) Error() string {
	what := pluginFailure(e.Err)
	if e.Reason != "" {
		return fmt.Sprintf("herald: launch %s: %s (%s)", e.Path, e.Reason, what)
	}
	return fmt.Sprintf("herald: launch %s: %s", e.Path, what)
}

// pluginFailure says in one line what go-plugin saw. go-plugin reports a
// child that exited without printing anything as an unrecognized handshake
// line followed by a page of advice about architectures, which misleads.
func pluginFailure(err error) string {
	msg, _, _ := strings.Cut(err.Error(), "\n")
	if strings.TrimSpace(msg) == "Unrecognized remote plugin message:" {
		return "herald exited before the handshake"
	}
	return msg
}

// Unwrap returns go-plugin's error.
func (e *LaunchError) Unwrap() error { return e.Err }

// Launch starts Herald as a child process through go-plugin, with mutual
// TLS (AutoMTLS) on its private socket, and returns a Client once the
// handshake is done. Herald's logs are relayed to cfg.Logger.
//
// ctx bounds the start only: if it ends before the handshake, the child is
// killed and Launch returns ctx's error. After Launch returns, the child
// lives until Close, or until it exits by itself (Herald exits when its
// host process dies). A start that fails returns a *LaunchError carrying
// what Herald reported, e.g. that another process holds its store's lock.
func Launch(ctx context.Context, cfg LaunchConfig) (*Client, error) {
	if cfg.Path == "" {
		return nil, errors.New("herald: launch: LaunchConfig.Path is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("herald: launch %s: %w", cfg.Path, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.Default()
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultStartTimeout
	}

	// killCtx outlives ctx on purpose: exec kills the child when killCtx
	// ends, which must happen only if ctx ends during the start, or after
	// Close has stopped the child.
	killCtx, kill := context.WithCancel(context.WithoutCancel(ctx))
	cmd := exec.CommandContext(killCtx, cfg.Path, cfg.Args...)
	// go-plugin appends the host environment after cmd.Env, and exec keeps
	// the last value of a key; so build the environment here, ours last.
	cmd.Env = append(os.Environ(), cfg.Env...)

	tail := newStderrTail(tailBytes)
	pc := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  plugin.Handshake,
		VersionedPlugins: plugin.VersionedPlugins(nil),
		Cmd:              cmd,
		SkipHostEnv:      true,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		StartTimeout:     cfg.StartTimeout,
		Logger:           cfg.Logger,
		Stderr:           tail,
		// Writes to os.Stdout/os.Stderr inside Herald after the handshake
		// reach the host here instead of being dropped.
		SyncStdout: &lineLogger{log: cfg.Logger.Named("stdout").Warn},
		SyncStderr: &lineLogger{log: cfg.Logger.Named("stderr").Info},
	})

	stopWatch := context.AfterFunc(ctx, kill)
	rpc, err := dispense(pc)
	if !stopWatch() {
		// ctx ended during the start: the child is being killed.
		pc.Kill()
		kill()
		return nil, fmt.Errorf("herald: launch %s: %w", cfg.Path, ctx.Err())
	}
	if err != nil {
		pc.Kill() // waits for go-plugin's readers, so the tail is complete
		kill()
		return nil, &LaunchError{Path: cfg.Path, Reason: tail.reason(), Err: err}
	}
	c := &Client{pc: pc, rpc: rpc, afterKill: kill}
	if rc := pc.ReattachConfig(); rc != nil {
		c.pid = rc.Pid
	}
	return c, nil
}
