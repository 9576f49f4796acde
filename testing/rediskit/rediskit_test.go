package rediskit_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldhq/herald/testing/rediskit"
)

func TestStartStopStartKeepsPortAndEmptiesData(t *testing.T) {
	srv := rediskit.Start(t)
	c := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("set: %v", err)
	}
	port := srv.Port()
	srv.Stop()
	if srv.Running() {
		t.Fatal("running after Stop")
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("ping succeeded while stopped")
	}
	srv.Start()
	if srv.Port() != port {
		t.Fatalf("port changed from %d to %d", port, srv.Port())
	}
	n, err := c.Exists(ctx, "k").Result()
	if err != nil {
		t.Fatalf("exists after restart: %v", err)
	}
	if n != 0 {
		t.Fatal("data survived a restart without persistence")
	}

	srv.Kill()
	if srv.Running() {
		t.Fatal("running after Kill")
	}
	srv.Start()
	if got := srv.NumSub(t, "nobody"); got != 0 {
		t.Fatalf("NumSub = %d, want 0", got)
	}
	if got := srv.Do(t, "PING"); got != "PONG" {
		t.Fatalf("PING = %v", got)
	}
}

func TestTwoServersAreIndependent(t *testing.T) {
	a, b := rediskit.Start(t), rediskit.Start(t)
	if a.URL() == b.URL() {
		t.Fatalf("both servers at %s", a.URL())
	}
	a.Do(t, "SET", "k", "a")
	if got := b.Do(t, "EXISTS", "k"); got != int64(0) {
		t.Fatalf("EXISTS on b = %v", got)
	}
}

func TestPauseResume(t *testing.T) {
	srv := rediskit.Start(t)
	c := srv.Client(t)
	srv.Pause()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err := c.Ping(ctx).Err()
	cancel()
	if err == nil {
		t.Fatal("ping answered while paused")
	}
	srv.Resume()
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("ping after resume: %v", err)
	}
	srv.Pause()
	srv.Stop() // resumes first, then stops cleanly
	if srv.Running() {
		t.Fatal("running after Stop of a paused server")
	}
}
