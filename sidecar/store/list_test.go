package store

import (
	"fmt"
	"slices"
	"testing"

	"github.com/heraldhq/herald/sidecar/notification"
)

// walk pages through a user's list and returns every ID in the order seen.
func walk(t testing.TB, s *Store, q ListQuery) []string {
	t.Helper()
	var out []string
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatalf("pagination does not end")
		}
		p, err := s.List(q)
		if err != nil {
			t.Fatalf("list %+v: %v", q, err)
		}
		if len(p.Notifications) > q.Limit {
			t.Fatalf("page of %d for limit %d", len(p.Notifications), q.Limit)
		}
		for _, n := range p.Notifications {
			if q.UnreadOnly && n.IsRead {
				t.Fatalf("unread_only page holds read %s", n.ID)
			}
			out = append(out, n.ID)
		}
		if p.Next == "" {
			return out
		}
		if p.Next != p.Notifications[len(p.Notifications)-1].ID {
			t.Fatalf("next %s is not the page's last id", p.Next)
		}
		q.Before = p.Next
	}
}

func TestListPagination(t *testing.T) {
	s, _ := openTest(t, nil)
	titles := make([]string, 37)
	for i := range titles {
		titles[i] = fmt.Sprint("n", i)
	}
	all := ids(mustCreate(t, s, "u", titles...))
	// Neighbours in key order must never leak into u's pages.
	mustCreate(t, s, "u2", "other user")
	mustCreate(t, s, "t", "other user")
	newestFirst := slices.Clone(all)
	slices.Reverse(newestFirst)

	// Read every third one.
	var read []string
	for i := 0; i < len(all); i += 3 {
		read = append(read, all[i])
	}
	if _, _, err := s.MarkRead(ctxT(t), "u", read); err != nil {
		t.Fatal(err)
	}
	var unreadNewestFirst []string
	for _, id := range newestFirst {
		if !slices.Contains(read, id) {
			unreadNewestFirst = append(unreadNewestFirst, id)
		}
	}

	for _, limit := range []int{1, 2, 5, 36, 37, 100} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			if got := walk(t, s, ListQuery{UserID: "u", Limit: limit}); !slices.Equal(got, newestFirst) {
				t.Fatalf("walk returned %d ids, want all %d once, newest first", len(got), len(newestFirst))
			}
			got := walk(t, s, ListQuery{UserID: "u", Limit: limit, UnreadOnly: true})
			if !slices.Equal(got, unreadNewestFirst) {
				t.Fatalf("unread walk returned %v, want %v", got, unreadNewestFirst)
			}
		})
	}
}

func TestListBounds(t *testing.T) {
	s, _ := openTest(t, nil)
	ns := mustCreate(t, s, "u", "a", "b")
	tests := []struct {
		name    string
		q       ListQuery
		want    []string
		wantErr bool
	}{
		{name: "limit 0", q: ListQuery{UserID: "u", Limit: 0}, wantErr: true},
		{name: "limit 101", q: ListQuery{UserID: "u", Limit: 101}, wantErr: true},
		{name: "bad before", q: ListQuery{UserID: "u", Limit: 10, Before: "zzz"}, wantErr: true},
		{name: "empty user", q: ListQuery{Limit: 10}, wantErr: true},
		{name: "before the oldest", q: ListQuery{UserID: "u", Limit: 10, Before: ns[0].ID}, want: nil},
		{name: "before the newest", q: ListQuery{UserID: "u", Limit: 10, Before: ns[1].ID}, want: ids(ns[:1])},
		{name: "unknown user", q: ListQuery{UserID: "nobody", Limit: 10}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := s.List(tt.q)
			if tt.wantErr {
				if !notification.IsFieldError(err) {
					t.Fatalf("err = %v, want a field error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := ids(p.Notifications); !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			if p.Next != "" {
				t.Fatalf("next %q on a last page", p.Next)
			}
		})
	}
}
