package herald

import (
	"strings"
	"testing"
)

func TestStderrTailReason(t *testing.T) {
	cases := []struct {
		name   string
		writes []string
		want   string
	}{
		{"nothing", nil, ""},
		{"hclog error entry wins over later plain lines", []string{
			`{"@level":"info","@message":"herald starting"}`, "\n",
			`{"@level":"error","@message":"open store","error":"store: locked by pid 42"}`, "\n",
			`{"@level":"debug","@message":"bye"}`, "\n",
		}, "open store: store: locked by pid 42"},
		{"plain line when no error entry", []string{
			`{"@level":"info","@message":"x"}` + "\n", "herald: listen on --http-addr: address in use\n",
		}, "herald: listen on --http-addr: address in use"},
		{"panic first line", []string{
			"panic: runtime error: nil map\n", "\ngoroutine 1 [running]:\n", "main.main()\n",
		}, "panic: runtime error: nil map"},
		{"partial last line", []string{"herald: bad flag --nope"}, "herald: bad flag --nope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tail := newStderrTail(1 << 10)
			for _, w := range tc.writes {
				if _, err := tail.Write([]byte(w)); err != nil {
					t.Fatal(err)
				}
			}
			if got := tail.reason(); got != tc.want {
				t.Fatalf("reason %q, want %q", got, tc.want)
			}
		})
	}
}

func TestStderrTailIsBounded(t *testing.T) {
	tail := newStderrTail(100)
	for range 1000 {
		_, _ = tail.Write([]byte(strings.Repeat("x", 30) + "\n"))
	}
	_, _ = tail.Write([]byte(strings.Repeat("y", 500)))
	if tail.size > 100+30 || len(tail.cur) > 100 {
		t.Fatalf("tail keeps %d bytes of lines and %d of the current line", tail.size, len(tail.cur))
	}
}
