package store

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/sidecar/notification"
)

func TestOutboxOnlyWhenReplicated(t *testing.T) {
	s, _ := openTest(t, nil)
	ns := mustCreate(t, s, "u", "a")
	if _, _, err := s.MarkRead(ctxT(t), "u", ids(ns)); err != nil {
		t.Fatal(err)
	}
	recs, err := s.Outbox(10)
	if err != nil || len(recs) != 0 {
		t.Fatalf("outbox of a single instance: %v %v", recs, err)
	}
}

func TestOutboxRecordsLocalChangesInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.db")
	s, err := Open(Options{Path: path, Replicated: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	if err := s.SetNodeID(ctx, "node-a"); err != nil {
		t.Fatal(err)
	}
	ns := mustCreate(t, s, "u", "a", "b", "c")
	if _, _, err := s.MarkRead(ctx, "u", ids(ns[:1])); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "u", ids(ns[1:2])); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkAllRead(ctx, "u"); err != nil {
		t.Fatal(err)
	}
	// A change that changes nothing ships nothing.
	if _, err := s.MarkAllRead(ctx, "u"); err != nil {
		t.Fatal(err)
	}

	recs, err := s.Outbox(100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []notification.Kind
	var changes []notification.Change
	for i, r := range recs {
		var c notification.Change
		if err := json.Unmarshal(r.Change, &c); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if r.UserID != "u" || c.UserID != "u" || c.Origin != "node-a" {
			t.Fatalf("record %d: user %q, change %+v", i, r.UserID, c)
		}
		if i > 0 && r.Key <= recs[i-1].Key {
			t.Fatalf("keys not increasing")
		}
		kinds = append(kinds, c.Kind)
		changes = append(changes, c)
	}
	want := []notification.Kind{"created", "created", "created", "read", "deleted", "read_all"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("outbox kinds %v, want %v", kinds, want)
	}
	if changes[0].Notification == nil || changes[0].Notification.ID != ns[0].ID {
		t.Fatalf("created record %+v", changes[0])
	}
	if !slices.Equal(changes[3].IDs, ids(ns[:1])) || !slices.Equal(changes[4].IDs, ids(ns[1:2])) {
		t.Fatalf("read/deleted ids %v %v", changes[3].IDs, changes[4].IDs)
	}
	if changes[5].UpTo != ns[2].ID {
		t.Fatalf("read_all up_to %q, want the newest id %s", changes[5].UpTo, ns[2].ID)
	}
	if d, _ := s.OutboxDepth(); d != 6 {
		t.Fatalf("depth %d, want 6", d)
	}

	// Ack the first two (twice: acks are idempotent); the depth survives a reopen.
	for range 2 {
		if err := s.AckOutbox(ctx, []uint64{recs[0].Key, recs[1].Key}); err != nil {
			t.Fatal(err)
		}
	}
	if d, _ := s.OutboxDepth(); d != 4 {
		t.Fatalf("depth %d after ack, want 4", d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(Options{Path: path, Replicated: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d, _ := s.OutboxDepth(); d != 4 {
		t.Fatalf("depth %d after reopen, want 4", d)
	}
	rest, err := s.Outbox(2)
	if err != nil || len(rest) != 2 || rest[0].Key != recs[2].Key {
		t.Fatalf("outbox after ack: %+v %v", rest, err)
	}
}

// blockWriter makes the writer wait inside OnCommit after its next commit
// until release is called, so that a test can queue requests behind it.
type blockWriter struct {
	armed   chan struct{}
	entered chan struct{}
	release chan struct{}
}

func newBlockWriter() *blockWriter {
	return &blockWriter{armed: make(chan struct{}, 1), entered: make(chan struct{}), release: make(chan struct{})}
}

func (b *blockWriter) onCommit([]notification.Event) {
	select {
	case <-b.armed:
		close(b.entered)
		<-b.release
	default:
	}
}

func TestCancelledBeforeTakenIsNotApplied(t *testing.T) {
	bw := newBlockWriter()
	s, _ := openTest(t, func(o *Options) { o.OnCommit = bw.onCommit })
	bw.armed <- struct{}{}

	// The first create holds the writer in OnCommit.
	firstDone := make(chan error, 1)
	go func() {
		_, err := s.Create(context.Background(), []notification.Draft{draft("u", "first")})
		firstDone <- err
	}()
	<-bw.entered

	// The second one waits in the queue; its caller gives up.
	ctx, cancel := context.WithCancel(context.Background())
	secondDone := make(chan error, 1)
	go func() {
		_, err := s.Create(ctx, []notification.Draft{draft("u", "second")})
		secondDone <- err
	}()
	waitFor(t, "second request queued", 30*time.Second, func() bool { return len(s.reqs) == 1 })
	cancel()
	if err := <-secondDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled create: %v, want context.Canceled", err)
	}
	close(bw.release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	// A write after it proves the writer went past the abandoned request.
	mustCreate(t, s, "v", "later")
	if n, _ := s.UnreadCount("u"); n != 1 {
		t.Fatalf("unread count %d: the cancelled create was applied", n)
	}

	// A ctx already done never gets queued.
	if _, err := s.Create(ctx, []notification.Draft{draft("u", "x")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("create with a done ctx: %v", err)
	}
}

func TestRejectedRequestDoesNotFailItsBatch(t *testing.T) {
	bw := newBlockWriter()
	s, rec := openTest(t, nil)
	s.opts.OnCommit = func(evs []notification.Event) { rec.onCommit(evs); bw.onCommit(evs) }
	existing := mustCreate(t, s, "u", "a")
	bw.armed <- struct{}{}

	go func() { _, _ = s.Create(context.Background(), []notification.Draft{draft("w", "blocker")}) }()
	<-bw.entered

	unknown := remoteNotification("u", time.Now()).ID
	errs := make(chan error, 3)
	go func() {
		_, _, err := s.MarkRead(context.Background(), "u", []string{existing[0].ID, unknown})
		errs <- err
	}()
	go func() {
		_, err := s.Create(context.Background(), []notification.Draft{draft("u", "b")})
		errs <- err
	}()
	go func() {
		_, _, err := s.MarkRead(context.Background(), "u", []string{existing[0].ID})
		errs <- err
	}()
	waitFor(t, "three requests queued", 30*time.Second, func() bool { return len(s.reqs) == 3 })
	close(bw.release)

	var notFound, ok int
	for range 3 {
		switch err := <-errs; {
		case errors.Is(err, ErrNotFound):
			notFound++
		case err == nil:
			ok++
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if notFound != 1 || ok != 2 {
		t.Fatalf("%d not found, %d ok; want 1 and 2", notFound, ok)
	}
	// The rejected mark read changed nothing; the other two did their work.
	if n, _ := s.UnreadCount("u"); n != 1 {
		t.Fatalf("unread count %d, want 1 (b)", n)
	}
	evs := rec.ofUser("u")
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("seq gap: event %d has seq %d", i, ev.Seq)
		}
	}
	checkConsistent(t, s, "u")
}
