package notification

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// Limits from PROTOCOL.md, in bytes unless said otherwise.
const (
	MaxUserIDLen         = 128
	MaxTypeLen           = 128
	MaxTitleLen          = 1 << 10
	MaxBodyLen           = 16 << 10
	MaxLinkLen           = 2 << 10
	MaxDataLen           = 32 << 10
	MaxIdempotencyKeyLen = 256
	// MaxBatch is the most notifications, or IDs, one call may carry.
	MaxBatch = 1000
)

// FieldError says which field of an input is invalid and why. The RPC edge
// turns it into InvalidArgument, the WebSocket edge into a bad_request frame.
type FieldError struct {
	// Field is the field's name as the caller spelt it, e.g. "title" or "ids[3]".
	Field string
	// Problem is a short lowercase description, e.g. "must not be empty".
	Problem string
}

// Error implements error.
func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// IsFieldError reports whether err is, or wraps, a *FieldError.
func IsFieldError(err error) bool {
	var fe *FieldError
	return errors.As(err, &fe)
}

// WithPrefix returns err with its field named under prefix, e.g.
// "notifications[2].title". Errors that are not field errors pass unchanged.
func WithPrefix(prefix string, err error) error {
	var fe *FieldError
	if !errors.As(err, &fe) {
		return err
	}
	return &FieldError{Field: prefix + "." + fe.Field, Problem: fe.Problem}
}

// ValidateUserID checks a user ID: 1 to MaxUserIDLen bytes of valid UTF-8.
func ValidateUserID(userID string) error {
	return checkText("user_id", userID, 1, MaxUserIDLen)
}

// ValidateID checks that id is a well-formed ULID, naming it field.
func ValidateID(field, id string) error {
	if id == "" {
		return &FieldError{Field: field, Problem: "must not be empty"}
	}
	if _, err := ulid.ParseStrict(id); err != nil {
		return &FieldError{Field: field, Problem: "is not a valid id"}
	}
	return nil
}

// ValidateIDs checks a list of 1 to MaxBatch notification IDs.
func ValidateIDs(field string, ids []string) error {
	if len(ids) == 0 {
		return &FieldError{Field: field, Problem: "must not be empty"}
	}
	if len(ids) > MaxBatch {
		return &FieldError{Field: field, Problem: fmt.Sprintf("holds %d ids, at most %d allowed", len(ids), MaxBatch)}
	}
	for i, id := range ids {
		if err := ValidateID(fmt.Sprintf("%s[%d]", field, i), id); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks a draft against the limits of PROTOCOL.md and returns a
// *FieldError naming the first invalid field.
func (d *Draft) Validate() error {
	checks := []error{
		ValidateUserID(d.UserID),
		checkText("type", d.Type, 1, MaxTypeLen),
		checkText("title", d.Title, 1, MaxTitleLen),
		checkText("body", d.Body, 0, MaxBodyLen),
		checkText("link", d.Link, 0, MaxLinkLen),
		checkText("idempotency_key", d.IdempotencyKey, 0, MaxIdempotencyKeyLen),
		ValidateData(d.Data),
	}
	for _, err := range checks {
		if err != nil {
			return err
		}
	}
	return nil
}

// ValidateData checks that data is absent or a JSON object of at most
// MaxDataLen bytes.
func ValidateData(data json.RawMessage) error {
	if len(data) == 0 {
		return nil
	}
	if len(data) > MaxDataLen {
		return &FieldError{Field: "data", Problem: fmt.Sprintf("is %d bytes, at most %d allowed", len(data), MaxDataLen)}
	}
	if !utf8.Valid(data) {
		return &FieldError{Field: "data", Problem: "is not valid UTF-8"}
	}
	// Valid JSON whose first token is '{' is an object. json.Valid checks
	// without building anything, where decoding into a map cost a map and a
	// value per key on every create.
	if !json.Valid(data) || firstToken(data) != '{' {
		return &FieldError{Field: "data", Problem: "must be a JSON object"}
	}
	return nil
}

// firstToken returns the first byte of data after JSON white space, or 0.
func firstToken(data []byte) byte {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

func checkText(field, s string, minLen, maxLen int) error {
	switch {
	case len(s) < minLen:
		return &FieldError{Field: field, Problem: "must not be empty"}
	case len(s) > maxLen:
		return &FieldError{Field: field, Problem: fmt.Sprintf("is %d bytes, at most %d allowed", len(s), maxLen)}
	case !utf8.ValidString(s):
		return &FieldError{Field: field, Problem: "is not valid UTF-8"}
	}
	return nil
}
