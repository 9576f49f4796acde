package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/sidecar/auth"
)

// options holds every flag of every scenario; each scenario registers and
// reads only its own.
type options struct {
	// Where.
	WS         []string
	Socket     string
	SecretFile string
	DataDir    string
	ServerPIDs []int

	// Who.
	Conns      int
	Users      int
	UserPrefix string

	// How the clients connect.
	Sources         int
	MaxPerProcess   int
	DialConcurrency int
	Timeout         time.Duration
	ReadBuffer      int
	// ForceChildren runs the clients in child processes even when they fit
	// in one (tests use it to exercise splitting).
	ForceChildren bool
	// InProcess forbids child processes.
	InProcess bool

	// Scenario knobs.
	Settle   time.Duration
	Hold     time.Duration
	Rate     float64
	Duration time.Duration
	Warmup   time.Duration
	Drain    time.Duration
	Callers  int
	RPCConns int
	Unread   int
	Spread   time.Duration
	Batch    int
	Mode     string

	JSON       bool
	JSONOut    string
	CPUProfile string

	// secret is loaded from SecretFile or DataDir by resolve.
	secret []byte
}

// defaultOptions returns the defaults of every flag.
func defaultOptions() options {
	return options{
		DialConcurrency: 128,
		Timeout:         30 * time.Second,
		ReadBuffer:      4096,
		Settle:          5 * time.Second,
		Hold:            10 * time.Second,
		Rate:            1000,
		Duration:        10 * time.Second,
		Warmup:          time.Second,
		Drain:           10 * time.Second,
		Callers:         64,
		RPCConns:        4,
		Unread:          20,
		Spread:          10 * time.Second,
		Batch:           100,
		Mode:            "both",
	}
}

// Flag groups a scenario can register.
const (
	needWS = 1 << iota
	needRPC
	needConns
)

func registerFlags(fs *flag.FlagSet, o *options, groups int) {
	if groups&needWS != 0 {
		fs.Func("ws", "WebSocket URL of a replica, e.g. ws://127.0.0.1:8787/ws (repeat for several replicas)",
			func(s string) error { o.WS = append(o.WS, s); return nil })
		fs.StringVar(&o.SecretFile, "secret-file", o.SecretFile, "the servers' HS256 secret file (--jwt-secret-file)")
		fs.StringVar(&o.DataDir, "data-dir", o.DataDir, "a server's data directory; its generated secret signs the tokens")
		fs.IntVar(&o.Sources, "sources", o.Sources, "source addresses 127.0.0.1..N to spread clients over (0: as many as needed)")
		fs.IntVar(&o.MaxPerProcess, "max-per-process", o.MaxPerProcess, "most clients per process (0: by the fd limit)")
		fs.IntVar(&o.DialConcurrency, "dial-concurrency", o.DialConcurrency, "clients connecting at once, per process")
		fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "handshake and unread_sync timeout of one client")
		fs.IntVar(&o.ReadBuffer, "read-buffer", o.ReadBuffer, "client read buffer in bytes")
	}
	if groups&needConns != 0 {
		fs.IntVar(&o.Conns, "conns", o.Conns, "WebSocket clients (required)")
	}
	if groups&(needWS|needRPC) != 0 {
		fs.Func("server-pid", "pid of a Herald whose CPU time, RSS and fd limit to read (repeat, in --ws order)",
			func(s string) error {
				pid, err := strconv.Atoi(s)
				if err != nil || pid <= 0 {
					return fmt.Errorf("want a pid, got %q", s)
				}
				o.ServerPIDs = append(o.ServerPIDs, pid)
				return nil
			})
		fs.IntVar(&o.Users, "users", o.Users, "distinct users the clients or notifications are spread over (0: one per client)")
		fs.StringVar(&o.UserPrefix, "user-prefix", o.UserPrefix, "prefix of the user ids (default: load-<random>-, fresh each run)")
	}
	if groups&needRPC != 0 {
		fs.StringVar(&o.Socket, "socket", o.Socket, "gRPC Unix socket of one Herald")
		fs.IntVar(&o.RPCConns, "rpc-conns", o.RPCConns, "gRPC connections to the socket")
	}
	fs.BoolVar(&o.JSON, "json", o.JSON, "print one JSON object instead of the table")
	fs.StringVar(&o.JSONOut, "json-out", o.JSONOut, "also write the JSON object to this file")
	fs.StringVar(&o.CPUProfile, "cpuprofile", o.CPUProfile, "write this process's CPU profile here (clients in worker processes are not in it)")
}

// resolve fills defaults that depend on other flags and loads the secret.
func (o *options) resolve(groups int) error {
	if o.UserPrefix == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.UserPrefix = "load-" + hex.EncodeToString(b[:]) + "-"
	}
	if groups&needWS == 0 {
		return nil
	}
	if len(o.WS) == 0 {
		return errors.New("--ws is required")
	}
	for _, u := range o.WS {
		if !strings.HasPrefix(u, "ws://") && !strings.HasPrefix(u, "wss://") {
			return fmt.Errorf("--ws %q: want a ws:// or wss:// URL", redactURL(u))
		}
	}
	if o.Users == 0 {
		o.Users = o.Conns
	}
	if o.Conns > 0 && o.Users <= 0 {
		return errors.New("--users must be positive")
	}
	switch {
	case o.SecretFile != "" && o.DataDir != "":
		return errors.New("--secret-file and --data-dir are exclusive")
	case o.SecretFile != "":
	case o.DataDir != "":
		o.SecretFile = filepath.Join(o.DataDir, auth.SecretFileName)
	default:
		return errors.New("--secret-file or --data-dir is required to sign tokens")
	}
	var err error
	o.secret, err = auth.LoadSecretFile(o.SecretFile)
	return err
}

// baseSpec is the worker spec common to every scenario.
func (o *options) baseSpec() workerSpec {
	return workerSpec{
		URLs:            o.WS,
		Users:           o.Users,
		UserPrefix:      o.UserPrefix,
		Secret:          o.secret,
		TokenTTL:        24 * time.Hour,
		Mode:            modeRamp,
		DialConcurrency: o.DialConcurrency,
		Timeout:         o.Timeout,
		ReadBuffer:      o.ReadBuffer,
	}
}

// plan lays out o.Conns clients, raising the fd limit first.
func (o *options) plan() (plan, error) {
	nofile, err := raiseNoFile()
	if err != nil {
		return plan{}, err
	}
	return makePlan(planInput{
		conns: o.Conns, urls: o.WS, serverPIDs: o.ServerPIDs, noFile: int(nofile),
		maxPerProc: o.MaxPerProcess, sources: o.Sources, inProcess: o.InProcess,
	})
}
