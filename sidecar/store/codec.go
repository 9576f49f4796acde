package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/heraldhq/herald/sidecar/notification"
)

// The stored form of a notification is small and binary, because every
// create encodes one and every sync decodes hundreds (JSON cost several times
// more per notification). The ID is the key, the read state lives in the
// items bucket, so the value holds:
//
//	user key     uvarint(len(user ID)) ‖ user ID
//	version byte (1)
//	created_at   varint Unix seconds ‖ uvarint nanoseconds (any year)
//	type, title, body, link, data   each uvarint length ‖ bytes
const codecVersion = 1

var errCorrupt = errors.New("store: corrupt notification record")

// encodeNotification returns the stored value of n.
func encodeNotification(n *notification.Notification) []byte {
	size := 2*binary.MaxVarintLen64 + len(n.UserID) + 1 + 5*binary.MaxVarintLen32 +
		len(n.Type) + len(n.Title) + len(n.Body) + len(n.Link) + len(n.Data)
	b := make([]byte, 0, size)
	b = appendUserKey(b, n.UserID)
	b = append(b, codecVersion)
	b = binary.AppendVarint(b, n.CreatedAt.Unix())
	b = binary.AppendUvarint(b, uint64(n.CreatedAt.Nanosecond()))
	for _, s := range [...]string{n.Type, n.Title, n.Body, n.Link} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, uint64(len(n.Data)))
	return append(b, n.Data...)
}

// bodyUserKey returns the user key at the front of a stored value, or nil.
// The slice aliases v.
func bodyUserKey(v []byte) []byte {
	n, w := binary.Uvarint(v)
	if w <= 0 || uint64(len(v)-w) < n {
		return nil
	}
	return v[:w+int(n)]
}

// decodeNotification decodes a stored value. It copies everything out of v,
// which may be memory of a bbolt transaction.
func decodeNotification(id ulid.ULID, v []byte, isRead bool) (notification.Notification, error) {
	userID, v, ok := userOfKey(v)
	if !ok || len(v) < 1 || v[0] != codecVersion {
		return notification.Notification{}, errCorrupt
	}
	v = v[1:]
	secs, w := binary.Varint(v)
	if w <= 0 {
		return notification.Notification{}, errCorrupt
	}
	v = v[w:]
	nanos, w := binary.Uvarint(v)
	if w <= 0 || nanos >= 1e9 {
		return notification.Notification{}, errCorrupt
	}
	v = v[w:]
	var fields [5][]byte
	for i := range fields {
		n, w := binary.Uvarint(v)
		if w <= 0 || uint64(len(v)-w) < n {
			return notification.Notification{}, errCorrupt
		}
		fields[i] = v[w : w+int(n)]
		v = v[w+int(n):]
	}
	if len(v) != 0 {
		return notification.Notification{}, errCorrupt
	}
	n := notification.Notification{
		ID:        id.String(),
		UserID:    userID,
		Type:      string(fields[0]),
		Title:     string(fields[1]),
		Body:      string(fields[2]),
		Link:      string(fields[3]),
		CreatedAt: time.Unix(secs, int64(nanos)).UTC(),
		IsRead:    isRead,
	}
	if len(fields[4]) > 0 {
		n.Data = json.RawMessage(append([]byte(nil), fields[4]...))
	}
	return n, nil
}
