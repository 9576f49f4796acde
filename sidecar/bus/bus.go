// Package bus connects one Herald replica to the others.
//
// The in-process bus (Local) serves a single instance: there is nobody to ship
// to. The Redis bus ships the outbox to a Redis Stream and to the live Pub/Sub
// channels, subscribes to the channels of users with local sockets, tails the
// stream to catch up, and applies remote changes to the store; the store's
// commit hook then pushes them to local sockets like local changes.
package bus

import "context"

// Bus is the link between replicas. Implementations are safe for concurrent use.
type Bus interface {
	// Run does the bus's work until ctx is cancelled, then returns nil, or an
	// error if it could not start at all.
	Run(ctx context.Context) error
	// Watch tells the bus that this replica now holds a socket of userID, so
	// changes made elsewhere must reach it live. It does not block on I/O.
	Watch(userID string)
	// Unwatch tells the bus that the last socket of userID on this replica closed.
	Unwatch(userID string)
	// Kick tells the bus that new outbox records were committed. It never blocks.
	Kick()
	// Ready returns nil when the bus works, or an error saying what does not.
	Ready() error
	// Presence returns the user's live connection count per node ID, over all
	// replicas the bus can see.
	Presence(ctx context.Context, userID string) (map[string]int64, error)
}

// LocalCounter returns how many live sockets of a user this replica holds.
type LocalCounter func(userID string) int
