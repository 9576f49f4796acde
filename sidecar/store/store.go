// Package store keeps one replica's notifications in a bbolt file.
//
// # Writes
//
// All writes go through one writer goroutine that drains a bounded queue of
// requests and commits many of them in one bbolt transaction (group commit:
// one fsync for all, no timer, no fixed delay); a write call returns only
// after its transaction is durable. After each commit, and before the callers
// are answered, the writer calls Options.OnCommit with the events of that
// commit in commit order; so an event for a change is handed to the gateway
// before the host hears "ok". A request that the writer rejects (an unknown
// ID, say) changes nothing and does not fail the other requests of its batch;
// only an I/O or commit error fails a whole batch.
//
// Reads run in their own bbolt read transactions, in parallel with the writer,
// and copy everything they return out of the transaction.
//
// # Bucket layout
//
// All buckets are top level with composite keys; there is no bucket per user.
// A user key is uvarint(len(user ID)) ‖ user ID, so that the keys of user "4"
// never share a prefix with those of user "42". An ID is a 16-byte binary ULID.
//
//	notifications  ID                      → user key ‖ the notification (codec.go)
//	items          user key ‖ 'r' ‖ ID     → empty: a read notification of the user
//	               user key ‖ 'u' ‖ ID     → empty: an unread one (the unread index)
//	               user key ‖ 'v'          → unread count ‖ last event Seq (uint64 each)
//	idempotency    user key ‖ host key     → ID (its ULID time dates the key)
//	tombstones     user key ‖ ID           → Unix ms of the deletion (uint64)
//	outbox         uint64 (NextSequence)   → user key ‖ Change JSON
//	meta           "schema" → uint64, "node_id" → string, "cursor/<name>" → string
//
// Integers are big-endian. The layout is shaped by what a commit writes: a
// bbolt commit rewrites every page it touched, and with fsync the pages per
// commit set the throughput. Notifications are keyed by ID alone, so new
// ones are appended to the same few pages; the per-user part of a create is
// one entry and the user's state, which sit side by side ('u' < 'v'), so a
// create for a user usually dirties one page of items. Keying notifications
// by user ‖ ID, with the count and Seq in buckets of their own, wrote four
// pages per user per commit and was measured 2-3 times slower.
//
// # Locks
//
// The Store has one mutex, sendMu, which orders request submission against
// Close: a write call holds it for reading while it puts its request in the
// queue (waiting for room if the queue is full, which the writer makes);
// Close holds it for writing only to mark the store closed and close the
// queue. Nothing else is locked; the writer's own state is its goroutine's.
package store

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/heraldhq/herald/sidecar/notification"
)

// SchemaVersion is the version of the file format this code writes. Open
// refuses a file written with a higher version.
const SchemaVersion = 1

const initialMmapSize = 256 << 20

// Defaults of Options.
const (
	DefaultLockTimeout = 2 * time.Second
	DefaultMaxBatch    = 1000
)

// Errors returned by the store.
var (
	// ErrNotFound is returned when an id does not exist for the user.
	ErrNotFound = errors.New("store: notification not found")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("store: closed")
	// ErrLocked is returned by Open when another process holds the file's lock
	// for longer than Options.LockTimeout.
	ErrLocked = errors.New("store: database file is locked by another process")
)

// Options configures a Store. The zero value of each field means its default.
type Options struct {
	// Path is the bbolt file. Required.
	Path string
	// LockTimeout bounds the wait for the file lock held by another process.
	// Default 2s.
	LockTimeout time.Duration
	// Replicated makes every local change also write an outbox record for the
	// Redis shipper. Off for a single instance with the in-process bus.
	Replicated bool
	// MaxBatch is the most write requests one transaction commits. Default
	// 1000. A batch also stops growing at 20,000 notifications or IDs, so
	// that big calls never make a huge transaction.
	MaxBatch int
	// OnCommit, when set, receives the events of each commit in commit order,
	// called from the writer goroutine. It must not block, and must not call
	// the store's write methods or Close (they wait for the writer: a
	// deadlock); reads are fine. The slice is the callee's to keep.
	OnCommit func([]notification.Event)
	// Logger receives the store's logs. Default: a null logger.
	Logger hclog.Logger
	// Now returns the current time. Default time.Now; tests set it.
	Now func() time.Time

	// maxSize caps the file (bbolt Options.MaxSize); tests use it to make
	// commits fail.
	maxSize int
}

func (o *Options) applyDefaults() {
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Store is one replica's notification store. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	opts Options
	log  hclog.Logger

	// sendMu orders submissions against Close: a submission holds it for
	// reading while it checks closed and sends, so that once Close holds it
	// for writing no request can enter reqs and reqs can be closed.
	sendMu sync.RWMutex
	closed bool

	reqs       chan *request
	writerDone chan struct{}
	closeOnce  sync.Once
	closeErr   error
	isClosed   atomic.Bool

	nodeID      atomic.Pointer[string]
	outboxDepth atomic.Int64
	// commits and committed count transactions and the requests they
	// carried, for the benchmarks' requests-per-commit figure.
	commits, committed atomic.Int64

	// Writer goroutine only.
	entropy *ulid.MonotonicEntropy
	lastMs  uint64
}

// Open opens or creates the store file and starts its writer. It fails with
// an error wrapping ErrLocked, naming the file (and the PID holding it when
// /proc/locks tells), when another process holds it for longer than
// Options.LockTimeout. It refuses a file of a newer schema version.
func Open(opts Options) (*Store, error) {
	if opts.Path == "" {
		return nil, errors.New("open store: empty path")
	}
	opts.applyDefaults()
	db, err := bolt.Open(opts.Path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout,
		// Without NoFreelistSync every commit rewrites the whole freelist,
		// which grows with every page that deletes and prunes free: with 64k
		// free pages (a 500 KB freelist) a one-notification create took
		// 5-8 ms instead of 2-3 ms. The price is at Open, which rebuilds the
		// freelist by walking the file: about 0.2 s for 150 MB of live data.
		// The map freelist is etcd's companion choice for big freelists.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// A remap of a growing file waits for every open read transaction;
		// mapping 256 MiB of address space up front spares the writer that
		// wait until the file outgrows it. It costs no memory.
		InitialMmapSize: initialMmapSize,
		MaxSize:         opts.maxSize,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, lockedError(opts.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", opts.Path, err)
	}
	s := &Store{
		db:         db,
		opts:       opts,
		log:        opts.Logger,
		reqs:       make(chan *request, 4*opts.MaxBatch),
		writerDone: make(chan struct{}),
		entropy:    ulid.Monotonic(rand.Reader, 0),
	}
	if err := s.init(); err != nil {
		return nil, errors.Join(fmt.Errorf("open store %q: %w", opts.Path, err), db.Close())
	}
	go s.runWriter()
	s.log.Debug("store open", "path", opts.Path, "node_id", s.NodeID())
	return s, nil
}

// init creates the buckets of a new file, checks the schema of an existing
// one and loads the node ID.
func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(metaSchema)
		switch {
		case v == nil:
			if err := meta.Put(metaSchema, putUint64(SchemaVersion)); err != nil {
				return fmt.Errorf("write schema version: %w", err)
			}
		case getUint64(v) > SchemaVersion:
			return fmt.Errorf("file has schema version %d, this Herald reads up to %d: "+
				"run a newer Herald or start from a new file", getUint64(v), SchemaVersion)
		}
		id := string(meta.Get(metaNodeID))
		s.nodeID.Store(&id)
		s.outboxDepth.Store(countOutbox(tx))
		return nil
	})
}

// Close stops the writer after the queued writes are committed and closes
// the file. It is idempotent; later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.sendMu.Lock()
		s.closed = true
		close(s.reqs)
		s.sendMu.Unlock()
		<-s.writerDone
		s.isClosed.Store(true)
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close store %q: %w", s.opts.Path, err)
		}
		s.log.Debug("store closed", "path", s.opts.Path)
	})
	return s.closeErr
}

// Path returns the file the store was opened on.
func (s *Store) Path() string { return s.opts.Path }

// view runs fn in a read transaction and maps a closed database to ErrClosed.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	if s.isClosed.Load() {
		return ErrClosed
	}
	err := s.db.View(fn)
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// NodeID returns this replica's node ID kept in the metadata bucket, empty
// until SetNodeID.
func (s *Store) NodeID() string { return *s.nodeID.Load() }

// SetNodeID stores the node ID in the metadata bucket, durably. Outbox
// records written after it returns carry it as their Origin.
func (s *Store) SetNodeID(ctx context.Context, id string) error {
	err := s.submit(ctx, 1, func(w *wtx) error {
		if err := w.meta.Put(metaNodeID, []byte(id)); err != nil {
			return fmt.Errorf("put node id: %w", err)
		}
		w.afterCommit(func() { s.nodeID.Store(&id) })
		return nil
	})
	if err != nil {
		return fmt.Errorf("set node id: %w", err)
	}
	return nil
}

// Cursor returns the value stored under name in the metadata bucket, or "".
func (s *Store) Cursor(name string) (string, error) {
	var v string
	err := s.view(func(tx *bolt.Tx) error {
		v = string(tx.Bucket(bucketMeta).Get([]byte(metaCursorPrefix + name)))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read cursor %q: %w", name, err)
	}
	return v, nil
}

// SetCursor stores value under name in the metadata bucket, durably.
func (s *Store) SetCursor(ctx context.Context, name, value string) error {
	err := s.submit(ctx, 1, func(w *wtx) error { return w.putCursor(name, value) })
	if err != nil {
		return fmt.Errorf("set cursor %q: %w", name, err)
	}
	return nil
}
