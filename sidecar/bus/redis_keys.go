package bus

import (
	"fmt"
	"strconv"
	"strings"
)

// keys names everything the bus touches in Redis. Every key carries the
// namespace as a hash tag, {namespace}, so that on a Redis Cluster they all
// live in one slot: the bare-message claim script touches a claim key and the
// stream in one call, which a cluster allows only within a slot.
//
// Known limit: on a Redis Cluster the single stream, and the classic Pub/Sub that
// every node broadcasts, cap the write rate at what one shard takes. DESIGN.md
// wants sharded channels (SSUBSCRIBE) and one stream per user hash slot; that
// is not built.
type keys struct {
	stream   string // the catch-up stream of changes
	epoch    string // a random value naming the stream's incarnation
	nodes    string // sorted set: node ID → last presence refresh (unix ms)
	presence string // hash of this node: user ID → live sockets
	prefix   string // live channel prefix
	pattern  string // PSUBSCRIBE pattern matching every live channel
	ns       string
}

func newKeys(namespace, channelPrefix, nodeID string) keys {
	tag := "{" + namespace + "}"
	return keys{
		stream:   tag + ":changes",
		epoch:    tag + ":epoch",
		nodes:    tag + ":nodes",
		presence: tag + ":presence:" + nodeID,
		prefix:   channelPrefix,
		pattern:  escapeGlob(channelPrefix) + "*",
		ns:       namespace,
	}
}

// channel returns the live channel of a user.
func (k keys) channel(userID string) string { return k.prefix + userID }

// presenceOf returns the presence hash of a node.
func (k keys) presenceOf(nodeID string) string {
	return "{" + k.ns + "}:presence:" + nodeID
}

// claim returns the key that holds the ID claimed for a bare message.
func (k keys) claim(digest string) string { return "{" + k.ns + "}:bare:" + digest }

// cursorName is the store cursor that keeps the stream position.
func (k keys) cursorName() string { return "stream:" + k.ns }

// userOf returns the user of a live channel, or false if channel is not one.
func (k keys) userOf(channel string) (string, bool) {
	u, ok := strings.CutPrefix(channel, k.prefix)
	return u, ok && u != ""
}

// escapeGlob escapes the characters PSUBSCRIBE patterns give a meaning to.
func escapeGlob(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\', '^':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// streamID is a parsed Redis Stream entry ID, ms-seq.
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, error) {
	a, b, ok := strings.Cut(s, "-")
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return streamID{}, fmt.Errorf("invalid stream id %q", s)
	}
	return streamID{ms, seq}, nil
}

func (id streamID) String() string { return fmt.Sprintf("%d-%d", id.ms, id.seq) }

// less reports whether id sorts before o.
func (id streamID) less(o streamID) bool {
	return id.ms < o.ms || (id.ms == o.ms && id.seq < o.seq)
}

// cursor is the stream position kept in the store: the stream's epoch, the
// last entry handled, and that entry's ordinal (how many entries the stream
// had received up to and including it). The ordinal detects entries trimmed
// before this replica read them: XINFO STREAM's entries-added minus length
// is how many were trimmed, and Redis 7.0 does not report the newest
// trimmed ID. It is stored as "epoch/ms-seq/ordinal".
type cursor struct {
	epoch string
	id    streamID
	n     int64
}

func parseCursor(s string) (cursor, error) {
	if s == "" {
		return cursor{}, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return cursor{}, fmt.Errorf("invalid stream cursor %q", s)
	}
	sid, err := parseStreamID(parts[1])
	if err != nil {
		return cursor{}, fmt.Errorf("invalid stream cursor %q: %w", s, err)
	}
	n, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || n < 0 {
		return cursor{}, fmt.Errorf("invalid stream cursor %q: bad ordinal", s)
	}
	return cursor{epoch: parts[0], id: sid, n: n}, nil
}

func (c cursor) String() string {
	return c.epoch + "/" + c.id.String() + "/" + strconv.FormatInt(c.n, 10)
}
