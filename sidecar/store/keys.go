package store

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/oklog/ulid/v2"

	"github.com/heraldhq/herald/sidecar/notification"
)

// Bucket names. They are part of the file format: never rename one.
var (
	bucketNotifications = []byte("notifications")
	bucketItems         = []byte("items")
	bucketIdempotency   = []byte("idempotency")
	bucketTombstones    = []byte("tombstones")
	bucketOutbox        = []byte("outbox")
	bucketMeta          = []byte("meta")

	allBuckets = [][]byte{
		bucketNotifications, bucketItems, bucketIdempotency,
		bucketTombstones, bucketOutbox, bucketMeta,
	}
)

// Tags of the keys of the items bucket, after the user key. Their order puts
// a user's state just after the user's newest unread entry, where creates
// write, so that a create usually dirties a single page of the items bucket.
const (
	tagRead   byte = 'r'
	tagUnread byte = 'u'
	tagState  byte = 'v'
)

// Keys of the meta bucket.
var (
	metaSchema       = []byte("schema")
	metaNodeID       = []byte("node_id")
	metaCursorPrefix = "cursor/"
)

// idLen is the length of a binary ULID.
const idLen = 16

// userKey returns the length-prefixed form of a user ID, so that the keys of
// user "4" are never a prefix of the keys of user "42".
func userKey(userID string) []byte {
	k := make([]byte, 0, binary.MaxVarintLen64+len(userID)+idLen)
	return appendUserKey(k, userID)
}

func appendUserKey(dst []byte, userID string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(userID)))
	return append(dst, userID...)
}

// itemKey returns user key ‖ binary id: the key of the tombstones bucket.
func itemKey(uk []byte, id ulid.ULID) []byte {
	k := make([]byte, len(uk)+idLen)
	copy(k, uk)
	copy(k[len(uk):], id[:])
	return k
}

// entryKey returns user key ‖ tag ‖ id, a key of the items bucket.
func entryKey(uk []byte, tag byte, id ulid.ULID) []byte {
	k := make([]byte, len(uk)+1+idLen)
	copy(k, uk)
	k[len(uk)] = tag
	copy(k[len(uk)+1:], id[:])
	return k
}

// tagPrefix returns user key ‖ tag: the prefix of one kind of entry of a user.
func tagPrefix(uk []byte, tag byte) []byte {
	p := make([]byte, len(uk)+1, len(uk)+1+idLen)
	copy(p, uk)
	p[len(uk)] = tag
	return p
}

// isEntryOf reports whether k is an entry key under prefix (user key ‖ tag).
func isEntryOf(k, prefix []byte) bool {
	return len(k) == len(prefix)+idLen && bytes.HasPrefix(k, prefix)
}

// splitItemKey returns the ID at the end of an item or entry key.
func splitItemKey(k []byte) (ulid.ULID, bool) {
	var id ulid.ULID
	if len(k) < idLen {
		return id, false
	}
	copy(id[:], k[len(k)-idLen:])
	return id, true
}

// userOfKey decodes the user ID at the front of a composite key and returns
// it with the rest of the key.
func userOfKey(k []byte) (string, []byte, bool) {
	n, w := binary.Uvarint(k)
	if w <= 0 || uint64(len(k)-w) < n {
		return "", nil, false
	}
	return string(k[w : w+int(n)]), k[w+int(n):], true
}

// prefixEnd returns the smallest key greater than every key starting with
// prefix, or nil when there is none (the prefix is all 0xff).
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// parseIDs parses ids and names the first invalid one as field[i].
func parseIDs(field string, ids []string) ([]ulid.ULID, error) {
	out := make([]ulid.ULID, len(ids))
	for i, s := range ids {
		id, err := ulid.ParseStrict(s)
		if err != nil {
			return nil, &notification.FieldError{
				Field:   fmt.Sprintf("%s[%d]", field, i),
				Problem: "is not a valid id",
			}
		}
		out[i] = id
	}
	return out, nil
}

// dedupe removes repeated ids, keeping the first occurrence's order.
func dedupe(ids []ulid.ULID) []ulid.ULID {
	if len(ids) < 2 {
		return ids
	}
	seen := make(map[ulid.ULID]struct{}, len(ids))
	out := ids[:0:0]
	for _, id := range ids {
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	return out
}

func putUint64(v uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, v)
}

func getUint64(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}
