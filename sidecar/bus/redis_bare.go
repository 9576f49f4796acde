package bus

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/sidecar/notification"
)

// bareOriginPrefix marks the stream entry of a bare message. It is not a node
// ID, so every replica, the claiming one included, applies it from the
// stream too: a replica that crashed between claiming and applying still
// gets it.
const bareOriginPrefix = "bare:"

// claimScript claims an ID for a bare message: the first replica to run it
// stores its candidate under the message's claim key and appends the
// created change to the stream, in one atomic step; every later run, on any
// replica, returns the claimed ID and appends nothing.
//
// KEYS[1] claim key, KEYS[2] stream; ARGV[1] candidate ID, ARGV[2] claim TTL
// in ms, ARGV[3] MINID for trimming, ARGV[4] change JSON.
const claimScript = `
local claimed = redis.call('GET', KEYS[1])
if claimed then return claimed end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('XADD', KEYS[2], 'MINID', '~', ARGV[3], '*', 'c', ARGV[4])
return ARGV[1]
`

type scripts struct{ claim *redis.Script }

func newScripts() scripts { return scripts{claim: redis.NewScript(claimScript)} }

// bareMessage is a notification object another program published. id and
// user_id may be JSON strings or numbers (programs publishing their own
// database rows use integers).
type bareMessage struct {
	ID        json.RawMessage `json:"id"`
	UserID    json.RawMessage `json:"user_id"`
	Type      string          `json:"type"`
	Title     string          `json:"title"`
	Body      string          `json:"body"`
	Link      string          `json:"link"`
	Data      json.RawMessage `json:"data"`
	CreatedAt json.RawMessage `json:"created_at"`
}

// bareDraft is a validated bare message, before its ID is settled.
type bareDraft struct {
	n      notification.Notification
	ulidID bool // the publisher gave a ULID: it is the ID
	hasAt  bool // the publisher gave created_at: it is the creation time
	digest [sha256.Size]byte
}

// parseBare validates a bare message published on channel of channelUser.
// It returns the result label for herald_bare_messages_total when invalid.
func parseBare(channel, channelUser, payload string) (bareDraft, string, error) {
	if !utf8.ValidString(payload) {
		return bareDraft{}, bareInvalidUTF8, fmt.Errorf("payload is not valid UTF-8")
	}
	var m bareMessage
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			fe := &notification.FieldError{Field: te.Field, Problem: "has the wrong type"}
			return bareDraft{}, bareInvalid, fe
		}
		return bareDraft{}, bareInvalidJSON, fmt.Errorf("payload is not a JSON object: %w", err)
	}
	userID, ok := scalarText(m.UserID)
	if !ok {
		fe := &notification.FieldError{Field: "user_id", Problem: "must be a string"}
		return bareDraft{}, bareInvalid, fe
	}
	if userID == "" {
		userID = channelUser
	}
	if userID != channelUser {
		// The channel names whose notification it is; a message that names
		// another user on it is a publisher's mistake, not a redirect.
		fe := &notification.FieldError{Field: "user_id", Problem: "differs from the channel's user"}
		return bareDraft{}, bareInvalid, fe
	}
	if m.Type == "" {
		m.Type = "message"
	}
	if bytes.Equal(m.Data, []byte("null")) {
		m.Data = nil
	}
	d := notification.Draft{UserID: userID, Type: m.Type, Title: m.Title, Body: m.Body,
		Link: m.Link, Data: m.Data}
	if err := d.Validate(); err != nil {
		return bareDraft{}, bareInvalid, err
	}
	b := bareDraft{
		n: notification.Notification{UserID: userID, Type: m.Type, Title: m.Title, Body: m.Body,
			Link: m.Link, Data: m.Data},
		digest: sha256.Sum256([]byte(channel + "\n" + payload)),
	}
	// An id that is not a ULID (a row number) is the publisher's own; it
	// only makes the content, so the derived ID, distinct.
	if id, _ := scalarText(m.ID); id != "" {
		if u, err := ulid.ParseStrict(id); err == nil {
			b.n.ID, b.ulidID = u.String(), true
		}
	}
	var at time.Time
	if len(m.CreatedAt) > 0 && json.Unmarshal(m.CreatedAt, &at) == nil && !at.IsZero() {
		b.n.CreatedAt, b.hasAt = at.UTC(), true
	}
	return b, "", nil
}

// scalarText returns a JSON string's text, or a number's literal; "" for an
// absent or null value; false for anything else.
func scalarText(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	return "", false
}

// candidate returns the ID this replica proposes for a bare message: the
// publisher's ULID, else one whose time is created_at (or now) and whose
// random part comes from the message's digest.
func (b *bareDraft) candidate(now time.Time) string {
	if b.ulidID {
		return b.n.ID
	}
	at := now
	if b.hasAt {
		at = b.n.CreatedAt
	}
	return ulid.MustNew(ulid.Timestamp(at), bytes.NewReader(b.digest[16:])).String()
}

// settle fills in the agreed ID and the creation time every replica derives
// from it.
func (b *bareDraft) settle(id string) error {
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return fmt.Errorf("claimed id %q: %w", id, err)
	}
	b.n.ID = u.String()
	if !b.hasAt {
		b.n.CreatedAt = ulid.Time(u.Time()).UTC()
	}
	return nil
}

// handleBare stores a bare message. All replicas receive it through the
// pattern subscription and must agree on its ID: each proposes a candidate
// through the claim script, the first one wins, and every replica applies
// the notification under the winning ID. The winner's stream entry lets a
// replica that missed the message catch up. Identical payloads on the same
// channel within StreamRetention are one notification.
func (r *Redis) handleBare(ctx context.Context, channel, user, payload string) {
	b, result, err := parseBare(channel, user, payload)
	if err != nil {
		r.metrics.bare.WithLabelValues(result).Inc()
		r.warnDropped("bare message dropped", "user_id", user, "reason", result,
			"length", len(payload), "error", err)
		return
	}
	id, err := r.claimBare(ctx, &b)
	if err == nil {
		err = b.settle(id)
	}
	if err != nil {
		r.metrics.bare.WithLabelValues(bareError).Inc()
		r.warnDropped("bare message not stored: claiming its id failed", "user_id", user, "error", err)
		return
	}
	c := notification.Change{Kind: notification.KindCreated, Origin: bareOriginPrefix + r.opts.NodeID,
		UserID: b.n.UserID, Notification: &b.n}
	if err := r.applyRemote(ctx, "bare", c); err != nil {
		result := bareError
		if notification.IsFieldError(err) {
			result = bareInvalid // e.g. the id of another user's notification; logged there
		}
		r.metrics.bare.WithLabelValues(result).Inc()
		return
	}
	r.metrics.bare.WithLabelValues(bareAccepted).Inc()
}

// claimBare runs the claim script with this replica's candidate and returns
// the winning ID.
func (r *Redis) claimBare(ctx context.Context, b *bareDraft) (string, error) {
	proposal := *b
	if err := proposal.settle(b.candidate(time.Now())); err != nil {
		return "", err
	}
	change, err := json.Marshal(notification.Change{Kind: notification.KindCreated,
		Origin: bareOriginPrefix + r.opts.NodeID, UserID: proposal.n.UserID, Notification: &proposal.n})
	if err != nil {
		return "", fmt.Errorf("encode change: %w", err)
	}
	minID := strconv.FormatInt(time.Now().Add(-r.opts.StreamRetention).UnixMilli(), 10) + "-0"
	key := r.keys.claim(hex.EncodeToString(b.digest[:16]))
	id, err := r.scripts.claim.Run(ctx, r.client, []string{key, r.keys.stream},
		proposal.n.ID, r.opts.StreamRetention.Milliseconds(), minID, change).Text()
	if err != nil {
		return "", fmt.Errorf("claim: %w", err)
	}
	return id, nil
}
