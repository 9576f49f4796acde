package bus

import "context"

// Local is the in-process bus of a single Herald: local changes are pushed by
// the store's commit hook, and there are no other replicas.
type Local struct {
	nodeID string
	count  LocalCounter
}

var _ Bus = (*Local)(nil)

// NewLocal returns the bus of a single instance. count reports local sockets
// for Presence.
func NewLocal(nodeID string, count LocalCounter) *Local {
	return &Local{nodeID: nodeID, count: count}
}

// Run waits for ctx to end.
func (l *Local) Run(ctx context.Context) error {
	<-ctx.Done()
	return nil
}

// Watch does nothing: every change is local.
func (l *Local) Watch(string) {}

// Unwatch does nothing.
func (l *Local) Unwatch(string) {}

// Kick does nothing: a single instance keeps no outbox.
func (l *Local) Kick() {}

// Ready always returns nil.
func (l *Local) Ready() error { return nil }

// Presence returns this node's count only.
func (l *Local) Presence(_ context.Context, userID string) (map[string]int64, error) {
	n := 0
	if l.count != nil {
		n = l.count(userID)
	}
	return map[string]int64{l.nodeID: int64(n)}, nil
}
