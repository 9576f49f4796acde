package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// readRSS returns VmRSS of process pid in bytes.
func readRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "VmRSS:") {
			continue
		}
		fields := strings.Fields(strings.TrimPrefix(line, "VmRSS:"))
		if len(fields) < 1 {
			break
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		return kb << 10, err
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// sumRSS returns the summed VmRSS of pids and each one, in bytes.
func sumRSS(pids []int) (int64, []int64, error) {
	var total int64
	each := make([]int64, len(pids))
	for i, pid := range pids {
		rss, err := readRSS(pid)
		if err != nil {
			return 0, nil, fmt.Errorf("read RSS of --server-pid %d: %w", pid, err)
		}
		each[i] = rss
		total += rss
	}
	return total, each, nil
}

// loadAvg returns the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// machine describes where a figure was measured.
type machine struct {
	NProc      int    `json:"nproc"`
	MemTotalMB uint64 `json:"mem_total_mib"`
	GoVersion  string `json:"go_version"`
	LoadStart  string `json:"loadavg_start"`
	LoadEnd    string `json:"loadavg_end,omitempty"`
	StartedAt  string `json:"started_at"`
	// Net is the change of machine-wide TCP counters during the run (other
	// programs on the machine count too).
	Net  netCounters `json:"net"`
	net0 netCounters
}

func newMachine() machine {
	total, _ := meminfoField("MemTotal")
	return machine{
		NProc: runtime.NumCPU(), MemTotalMB: total >> 20, GoVersion: runtime.Version(),
		LoadStart: loadAvg(), StartedAt: time.Now().UTC().Format(time.RFC3339),
		net0: readNetCounters(),
	}
}

// serverConnections reads herald_connections from the /metrics of the Herald
// behind a WebSocket URL; ok is false when it cannot.
func serverConnections(wsURL string) (n float64, ok bool) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return 0, false
	}
	u.Scheme = "http"
	if strings.HasPrefix(wsURL, "wss:") {
		u.Scheme = "https"
	}
	u.Path, u.RawQuery = "/metrics", ""
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u.String())
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, false
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, false
	}
	var total float64
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "herald_connections") {
			continue
		}
		rest := strings.TrimPrefix(line, "herald_connections")
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // another metric with this prefix
		}
		f := strings.Fields(rest)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			total += v
			ok = true
		}
	}
	return total, ok
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procCPU returns the user+system CPU time process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields after it are fixed.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// cpuMeter measures the CPU time a set of processes use between start and
// stop, and the wall time. Processes that cannot be read count 0.
type cpuMeter struct {
	pids  []int
	cpu0  []time.Duration
	wall0 time.Time
}

func startCPU(pids []int) *cpuMeter {
	m := &cpuMeter{pids: pids, wall0: time.Now()}
	for _, pid := range pids {
		d, _ := procCPU(pid)
		m.cpu0 = append(m.cpu0, d)
	}
	return m
}

// cpuUse is what a cpuMeter measured.
type cpuUse struct {
	// Seconds is the CPU time used by all the processes together.
	Seconds float64 `json:"cpu_seconds"`
	// Each is the CPU time of each process, in the order given.
	Each []float64 `json:"cpu_seconds_each,omitempty"`
	// Wall is the wall time between start and stop.
	Wall float64 `json:"wall_seconds"`
}

func (m *cpuMeter) stop() cpuUse {
	u := cpuUse{Wall: time.Since(m.wall0).Seconds()}
	for i, pid := range m.pids {
		d, _ := procCPU(pid)
		s := (d - m.cpu0[i]).Seconds()
		u.Each = append(u.Each, s)
		u.Seconds += s
	}
	return u
}

// String formats the use as CPU seconds and the share of one core.
func (u cpuUse) String() string {
	if u.Wall <= 0 {
		return "not measured"
	}
	return fmt.Sprintf("%.2f CPU-s in %.2f s (%.0f%% of one core)", u.Seconds, u.Wall, 100*u.Seconds/u.Wall)
}

// perOp formats CPU milliseconds per operation.
func (u cpuUse) perOp(ops int64, what string) string {
	if ops <= 0 {
		return u.String()
	}
	return fmt.Sprintf("%s, %.3f CPU-ms per %s", u, 1000*u.Seconds/float64(ops), what)
}

// netCounters are machine-wide (network namespace) TCP counters from
// /proc/net/netstat that explain connect-time tails: a full listen queue
// drops SYNs, and the client retransmits after 1 s, then 3 s.
type netCounters struct {
	ListenOverflows int64 `json:"listen_overflows"`
	ListenDrops     int64 `json:"listen_drops"`
	SynRetrans      int64 `json:"syn_retrans"`
}

func readNetCounters() netCounters {
	var c netCounters
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return c
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "TcpExt:") || !strings.HasPrefix(lines[i+1], "TcpExt:") {
			continue
		}
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j := 1; j < len(names) && j < len(values); j++ {
			v, _ := strconv.ParseInt(values[j], 10, 64)
			switch names[j] {
			case "ListenOverflows":
				c.ListenOverflows = v
			case "ListenDrops":
				c.ListenDrops = v
			case "TCPSynRetrans":
				c.SynRetrans = v
			}
		}
		break
	}
	return c
}

func (c netCounters) sub(o netCounters) netCounters {
	return netCounters{ListenOverflows: c.ListenOverflows - o.ListenOverflows,
		ListenDrops: c.ListenDrops - o.ListenDrops, SynRetrans: c.SynRetrans - o.SynRetrans}
}
