package gateway

import (
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// numShards is the number of independently locked parts of the registry.
const numShards = 64

// Errors of ConnectionManager.Add.
var (
	// errTooManyConns is returned when the user already holds the cap.
	errTooManyConns = errors.New("gateway: too many connections for the user")
	// errDraining is returned once Drain was called.
	errDraining = errors.New("gateway: shutting down")
)

// ConnectionManager maps user IDs to their live sockets on this replica. It
// is sharded by user ID with one mutex per shard. A user's sockets are kept
// in a slice that is replaced, never modified, on every change, so that
// readers take it under the lock and iterate it (and write to sockets)
// outside of it. Safe for concurrent use.
type ConnectionManager struct {
	seed       maphash.Seed
	maxPerUser int
	interest   Interest
	draining   atomic.Bool
	total      atomic.Int64
	shards     [numShards]shard
}

type shard struct {
	mu    sync.Mutex
	users map[string][]*conn
}

// newConnectionManager returns an empty manager with a per-user cap of
// maxPerUser. interest, when not nil, hears of each user's first and last
// socket.
func newConnectionManager(maxPerUser int, interest Interest) *ConnectionManager {
	m := &ConnectionManager{seed: maphash.MakeSeed(), maxPerUser: maxPerUser, interest: interest}
	for i := range m.shards {
		m.shards[i].users = make(map[string][]*conn)
	}
	return m
}

func (m *ConnectionManager) shard(userID string) *shard {
	return &m.shards[maphash.String(m.seed, userID)%numShards]
}

// Add registers c under its user. It fails with errTooManyConns when the
// user already holds the cap, and with errDraining after Drain. On the
// user's first socket it calls Interest.Watch, under the shard lock so that
// Watch and Unwatch of one user reach the bus in the order they happened.
func (m *ConnectionManager) Add(c *conn) error {
	s := m.shard(c.userID)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Checked under the lock: Drain sets the flag, then walks every shard
	// under its lock, so it sees every Add that got past this check.
	if m.draining.Load() {
		return errDraining
	}
	old := s.users[c.userID]
	if len(old) >= m.maxPerUser {
		return errTooManyConns
	}
	next := make([]*conn, len(old), len(old)+1)
	copy(next, old)
	s.users[c.userID] = append(next, c)
	m.total.Add(1)
	if len(old) == 0 && m.interest != nil {
		m.interest.Watch(c.userID)
	}
	return nil
}

// Remove unregisters c and reports whether it was registered. On the user's
// last socket it calls Interest.Unwatch under the shard lock.
func (m *ConnectionManager) Remove(c *conn) bool {
	s := m.shard(c.userID)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.users[c.userID]
	i := indexOf(old, c)
	if i < 0 {
		return false
	}
	m.total.Add(-1)
	if len(old) == 1 {
		delete(s.users, c.userID)
		if m.interest != nil {
			m.interest.Unwatch(c.userID)
		}
		return true
	}
	next := make([]*conn, 0, len(old)-1)
	next = append(next, old[:i]...)
	s.users[c.userID] = append(next, old[i+1:]...)
	return true
}

func indexOf(cs []*conn, c *conn) int {
	for i, x := range cs {
		if x == c {
			return i
		}
	}
	return -1
}

// Conns returns the user's sockets. The slice is shared and must not be
// modified; it stays valid (a snapshot) after later changes.
func (m *ConnectionManager) Conns(userID string) []*conn {
	s := m.shard(userID)
	s.mu.Lock()
	cs := s.users[userID]
	s.mu.Unlock()
	return cs
}

// Count returns how many sockets the user holds.
func (m *ConnectionManager) Count(userID string) int { return len(m.Conns(userID)) }

// Len returns the number of registered sockets.
func (m *ConnectionManager) Len() int { return int(m.total.Load()) }

// Range calls f for every registered socket, one shard at a time, outside
// the shard's lock.
func (m *ConnectionManager) Range(f func(*conn)) {
	for i := range m.shards {
		m.RangeShard(i, f)
	}
}

// RangeShard calls f for every socket of shard i, outside the shard's lock.
func (m *ConnectionManager) RangeShard(i int, f func(*conn)) {
	s := &m.shards[i]
	s.mu.Lock()
	var buf []*conn
	for _, cs := range s.users {
		buf = append(buf, cs...)
	}
	s.mu.Unlock()
	for _, c := range buf {
		f(c)
	}
}

// Drain makes every later Add fail with errDraining and returns the sockets
// registered at that moment.
func (m *ConnectionManager) Drain() []*conn {
	m.draining.Store(true)
	var all []*conn
	m.Range(func(c *conn) { all = append(all, c) })
	return all
}
