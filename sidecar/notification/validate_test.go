package notification

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
)

func validDraft() Draft {
	return Draft{UserID: "42", Type: "task.assigned", Title: "Task 17 was assigned to you",
		Body: "Alice assigned it.", Link: "/tasks/17", Data: json.RawMessage(`{"task":17}`)}
}

func TestDraftValidate(t *testing.T) {
	tests := []struct {
		name      string
		edit      func(*Draft)
		wantField string
	}{
		{"valid", func(*Draft) {}, ""},
		{"valid without optional fields", func(d *Draft) { d.Body, d.Link, d.Data = "", "", nil }, ""},
		{"empty user", func(d *Draft) { d.UserID = "" }, "user_id"},
		{"long user", func(d *Draft) { d.UserID = strings.Repeat("u", MaxUserIDLen+1) }, "user_id"},
		{"user at limit", func(d *Draft) { d.UserID = strings.Repeat("u", MaxUserIDLen) }, ""},
		{"invalid utf-8 user", func(d *Draft) { d.UserID = "\xff" }, "user_id"},
		{"empty type", func(d *Draft) { d.Type = "" }, "type"},
		{"long type", func(d *Draft) { d.Type = strings.Repeat("t", MaxTypeLen+1) }, "type"},
		{"empty title", func(d *Draft) { d.Title = "" }, "title"},
		{"long title", func(d *Draft) { d.Title = strings.Repeat("t", MaxTitleLen+1) }, "title"},
		{"long body", func(d *Draft) { d.Body = strings.Repeat("b", MaxBodyLen+1) }, "body"},
		{"body at limit", func(d *Draft) { d.Body = strings.Repeat("b", MaxBodyLen) }, ""},
		{"long link", func(d *Draft) { d.Link = strings.Repeat("l", MaxLinkLen+1) }, "link"},
		{"data array", func(d *Draft) { d.Data = json.RawMessage(`[1,2]`) }, "data"},
		{"data null", func(d *Draft) { d.Data = json.RawMessage(`null`) }, "data"},
		{"data not json", func(d *Draft) { d.Data = json.RawMessage(`{nope`) }, "data"},
		{"data string", func(d *Draft) { d.Data = json.RawMessage(`"{}"`) }, "data"},
		{"data object then more", func(d *Draft) { d.Data = json.RawMessage(`{} {}`) }, "data"},
		{"data only white space", func(d *Draft) { d.Data = json.RawMessage(" \n") }, "data"},
		{"data object in white space", func(d *Draft) { d.Data = json.RawMessage(" \t{\"a\":[1]}\n") }, ""},
		{"data nested object", func(d *Draft) { d.Data = json.RawMessage(`{"a":{"b":null}}`) }, ""},
		{"data too big", func(d *Draft) {
			d.Data = json.RawMessage(`{"x":"` + strings.Repeat("x", MaxDataLen) + `"}`)
		}, "data"},
		{"long idempotency key", func(d *Draft) { d.IdempotencyKey = strings.Repeat("k", MaxIdempotencyKeyLen+1) }, "idempotency_key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := validDraft()
			tt.edit(&d)
			err := d.Validate()
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			fe, ok := err.(*FieldError)
			if !ok || fe.Field != tt.wantField {
				t.Fatalf("Validate() = %v, want a field error naming %s", err, tt.wantField)
			}
			if !strings.HasPrefix(err.Error(), tt.wantField+": ") {
				t.Errorf("message %q does not start with the field", err)
			}
		})
	}
}

// BenchmarkValidate is the per-create cost of checking a typical draft.
func BenchmarkValidate(b *testing.B) {
	d := validDraft()
	d.Data = json.RawMessage(`{"task_id":17,"project":"atlas","by":"alice","mentions":["bob","carol"]}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func TestValidateIDs(t *testing.T) {
	good := ulid.Make().String()
	if err := ValidateIDs("ids", []string{good}); err != nil {
		t.Fatalf("valid id refused: %v", err)
	}
	err := ValidateIDs("ids", []string{good, "not-an-id"})
	if fe, ok := err.(*FieldError); !ok || fe.Field != "ids[1]" {
		t.Fatalf("ValidateIDs = %v, want a field error naming ids[1]", err)
	}
	if err := ValidateIDs("ids", nil); err == nil {
		t.Fatal("empty ids accepted")
	}
	if err := ValidateIDs("ids", make([]string, MaxBatch+1)); err == nil {
		t.Fatal("too many ids accepted")
	}
	if got := WithPrefix("notifications[2]", &FieldError{"title", "must not be empty"}).Error(); got != "notifications[2].title: must not be empty" {
		t.Errorf("WithPrefix = %q", got)
	}
}

func FuzzDraftValidate(f *testing.F) {
	f.Add("42", "task.assigned", "title", "body", `{"a":1}`)
	f.Add("", "", "", "", "")
	f.Add("\xff", "t", "x", "", "[]")
	f.Fuzz(func(t *testing.T, user, typ, title, body, data string) {
		d := Draft{UserID: user, Type: typ, Title: title, Body: body, Data: json.RawMessage(data)}
		if err := d.Validate(); err != nil && !IsFieldError(err) {
			t.Fatalf("Validate returned a non-field error %v", err)
		}
	})
}
