package bus

import (
	"fmt"
	"maps"
	"testing"
)

// TestCountLocalReusesItsBuffers: the diff sync counts every user with a
// socket here once a second, so after the first sync it allocates nothing.
func TestCountLocalReusesItsBuffers(t *testing.T) {
	sockets := make(map[string]int)
	r := &Redis{opts: RedisOptions{LocalCount: func(u string) int { return sockets[u] }}}
	r.live.init()
	for i := range 2000 {
		u := fmt.Sprint("user-", i)
		r.live.subscribed[u] = struct{}{}
		sockets[u] = i % 3 // a third of them have no socket left
	}
	var ps presenceState
	r.countLocal(&ps)
	want := make(map[string]int)
	for u, c := range sockets {
		if c > 0 {
			want[u] = c
		}
	}
	if !maps.Equal(ps.counts, want) {
		t.Fatalf("counted %d users, want %d", len(ps.counts), len(want))
	}
	if allocs := testing.AllocsPerRun(10, func() { r.countLocal(&ps) }); allocs > 0 {
		t.Fatalf("countLocal allocates %.0f times per sync, want 0", allocs)
	}
}
