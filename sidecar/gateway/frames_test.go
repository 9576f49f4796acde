package gateway

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/heraldhq/herald/sidecar/notification"
	"github.com/heraldhq/herald/sidecar/store"
)

// FuzzDecodeRequest feeds arbitrary client frames to the decoder: it never
// panics, accepts only known types with valid fields, and every refusal
// encodes to a valid error frame.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"ping"}`, `{"type":"mark_all_read"}`,
		`{"type":"mark_read","ids":["01ARZ3NDEKTSV4RRFFQ69G5FAV"]}`,
		`{"type":"mark_read","ids":[]}`, `{"type":"mark_read","ids":"x"}`,
		`{"type":"list","limit":100,"before":"01ARZ3NDEKTSV4RRFFQ69G5FAV","unread_only":true}`,
		`{"type":"list","limit":0}`, `{"type":"list","limit":1e3}`, `{"type":"list","before":7}`,
		`{"type":"` + strings.Repeat("é", 60) + `"}`, `{"type":null}`, `null`, `[]`, `"x"`, ``, `{`,
		"{\"type\":\"ping\xff\"}", `{"type":"ping","type":"list"}`, `{"TYPE":"ping"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, cerr := decodeRequest(data)
		if cerr != nil {
			frame := cerr.encode()
			var back map[string]string
			if !utf8.Valid(frame) || json.Unmarshal(frame, &back) != nil {
				t.Fatalf("error frame %q is not valid JSON", frame)
			}
			if back["type"] != frameError || back["code"] == "" || len(back["ref"]) > maxRefLen {
				t.Fatalf("bad error frame %q", frame)
			}
			return
		}
		switch req.Type {
		case reqPing, reqMarkAllRead:
		case reqMarkRead:
			if err := notification.ValidateIDs("ids", req.IDs); err != nil {
				t.Fatalf("accepted invalid ids %v", req.IDs)
			}
		case reqList:
			if req.Limit < 1 || req.Limit > maxListLimit {
				t.Fatalf("accepted limit %d", req.Limit)
			}
			if req.Before != "" && notification.ValidateID("before", req.Before) != nil {
				t.Fatalf("accepted before %q", req.Before)
			}
		default:
			t.Fatalf("accepted unknown type %q", req.Type)
		}
	})
}

func TestDecodeRequestRefs(t *testing.T) {
	long := strings.Repeat("é", 40) // 80 bytes
	_, cerr := decodeRequest([]byte(`{"type":"` + long + `"}`))
	if cerr == nil || cerr.Code != codeUnknownType || len(cerr.Ref) > maxRefLen || !utf8.ValidString(cerr.Ref) {
		t.Fatalf("long unknown type: %+v", cerr)
	}
	req, cerr := decodeRequest([]byte(`{"type":"list"}`))
	if cerr != nil || req.Limit != defaultListLimit {
		t.Fatalf("list without limit: %+v %v", req, cerr)
	}
}

func testSnapshot(n, bodyLen int) store.Snapshot {
	s := store.Snapshot{UnreadCount: n + 7, Seq: 42}
	for i := range n {
		s.Notifications = append(s.Notifications, notification.Notification{
			ID: fmt.Sprintf("%026d", i), UserID: "u", Type: "t", Title: "title",
			Body: strings.Repeat("b", bodyLen), CreatedAt: time.Unix(0, 0).UTC(),
		})
	}
	return s
}

func TestEncodeSyncCapsSize(t *testing.T) {
	tests := []struct {
		name          string
		n, body, max  int
		wantTruncated bool
	}{
		{"fits", 10, 100, 64 << 10, false},
		{"empty", 0, 0, 4 << 10, false},
		{"over the cap", 500, 1000, 256 << 10, true},
		{"one too big", 1, 10_000, 4 << 10, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := testSnapshot(tc.n, tc.body)
			frame, kept, err := encodeSync(&snap, tc.max)
			if err != nil {
				t.Fatal(err)
			}
			if len(frame) > tc.max {
				t.Fatalf("frame %d bytes over %d", len(frame), tc.max)
			}
			var s syncFrame
			if err := json.Unmarshal(frame, &s); err != nil {
				t.Fatalf("invalid JSON: %v", err)
			}
			if s.Truncated != tc.wantTruncated || s.UnreadCount != tc.n+7 || s.Seq != 42 ||
				len(s.Notifications) != kept || s.Notifications == nil {
				t.Fatalf("frame: truncated %v unread %d seq %d kept %d/%d", s.Truncated, s.UnreadCount, s.Seq,
					len(s.Notifications), kept)
			}
			// The newest are kept, oldest first.
			for i, n := range s.Notifications {
				if want := snap.Notifications[tc.n-kept+i].ID; n.ID != want {
					t.Fatalf("notification %d = %s, want %s", i, n.ID, want)
				}
			}
		})
	}
}

func TestEncodeEventFrames(t *testing.T) {
	n := &notification.Notification{ID: "01ARZ3NDEKTSV4RRFFQ69G5FAV", UserID: "u", Type: "t", Title: "x"}
	tests := []struct {
		ev   notification.Event
		want string
	}{
		{notification.Event{Kind: notification.KindCreated, Notification: n, UnreadCount: 1, Seq: 1},
			`"type":"notification","notification":{`},
		{notification.Event{Kind: notification.KindRead, IDs: []string{n.ID}, Seq: 2},
			`{"type":"read","ids":["01ARZ3NDEKTSV4RRFFQ69G5FAV"],"unread_count":0,"seq":2}`},
		{notification.Event{Kind: notification.KindReadAll, Seq: 3},
			`{"type":"read_all","unread_count":0,"seq":3}`},
		{notification.Event{Kind: notification.KindDeleted, Seq: 4, UnreadCount: 2},
			`{"type":"deleted","ids":[],"unread_count":2,"seq":4}`},
	}
	for _, tc := range tests {
		b, err := encodeEvent(&tc.ev)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), tc.want) {
			t.Errorf("%s: %s, want %s", tc.ev.Kind, b, tc.want)
		}
	}
	if _, err := encodeEvent(&notification.Event{Kind: "weird"}); err == nil {
		t.Error("unknown kind encoded")
	}
	if _, err := encodeEvent(&notification.Event{Kind: notification.KindCreated}); err == nil {
		t.Error("created without notification encoded")
	}
}
