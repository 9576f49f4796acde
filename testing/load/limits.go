package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
)

const (
	// fdMarginClient is what a load process keeps free of its fd limit for
	// its own files, pipes, the gRPC socket and listeners.
	fdMarginClient = 256
	// fdMarginServer is what a Herald needs beyond its sockets: the store,
	// the gRPC socket, Redis, logs, and sockets still closing. 19,000 of
	// 20,000 is the practical maximum the task statement names.
	fdMarginServer = 1000
	// portUsable is the share of an ephemeral port range the planner counts
	// on at most: earlier runs leave ports in TIME_WAIT for a minute.
	portUsable = 0.75
	// portComfort is the share it aims for when it picks the number of
	// source addresses itself. connect() searches the range for a free port
	// while holding kernel locks, starting with the even half; past about a
	// fifth of the range in use towards one destination, the search cost
	// grows steeply. Measured here: 18,000 connects in 10 s to one Herald took
	// 0.2 CPU-ms each in connect() with one source address and a p99 from
	// dial to unread_sync of 1.8 s; with 8 source addresses the p99 was 13 ms.
	portComfort = 0.2
	// clientMemPerConn is a generous estimate of the client side's memory
	// per connection (goroutine, read buffer, kernel socket buffers on both
	// ends), used only to refuse runs that cannot fit in memory.
	clientMemPerConn = 96 << 10
)

// raiseNoFile raises this process's RLIMIT_NOFILE soft limit to its hard
// limit and returns the resulting soft limit.
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("setrlimit NOFILE to %d: %w", lim.Max, err)
		}
	}
	return lim.Cur, nil
}

// ephemeralPorts returns the size of the kernel's ephemeral port range.
func ephemeralPorts() (int, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, fmt.Errorf("ip_local_port_range: unexpected %q", b)
	}
	lo, err1 := strconv.Atoi(f[0])
	hi, err2 := strconv.Atoi(f[1])
	if err := errors.Join(err1, err2); err != nil || hi < lo {
		return 0, fmt.Errorf("ip_local_port_range: unexpected %q", b)
	}
	return hi - lo + 1, nil
}

// processNoFile returns the soft "Max open files" of process pid.
func processNoFile(pid int) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "Max open files") {
			continue
		}
		fields := strings.Fields(strings.TrimPrefix(line, "Max open files"))
		if len(fields) < 1 {
			break
		}
		if fields[0] == "unlimited" {
			return 1 << 30, nil
		}
		return strconv.Atoi(fields[0])
	}
	return 0, fmt.Errorf("no Max open files line in /proc/%d/limits", pid)
}

// memAvailable returns MemAvailable from /proc/meminfo in bytes.
func memAvailable() (uint64, error) {
	return meminfoField("MemAvailable")
}

func meminfoField(name string) (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+":") {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(line, name+":"))
		if len(f) < 1 {
			break
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		return kb << 10, err
	}
	return 0, fmt.Errorf("no %s in /proc/meminfo", name)
}

// plan is how the clients of a run are laid out over processes and source
// addresses.
type plan struct {
	// Conns is the total number of WebSocket clients.
	Conns int
	// Procs is the number of worker processes (1 means in-process).
	Procs int
	// PerProc is the most clients one process holds.
	PerProc int
	// Sources are the local addresses clients bind to, or empty for the
	// kernel's choice.
	Sources []string
	// PerDest is how many clients go to each WebSocket URL.
	PerDest []int
	// ServerFDs is the fd limit assumed for each server, in URL order.
	ServerFDs []int
}

// planInput is what the planner needs to know.
type planInput struct {
	conns      int
	urls       []string
	serverPIDs []int
	// noFile is this process's fd limit after raising it.
	noFile int
	// maxPerProc forces splitting at a lower count (tests); 0 means by fd limit.
	maxPerProc int
	// sources is the requested number of source addresses; 0 means auto.
	sources int
	// inProcess forbids child processes (the in-process smoke tests).
	inProcess bool
}

// makePlan lays the clients out, or explains up front why this machine
// cannot hold them.
func makePlan(in planInput) (plan, error) {
	p := plan{Conns: in.conns}
	if in.conns < 0 {
		return p, fmt.Errorf("--conns must not be negative")
	}
	if len(in.urls) == 0 {
		return p, fmt.Errorf("no --ws URL given")
	}

	// Clients per destination: client i goes to urls[i % len(urls)].
	p.PerDest = make([]int, len(in.urls))
	for i := range p.PerDest {
		p.PerDest[i] = in.conns / len(in.urls)
		if i < in.conns%len(in.urls) {
			p.PerDest[i]++
		}
	}

	// The servers' own fd limits.
	p.ServerFDs = make([]int, len(in.urls))
	for i, u := range in.urls {
		limit := in.noFile // a server on this machine has at most the same hard limit
		switch {
		case len(in.serverPIDs) == len(in.urls):
			n, err := processNoFile(in.serverPIDs[i])
			if err != nil {
				return p, fmt.Errorf("read fd limit of --server-pid %d: %w", in.serverPIDs[i], err)
			}
			limit = n
		case len(in.serverPIDs) == 1 && len(in.urls) == 1:
			n, err := processNoFile(in.serverPIDs[0])
			if err != nil {
				return p, fmt.Errorf("read fd limit of --server-pid %d: %w", in.serverPIDs[0], err)
			}
			limit = n
		}
		p.ServerFDs[i] = limit
		if room := limit - fdMarginServer; p.PerDest[i] > room {
			return p, fmt.Errorf("%d connections to %s need as many fds in that Herald, whose limit is %d "+
				"(practical maximum %d with a margin of %d): add replicas with more --ws URLs "+
				"(e.g. %d replicas for %d connections)",
				p.PerDest[i], redactURL(u), limit, max(room, 0), fdMarginServer,
				(in.conns+room-1)/max(room, 1), in.conns)
		}
	}

	// Processes.
	p.PerProc = in.noFile - fdMarginClient
	if in.maxPerProc > 0 && in.maxPerProc < p.PerProc {
		p.PerProc = in.maxPerProc
	}
	if p.PerProc < 1 {
		return p, fmt.Errorf("fd limit %d leaves no room for clients", in.noFile)
	}
	p.Procs = max(1, (in.conns+p.PerProc-1)/p.PerProc)
	if in.inProcess && p.Procs > 1 {
		return p, fmt.Errorf("%d connections need %d processes (at most %d each) but child processes are off",
			in.conns, p.Procs, p.PerProc)
	}

	// Source addresses: each (source, destination) pair offers the
	// ephemeral range once.
	ports, err := ephemeralPorts()
	if err != nil {
		return p, fmt.Errorf("read ephemeral port range: %w", err)
	}
	perSource := int(float64(ports) * portUsable)
	need := 1
	for _, n := range p.PerDest {
		need = max(need, (n+perSource-1)/perSource)
	}
	nsrc := in.sources
	if nsrc == 0 {
		nsrc = need
		if allLoopback(in.urls) {
			comfort := int(float64(ports) * portComfort)
			nsrc = max(need, (maxInts(p.PerDest)+comfort-1)/comfort)
		}
	}
	if nsrc < need {
		return p, fmt.Errorf("%d connections to one destination need %d source addresses "+
			"(%d usable ephemeral ports each of %d), --sources is %d",
			maxInts(p.PerDest), need, perSource, ports, nsrc)
	}
	if nsrc > 1 {
		for i, u := range in.urls {
			if !loopbackURL(u) {
				return p, fmt.Errorf("%d connections need %d source addresses, which this tool only "+
					"takes from 127.0.0.0/8, but %s is not on loopback", p.PerDest[i], nsrc, redactURL(u))
			}
		}
		if nsrc > 250 {
			return p, fmt.Errorf("%d source addresses needed; at most 250 supported", nsrc)
		}
		for i := range nsrc {
			p.Sources = append(p.Sources, fmt.Sprintf("127.0.0.%d", i+1))
		}
	}

	// Memory.
	if avail, err := memAvailable(); err == nil {
		if need := uint64(in.conns) * clientMemPerConn; need > avail {
			return p, fmt.Errorf("%d connections need about %d MiB for the clients alone; MemAvailable is %d MiB",
				in.conns, need>>20, avail>>20)
		}
	}
	return p, nil
}

func maxInts(xs []int) int {
	m := 0
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

func allLoopback(urls []string) bool {
	for _, u := range urls {
		if !loopbackURL(u) {
			return false
		}
	}
	return true
}

// loopbackURL reports whether u's host is a loopback IP or localhost.
func loopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// redactURL drops the query (which may carry a token) from a URL for messages.
func redactURL(raw string) string {
	if i := strings.IndexByte(raw, '?'); i >= 0 {
		return raw[:i]
	}
	return raw
}
