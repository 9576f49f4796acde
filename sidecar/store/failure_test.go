package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/heraldhq/herald/sidecar/notification"
)

// TestCommitErrorFailsBatchAndChangesNothing fills a size-capped file until
// a commit fails, then checks that the failed call left no trace (no event,
// no count, no entry) and that the store still serves reads and small writes.
func TestCommitErrorFailsBatchAndChangesNothing(t *testing.T) {
	s, rec := openTest(t, func(o *Options) { o.maxSize = 4 << 20 })
	ctx := ctxT(t)
	big := strings.Repeat("x", notification.MaxBodyLen)

	var failed error
	for i := 0; i < 2000 && failed == nil; i++ {
		ds := make([]notification.Draft, 20)
		for j := range ds {
			ds[j] = draft("u", "big")
			ds[j].Body = big
		}
		_, failed = s.Create(ctx, ds)
	}
	if failed == nil {
		t.Fatalf("4 MiB file never filled")
	}
	if !errors.Is(failed, berrors.ErrMaxSizeReached) {
		t.Fatalf("create failed with %v, want the commit error", failed)
	}

	// The failed call emitted nothing and stored nothing.
	evs := rec.ofUser("u")
	snap, err := s.Unread("u", 1<<30)
	if err != nil {
		t.Fatalf("unread after a failed commit: %v", err)
	}
	if snap.UnreadCount != len(evs) || len(snap.Notifications) != len(evs) || snap.Seq != uint64(len(evs)) {
		t.Fatalf("after the failed commit: %d unread, %d entries, seq %d; %d events were emitted",
			snap.UnreadCount, len(snap.Notifications), snap.Seq, len(evs))
	}

	// Freeing space makes writes work again.
	if _, err := s.Delete(ctx, "u", ids(snap.Notifications[:len(snap.Notifications)/2])); err != nil {
		t.Fatalf("delete after a failed commit: %v", err)
	}
	mustCreate(t, s, "u", "small")
	checkConsistent(t, s, "u")
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	s, err := Open(Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(metaSchema, putUint64(SchemaVersion+1))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	_, err = Open(Options{Path: path})
	if err == nil || !strings.Contains(err.Error(), "schema version 2") || !strings.Contains(err.Error(), path) {
		t.Fatalf("open of a newer schema: %v", err)
	}
}

func TestOpenRejectsBadPaths(t *testing.T) {
	garbage := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"empty path", ""},
		{"not a bbolt file", garbage},
		{"missing directory", filepath.Join(t.TempDir(), "no", "such", "dir", "herald.db")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(Options{Path: tt.path})
			if err == nil {
				s.Close()
				t.Fatalf("open succeeded")
			}
			if tt.path != "" && !strings.Contains(err.Error(), tt.path) {
				t.Fatalf("error %q does not name the file", err)
			}
		})
	}
}

func TestCallsAfterClose(t *testing.T) {
	s, _ := openTest(t, nil)
	ns := mustCreate(t, s, "u", "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := map[string]error{}
	_, calls["create"] = s.Create(ctx, []notification.Draft{draft("u", "b")})
	_, _, calls["mark read"] = s.MarkRead(ctx, "u", ids(ns))
	_, calls["mark all read"] = s.MarkAllRead(ctx, "u")
	_, calls["delete"] = s.Delete(ctx, "u", ids(ns))
	_, calls["apply remote"] = s.ApplyRemote(ctx, notification.Change{Kind: notification.KindReadAll, UserID: "u"}, "", "")
	_, calls["list"] = s.List(ListQuery{UserID: "u", Limit: 1})
	_, calls["get"] = s.Get("u", ns[0].ID)
	_, calls["unread"] = s.Unread("u", 1)
	_, calls["unread count"] = s.UnreadCount("u")
	_, calls["outbox"] = s.Outbox(1)
	_, calls["outbox depth"] = s.OutboxDepth()
	calls["ack outbox"] = s.AckOutbox(ctx, []uint64{1})
	_, calls["cursor"] = s.Cursor("c")
	calls["set cursor"] = s.SetCursor(ctx, "c", "v")
	calls["set node id"] = s.SetNodeID(ctx, "n")
	_, calls["prune"] = s.Prune(ctx, ns[0].CreatedAt)
	for name, err := range calls {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after close: %v, want ErrClosed", name, err)
		}
	}
}
