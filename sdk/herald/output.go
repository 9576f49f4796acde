package herald

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// tailBytes is how much of Herald's latest stderr Launch keeps to explain a
// failed start.
const tailBytes = 16 << 10

// maxReason bounds LaunchError.Reason.
const maxReason = 1 << 10

// stderrTail keeps the last lines written to it, at most max bytes. go-plugin
// writes each stderr line and its newline separately. It is safe for
// concurrent use.
type stderrTail struct {
	mu    sync.Mutex
	max   int
	cur   []byte
	lines []string
	size  int
}

func newStderrTail(maxBytes int) *stderrTail { return &stderrTail{max: maxBytes} }

// Write implements io.Writer; it never fails.
func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rest := p
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			t.cur = append(t.cur, rest[:min(len(rest), t.max-len(t.cur))]...)
			break
		}
		t.cur = append(t.cur, rest[:min(i, t.max-len(t.cur))]...)
		t.pushLocked(string(t.cur))
		t.cur = t.cur[:0]
		rest = rest[i+1:]
	}
	return len(p), nil
}

func (t *stderrTail) pushLocked(line string) {
	t.lines = append(t.lines, line)
	t.size += len(line)
	for t.size > t.max && len(t.lines) > 1 {
		t.size -= len(t.lines[0])
		t.lines = t.lines[1:]
	}
}

// reason picks what best explains an exit from the kept lines: the first
// line of a panic, else the last hclog JSON entry at error level (message
// and error), else the last line that is not JSON.
func (t *stderrTail) reason() string {
	t.mu.Lock()
	lines := append([]string(nil), t.lines...)
	if len(t.cur) > 0 {
		lines = append(lines, string(t.cur))
	}
	t.mu.Unlock()

	for _, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") {
			return clip(l)
		}
	}
	lastPlain := ""
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l == "" {
			continue
		}
		var entry map[string]any
		if json.Unmarshal([]byte(l), &entry) != nil {
			if lastPlain == "" {
				lastPlain = l
			}
			continue
		}
		if lvl, _ := entry["@level"].(string); lvl == "error" {
			msg := fmt.Sprint(entry["@message"])
			if e, ok := entry["error"]; ok {
				msg += ": " + fmt.Sprint(e)
			}
			return clip(msg)
		}
	}
	return clip(lastPlain)
}

func clip(s string) string {
	if len(s) <= maxReason {
		return s
	}
	return s[:maxReason] + "…"
}

// lineLogger logs each line written to it. It is safe for concurrent use.
type lineLogger struct {
	log func(msg string, args ...interface{})
}

// Write implements io.Writer; it never fails.
func (l *lineLogger) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line != "" {
			l.log(line)
		}
	}
	return len(p), nil
}
