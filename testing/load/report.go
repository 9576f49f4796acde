package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// result is a scenario's outcome: JSON-encodable, and rows for the table.
type result interface {
	rows() [][2]string
}

// report is what one run prints.
type report struct {
	Scenario string   `json:"scenario"`
	Args     []string `json:"args"`
	Machine  machine  `json:"machine"`
	Result   result   `json:"result"`
}

// print writes r as a table, or as one JSON object.
func (r *report) print(w io.Writer, asJSON bool) error {
	if asJSON {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario\t%s\n", r.Scenario)
	fmt.Fprintf(tw, "args\t%s\n", strings.Join(r.Args, " "))
	fmt.Fprintf(tw, "machine\t%d CPUs, %d MiB, %s\n", r.Machine.NProc, r.Machine.MemTotalMB, r.Machine.GoVersion)
	fmt.Fprintf(tw, "load average\t%s (start), %s (end)\n", r.Machine.LoadStart, r.Machine.LoadEnd)
	fmt.Fprintf(tw, "TCP (machine-wide)\t%d listen overflows, %d listen drops, %d SYN retransmits\n",
		r.Machine.Net.ListenOverflows, r.Machine.Net.ListenDrops, r.Machine.Net.SynRetrans)
	for _, row := range r.Result.rows() {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	return tw.Flush()
}

// countsString formats an error-count map, largest first.
func countsString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d× %s", m[k], k))
	}
	return strings.Join(parts, "; ")
}

func mergeCounts(dst, src map[string]int) map[string]int {
	if dst == nil {
		dst = map[string]int{}
	}
	for k, v := range src {
		dst[k] += v
	}
	return dst
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }

// clientTotals is the merged view of the workers' events.
type clientTotals struct {
	Counters counters       `json:"counters"`
	Errors   map[string]int `json:"errors,omitempty"`
	Closes   map[string]int `json:"closes,omitempty"`
	connect  *Histogram
	sync     *Histogram
	latency  *Histogram
	byURL    []*Histogram
	bySlot   []*Histogram
	// elapsedNs is the slowest worker's ready time.
	elapsedNs int64
}

func mergeEvents(evs []event) clientTotals {
	t := clientTotals{connect: NewHistogram(), sync: NewHistogram(), latency: NewHistogram()}
	for _, e := range evs {
		t.Counters.add(e.Counters)
		t.Errors = mergeCounts(t.Errors, e.Errors)
		t.Closes = mergeCounts(t.Closes, e.Closes)
		t.connect.Merge(e.Connect)
		t.sync.Merge(e.Sync)
		t.latency.Merge(e.Latency)
		for i, h := range e.LatencyByURL {
			for len(t.byURL) <= i {
				t.byURL = append(t.byURL, NewHistogram())
			}
			t.byURL[i].Merge(h)
		}
		for i, h := range e.SyncBySlot {
			for len(t.bySlot) <= i {
				t.bySlot = append(t.bySlot, NewHistogram())
			}
			t.bySlot[i].Merge(h)
		}
		t.elapsedNs = max(t.elapsedNs, e.ElapsedNs)
	}
	return t
}

// timeline summarizes per-second histograms.
func timeline(hs []*Histogram) []Summary {
	out := make([]Summary, 0, len(hs))
	for _, h := range hs {
		out = append(out, Summarize(h))
	}
	return out
}

// timelineRows formats a timeline as one row per second.
func timelineRows(title string, tl []Summary) [][2]string {
	var rows [][2]string
	for i, s := range tl {
		rows = append(rows, [2]string{fmt.Sprintf("  %s second %d", title, i), s.String()})
	}
	return rows
}

func sourcesString(sources []string) string {
	if len(sources) == 0 {
		return "the kernel's choice"
	}
	return strings.Join(sources, " ")
}
