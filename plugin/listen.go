package plugin

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"
)

// Errors of ListenUnix.
var (
	// ErrSocketInUse is returned when a process accepts connections on the
	// socket path: another Herald is running there.
	ErrSocketInUse = errors.New("plugin: socket is in use by a running Herald")
	// ErrNotSocket is returned when the path exists and is not a socket.
	ErrNotSocket = errors.New("plugin: path exists and is not a Unix socket")
)

// SocketMode is the permission of the sidecar's socket file: the owner and
// the group may connect (a host container shares the group, not the uid).
const SocketMode fs.FileMode = 0o660

// probeTimeout bounds the dial that tells a live socket from a stale one.
const probeTimeout = 2 * time.Second

// ListenUnix listens on the Unix socket path for sidecar mode and makes the
// socket file mode SocketMode. A stale socket file left by a Herald that died
// (nobody accepts on it) is removed and replaced. It fails with an error
// wrapping ErrSocketInUse when a dial to path succeeds, and with one wrapping
// ErrNotSocket when path is another kind of file, which it never removes.
//
// Closing the listener removes the socket file.
func ListenUnix(path string) (net.Listener, error) {
	if err := clearStaleSocket(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("plugin: listen on %q: %w", path, err)
	}
	// The file exists between bind and chmod with the umask's mode, which is
	// at least as strict as SocketMode under any usual umask (022, 002, 077).
	if err := os.Chmod(path, SocketMode); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("plugin: chmod socket %q: %w", path, err)
	}
	return ln, nil
}

// clearStaleSocket removes path when it is a socket nobody accepts on.
func clearStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("plugin: inspect socket path %q: %w", path, err)
	case fi.Mode().Type() != fs.ModeSocket:
		return fmt.Errorf("plugin: %q is %s: %w", path, kindOf(fi.Mode()), ErrNotSocket)
	}

	conn, err := net.DialTimeout("unix", path, probeTimeout)
	if err == nil {
		_ = conn.Close()
		return fmt.Errorf("plugin: %q: %w", path, ErrSocketInUse)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// Not provably stale (a permission problem, or a server too busy to
		// accept): refuse rather than steal the path of a live process.
		return fmt.Errorf("plugin: probe existing socket %q: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("plugin: remove stale socket %q: %w", path, err)
	}
	return nil
}

// kindOf names the kind of file a mode describes, for error messages.
func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m.IsRegular():
		return "a regular file"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	default:
		return "a special file"
	}
}
