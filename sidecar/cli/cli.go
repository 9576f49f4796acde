// Package cli is Herald's command line: serve, token, notify, unread, read.
// Every flag can also be set as HERALD_<FLAG> (dashes as underscores). Output
// goes to the writers the caller passes; the package never touches os.Stdout,
// which in plugin mode carries go-plugin's handshake.
package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
)

// Exit codes: 2 for bad usage, 1 for any other failure.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError marks an error as bad usage (exit code 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// Run runs the command line args (without the program name) and returns the
// process exit code. Results go to stdout, errors and logs to stderr.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	io := ioPair{out: stdout, err: stderr}
	// The flag package writes usage on --help and on a parse error; it goes
	// to this buffer, shown on stdout for --help and dropped for an error,
	// which gets one line instead.
	var usage bytes.Buffer
	root := &ffcli.Command{
		Name:       "herald",
		ShortUsage: "herald <command> [flags]",
		ShortHelp:  "notification sidecar: stores notifications and pushes them to browser tabs",
		LongHelp: strings.TrimSpace(`
Herald runs next to each replica of a web application. The application creates
notifications over gRPC on a Unix socket; Herald stores them in a bbolt file
and pushes them over WebSocket to every open tab of the user, on any replica
(through Redis when --redis-url is set).

Start it:        herald serve
Issue a token:   herald token --user 42
Notify a user:   herald notify --user 42 --type task.assigned --title "Task 17 is yours"

Every flag can also be set as an environment variable HERALD_<FLAG>,
e.g. HERALD_REDIS_URL for --redis-url.`),
		FlagSet: flag.NewFlagSet("herald", flag.ContinueOnError),
		Subcommands: []*ffcli.Command{
			serveCommand(io), tokenCommand(io), notifyCommand(io), unreadCommand(io), readCommand(io),
		},
		Exec: func(_ context.Context, args []string) error {
			if len(args) > 0 && args[0] == "help" {
				return flag.ErrHelp
			}
			if len(args) > 0 {
				return usagef("unknown command %q (see herald --help)", args[0])
			}
			return flag.ErrHelp
		},
	}
	for _, c := range append(root.Subcommands, root) {
		c.FlagSet.SetOutput(&usage)
		c.Options = append(c.Options, ff.WithEnvVarPrefix("HERALD"))
		c.UsageFunc = usageFunc
	}

	err := root.ParseAndRun(ctx, args)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		if usage.Len() == 0 {
			usage.WriteString(root.UsageFunc(root) + "\n")
		}
		if askedForHelp(args) {
			stdout.Write(usage.Bytes())
			return exitOK
		}
		stderr.Write(usage.Bytes())
		return exitUsage
	case isParseError(err):
		fmt.Fprintf(stderr, "herald: %s (see %s --help)\n", parseProblem(err), commandPath(args))
		return exitUsage
	default:
		var ue usageError
		fmt.Fprintf(stderr, "herald: %s\n", strings.TrimPrefix(err.Error(), "herald: "))
		if errors.As(err, &ue) {
			return exitUsage
		}
		return exitError
	}
}

// parseProblem shortens ff's "error parsing commandline arguments: ..." to
// what the user got wrong.
func parseProblem(err error) string {
	msg := err.Error()
	if _, rest, ok := strings.Cut(msg, "error parsing commandline arguments: "); ok {
		return rest
	}
	return msg
}

func askedForHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "help":
			return true
		}
	}
	return false
}

type ioPair struct{ out, err io.Writer }

// isParseError tells flag and ff parse failures from command failures.
func isParseError(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "error parsing commandline arguments") ||
		strings.Contains(msg, "from environment variable") ||
		strings.Contains(msg, "flag provided but not defined") ||
		strings.Contains(msg, "invalid value") ||
		strings.Contains(msg, "unknown subcommand")
}

// commandPath names the command args ran, for a pointer to its help.
func commandPath(args []string) string {
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			return "herald " + a
		}
	}
	return "herald"
}

func usageFunc(c *ffcli.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "USAGE\n  %s\n\n", c.ShortUsage)
	if c.LongHelp != "" {
		fmt.Fprintf(&b, "%s\n\n", c.LongHelp)
	} else if c.ShortHelp != "" {
		fmt.Fprintf(&b, "%s\n\n", c.ShortHelp)
	}
	if len(c.Subcommands) > 0 {
		b.WriteString("COMMANDS\n")
		for _, s := range c.Subcommands {
			fmt.Fprintf(&b, "  %-8s %s\n", s.Name, s.ShortHelp)
		}
		b.WriteString("\n")
	}
	n := 0
	c.FlagSet.VisitAll(func(*flag.Flag) { n++ })
	if n > 0 {
		b.WriteString("FLAGS (also as HERALD_<FLAG>)\n")
		c.FlagSet.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" && f.DefValue != "[]" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(&b, "  --%-22s %s%s\n", f.Name, f.Usage, def)
		})
	}
	return b.String()
}
