package config

import (
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/peterbourgon/ff/v3"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestValidateReportsEveryProblemOnOneLine(t *testing.T) {
	c := Default()
	c.HTTPAddr = "nonsense"
	c.SyncLimit = 0
	c.Heartbeat = 0
	c.LogFormat = "xml"
	c.AllowedOrigins = []string{"app.example.com"}
	c.JWTSecretFile, c.JWTPublicKeyFile = "a", "b"
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil for a bad config")
	}
	msg := err.Error()
	for _, want := range []string{"--http-addr", "--sync-limit", "--heartbeat", "--log-format", "--allowed-origins", "exclusive"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %s", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error %q spans several lines", msg)
	}
}

func TestFlagsAndEnvironment(t *testing.T) {
	t.Setenv("HERALD_REDIS_URL", "redis://127.0.0.1:6390/0")
	t.Setenv("HERALD_ALLOWED_ORIGINS", "https://a.example, https://b.example")
	t.Setenv("HERALD_SYNC_LIMIT", "50")
	c := Default()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	RegisterServeFlags(fs, &c)
	err := ff.Parse(fs, []string{"--heartbeat", "5s", "--sync-limit", "70"}, ff.WithEnvVarPrefix("HERALD"))
	if err != nil {
		t.Fatal(err)
	}
	if c.RedisURL != "redis://127.0.0.1:6390/0" || c.Heartbeat != 5*time.Second {
		t.Errorf("RedisURL %q, Heartbeat %s", c.RedisURL, c.Heartbeat)
	}
	if c.SyncLimit != 70 {
		t.Errorf("SyncLimit = %d, want the flag (70) to win over the environment", c.SyncLimit)
	}
	if len(c.AllowedOrigins) != 2 || c.AllowedOrigins[1] != "https://b.example" {
		t.Errorf("AllowedOrigins = %q", c.AllowedOrigins)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

func TestSocketPathDefaultsToDataDir(t *testing.T) {
	c := Default()
	c.DataDir = "/var/lib/herald"
	if got := c.SocketPath(); got != "/var/lib/herald/herald.sock" {
		t.Errorf("SocketPath() = %q", got)
	}
	c.Socket = "/run/h.sock"
	if got := c.SocketPath(); got != "/run/h.sock" {
		t.Errorf("SocketPath() = %q", got)
	}
}

func FuzzValidate(f *testing.F) {
	f.Add("127.0.0.1:8787", "redis://x:6379", "https://a.example", 500)
	f.Fuzz(func(t *testing.T, addr, redisURL, origin string, syncLimit int) {
		c := Default()
		c.HTTPAddr, c.RedisURL, c.SyncLimit = addr, redisURL, syncLimit
		c.AllowedOrigins = []string{origin}
		if err := c.Validate(); err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("multi-line error %q", err)
		}
	})
}
