package store

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/heraldhq/herald/sidecar/notification"
)

// FuzzApplyRemote decodes a remote change from JSON the way the Redis bus
// does and applies it: the store must either refuse it with a field error
// (changing nothing) or apply it; applying it again must change nothing; and
// the user's count must still match the unread index.
func FuzzApplyRemote(f *testing.F) {
	at := ulid.Timestamp(time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC))
	id := ulid.MustNew(at, ulid.DefaultEntropy()).String()
	id2 := ulid.MustNew(at, ulid.DefaultEntropy()).String()
	seeds := []string{
		`{"kind":"created","user_id":"42","notification":{"id":"` + id + `","user_id":"42","type":"t","title":"x","created_at":"2026-12-03T10:00:00.123Z","is_read":false}}`,
		`{"kind":"created","user_id":"42","notification":{"id":"` + id + `","user_id":"42","type":"t","title":"x","data":{"a":1},"created_at":"2026-12-03T10:00:00Z","is_read":true}}`,
		`{"kind":"read","user_id":"42","ids":["` + id + `"]}`,
		`{"kind":"read_all","user_id":"42","up_to":"` + id + `"}`,
		`{"kind":"read_all","user_id":"42"}`,
		`{"kind":"deleted","user_id":"42","ids":["` + id + `","` + id + `"]}`,
		`{"kind":"created","user_id":"42","notification":{"id":"` + id2 + `","user_id":"42","type":"t","title":"x","created_at":"9999-12-31T23:59:59Z"}}`,
		`{"kind":"created","user_id":"42","notification":{"id":"` + id + `","user_id":"42","type":"t","title":"x","data":[1]}}`,
		`{"kind":"nope","user_id":""}`,
		`{}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	s, _ := openTest(f, nil)
	f.Fuzz(func(t *testing.T, raw []byte) {
		var c notification.Change
		if err := json.Unmarshal(raw, &c); err != nil {
			return // the bus drops what is not JSON
		}
		ctx := context.Background()
		changed, err := s.ApplyRemote(ctx, c, "fuzz", "cursor")
		if err != nil {
			var fe *notification.FieldError
			if !errors.As(err, &fe) || changed {
				t.Fatalf("apply %s: changed=%v err=%v; want a field error and no change", raw, changed, err)
			}
			return
		}
		again, err := s.ApplyRemote(ctx, c, "fuzz", "cursor")
		if err != nil || again {
			t.Fatalf("second apply of %s: changed=%v err=%v; want no change", raw, again, err)
		}
		checkConsistent(t, s, c.UserID)
		if c.Kind == notification.KindCreated && changed {
			got, err := s.Get(c.UserID, c.Notification.ID)
			if err != nil {
				t.Fatalf("created %s not stored: %v", c.Notification.ID, err)
			}
			if !got.CreatedAt.Equal(c.Notification.CreatedAt) {
				t.Fatalf("created_at %v stored as %v", c.Notification.CreatedAt, got.CreatedAt)
			}
		}
	})
}

// FuzzDecodeNotification feeds arbitrary bytes to the stored-form decoder:
// it must not panic, and what it decodes must survive a round trip.
func FuzzDecodeNotification(f *testing.F) {
	f.Add(encodeNotification(&notification.Notification{
		UserID: "42", Type: "t", Title: "x", Body: "b", Link: "/l",
		Data: json.RawMessage(`{"a":1}`), CreatedAt: time.Unix(1700000000, 123000000),
	}))
	f.Add([]byte{})
	f.Add([]byte{2, '4', '2', codecVersion})
	f.Fuzz(func(t *testing.T, v []byte) {
		var id ulid.ULID
		n, err := decodeNotification(id, v, false)
		if err != nil {
			return
		}
		n2, err := decodeNotification(id, encodeNotification(&n), false)
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", n, err)
		}
		if !reflect.DeepEqual(n, n2) {
			t.Fatalf("round trip changed %+v into %+v", n, n2)
		}
	})
}
