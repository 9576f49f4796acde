package bus

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/sidecar/notification"
)

func TestClassifyURL(t *testing.T) {
	tests := []struct {
		name, url string
		kind      clientKind
		wantURL   string
		bad       bool
	}{
		{"single", "redis://localhost:6379/0", kindSingle, "redis://localhost:6379/0", false},
		{"tls", "rediss://u:p@host:6380", kindSingle, "rediss://u:p@host:6380", false},
		{"unix", "unix:///run/redis.sock", kindSingle, "unix:///run/redis.sock", false},
		{"sentinel scheme", "redis+sentinel://h:26379?master_name=m", kindSentinel,
			"redis://h:26379?master_name=m", false},
		{"sentinel by option", "redis://h:26379?master_name=m&addr=h2:26379", kindSentinel,
			"redis://h:26379?master_name=m&addr=h2:26379", false},
		{"cluster scheme", "rediss+cluster://h:7000?addr=h:7001", kindCluster,
			"rediss://h:7000?addr=h:7001", false},
		{"cluster by option", "redis://h:7000?addr=h:7001", kindCluster, "redis://h:7000?addr=h:7001", false},
		{"http", "http://h:6379", 0, "", true},
		{"unknown variant", "redis+ring://h:6379", 0, "", true},
		{"garbage", "::", 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, u, err := classifyURL(tt.url)
			if tt.bad {
				if err == nil {
					t.Fatalf("no error, got kind %v %q", kind, u)
				}
				return
			}
			if err != nil || kind != tt.kind || u != tt.wantURL {
				t.Fatalf("got %v %q %v, want %v %q", kind, u, err, tt.kind, tt.wantURL)
			}
		})
	}
}

func TestNewClientDoesNotLeakPassword(t *testing.T) {
	_, err := newClient("redis://user:s3cretpass@host:6379/notadb")
	if err == nil {
		t.Fatal("no error for a bad database")
	}
	if strings.Contains(err.Error(), "s3cretpass") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

func TestNewRedisValidation(t *testing.T) {
	_, err := NewRedis(RedisOptions{Namespace: "a{b", ShipBatch: -1})
	if !errors.Is(err, ErrInvalidOptions) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"url is required", "store is required", "node id", "namespace", "ship batch"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

func TestCursorRoundTrip(t *testing.T) {
	c := cursor{epoch: "ab12", id: streamID{1700000000000, 3}, n: 42}
	got, err := parseCursor(c.String())
	if err != nil || got != c {
		t.Fatalf("parse(%q) = %+v, %v", c.String(), got, err)
	}
	if got, err := parseCursor(""); err != nil || got != (cursor{}) {
		t.Fatalf("empty: %+v %v", got, err)
	}
	for _, bad := range []string{"x", "e/1-2", "e/1-x/3", "e/1-2/-1", "e/12/3"} {
		if _, err := parseCursor(bad); err == nil {
			t.Errorf("parseCursor(%q) accepted", bad)
		}
	}
	if !(streamID{1, 5}).less(streamID{2, 0}) || (streamID{2, 0}).less(streamID{1, 9}) ||
		!(streamID{2, 1}).less(streamID{2, 2}) {
		t.Fatal("less is wrong")
	}
}

func TestKeys(t *testing.T) {
	k := newKeys("prod", "notif*[x]:", "n1")
	if k.pattern != `notif\*\[x\]:*` {
		t.Fatalf("pattern %q", k.pattern)
	}
	if u, ok := k.userOf("notif*[x]:42"); !ok || u != "42" {
		t.Fatalf("userOf = %q %v", u, ok)
	}
	if _, ok := k.userOf("notif*[x]:"); ok {
		t.Fatal("empty user accepted")
	}
	for _, key := range []string{k.stream, k.epoch, k.nodes, k.presence, k.claim("d")} {
		if !strings.HasPrefix(key, "{prod}:") {
			t.Errorf("key %q lacks the namespace hash tag", key)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	b := newBackoff(10*time.Millisecond, 80*time.Millisecond)
	for i := range 20 {
		d := b.next()
		if d < 5*time.Millisecond || d > 80*time.Millisecond {
			t.Fatalf("step %d: %v out of bounds", i, d)
		}
	}
	b.reset()
	if d := b.next(); d > 10*time.Millisecond {
		t.Fatalf("after reset: %v", d)
	}
}

func TestIsEnvelope(t *testing.T) {
	tests := map[string]bool{
		`{"kind":"created","notification":{}}`: true,
		`{"title":"x","kind":"read"}`:          true,
		`{"title":"x"}`:                        false,
		`{"title":"x","kind":null}`:            false,
		`not json`:                             false,
	}
	for payload, want := range tests {
		if got := isEnvelope(payload); got != want {
			t.Errorf("isEnvelope(%s) = %v", payload, got)
		}
	}
}

func TestParseBare(t *testing.T) {
	tests := []struct {
		name, payload string
		result        string // "" when valid
		check         func(t *testing.T, b bareDraft)
	}{
		{"defaults", `{"title":"hi"}`, "", func(t *testing.T, b bareDraft) {
			if b.n.UserID != "1" || b.n.Type != "message" || b.ulidID || b.hasAt {
				t.Fatalf("%+v", b)
			}
		}},
		{"numbers", `{"title":"hi","user_id":1,"id":7}`, "", func(t *testing.T, b bareDraft) {
			if b.n.UserID != "1" || b.ulidID {
				t.Fatalf("%+v", b)
			}
		}},
		{"ulid", `{"title":"hi","id":"01JH7Z0000000000000000000A"}`, "", func(t *testing.T, b bareDraft) {
			if !b.ulidID || b.n.ID != "01JH7Z0000000000000000000A" {
				t.Fatalf("%+v", b)
			}
		}},
		{"null data", `{"title":"hi","data":null}`, "", func(t *testing.T, b bareDraft) {
			if b.n.Data != nil {
				t.Fatalf("data %s", b.n.Data)
			}
		}},
		{"empty", ``, bareInvalidJSON, nil},
		{"string", `"hi"`, bareInvalidJSON, nil},
		{"title number", `{"title":5}`, bareInvalid, nil},
		{"utf8", "{\"title\":\"\xc3\"}", bareInvalidUTF8, nil},
		{"no title", `{}`, bareInvalid, nil},
		{"null", `null`, bareInvalid, nil},
		{"bool user", `{"title":"x","user_id":true}`, bareInvalid, nil},
		{"long user", `{"title":"x","user_id":"` + strings.Repeat("u", 129) + `"}`, bareInvalid, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, result, err := parseBare("notifications:1", "1", tt.payload)
			if result != tt.result || (err == nil) != (tt.result == "") {
				t.Fatalf("result %q err %v, want %q", result, err, tt.result)
			}
			if tt.check != nil {
				tt.check(t, b)
			}
		})
	}
}

func TestBareCandidateIsDeterministic(t *testing.T) {
	b1, _, _ := parseBare("c", "u", `{"title":"x","created_at":"2026-05-01T00:00:00Z"}`)
	b2, _, _ := parseBare("c", "u", `{"title":"x","created_at":"2026-05-01T00:00:00Z"}`)
	b3, _, _ := parseBare("c", "u", `{"title":"y","created_at":"2026-05-01T00:00:00Z"}`)
	t1, t2 := time.Now(), time.Now().Add(time.Hour)
	if b1.candidate(t1) != b2.candidate(t2) {
		t.Fatal("same payload with created_at gave different candidates")
	}
	if b1.candidate(t1) == b3.candidate(t1) {
		t.Fatal("different payloads gave the same candidate")
	}
	if err := b1.settle(b1.candidate(t1)); err != nil || !b1.n.CreatedAt.Equal(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatalf("settle: %v %v", err, b1.n.CreatedAt)
	}
}

// FuzzParseBare: no input panics, and an accepted one is a valid notification.
func FuzzParseBare(f *testing.F) {
	for _, s := range []string{`{"title":"hi"}`, `{"title":"x","user_id":42,"id":"01JH7Z0000000000000000000A"}`,
		`{"title":"x","data":{"a":[1]},"created_at":"2026-01-01T00:00:00Z"}`, `[`, "\xff", `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		b, result, err := parseBare("notifications:u1", "u1", payload)
		if err != nil {
			if result == "" {
				t.Fatalf("error without result: %v", err)
			}
			return
		}
		if err := b.settle(b.candidate(time.Now())); err != nil {
			t.Fatalf("settle: %v", err)
		}
		d := notification.Draft{UserID: b.n.UserID, Type: b.n.Type, Title: b.n.Title, Body: b.n.Body,
			Link: b.n.Link, Data: b.n.Data}
		if err := d.Validate(); err != nil {
			t.Fatalf("accepted an invalid notification: %v", err)
		}
		_ = isEnvelope(payload)
	})
}
