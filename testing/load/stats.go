package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Histogram buckets are log-linear: values below histLinear are exact, above
// it each power of two is split into histLinear buckets, so a reported
// percentile is within 1/histLinear (under 0.8%) of the true sample.
const (
	histSubBits = 7
	histLinear  = 1 << histSubBits
	histBuckets = histLinear + (64-histSubBits)*histLinear
)

// Histogram records non-negative int64 samples (durations in nanoseconds)
// into fixed buckets. Record is safe for concurrent use and never blocks;
// Merge, Quantile and the JSON methods must not run concurrently with Record
// on the same Histogram.
type Histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Int64
	max    atomic.Int64
	min    atomic.Int64 // valid when n > 0; math.MaxInt64 means unset
}

// NewHistogram returns an empty Histogram.
func NewHistogram() *Histogram {
	h := &Histogram{}
	h.min.Store(math.MaxInt64)
	return h
}

func bucketOf(v int64) int {
	if v < histLinear {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	shift := bits.Len64(uint64(v)) - histSubBits - 1
	return histLinear + shift*histLinear + int(uint64(v)>>shift) - histLinear
}

// bucketMid returns the middle of bucket i's value range.
func bucketMid(i int) int64 {
	if i < histLinear {
		return int64(i)
	}
	shift := (i - histLinear) / histLinear
	lo := int64((i-histLinear)%histLinear+histLinear) << shift
	return lo + (int64(1)<<shift)/2
}

// Record adds one sample; negative samples count as 0.
func (h *Histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	h.counts[bucketOf(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			break
		}
	}
	for {
		m := h.min.Load()
		if v >= m || h.min.CompareAndSwap(m, v) {
			break
		}
	}
}

// RecordDuration adds one duration sample.
func (h *Histogram) RecordDuration(d time.Duration) { h.Record(int64(d)) }

// Count returns the number of samples.
func (h *Histogram) Count() uint64 { return h.n.Load() }

// Max returns the largest sample, exactly, or 0 when empty.
func (h *Histogram) Max() int64 {
	if h.n.Load() == 0 {
		return 0
	}
	return h.max.Load()
}

// Min returns the smallest sample, exactly, or 0 when empty.
func (h *Histogram) Min() int64 {
	if h.n.Load() == 0 {
		return 0
	}
	return h.min.Load()
}

// Mean returns the mean sample, or 0 when empty.
func (h *Histogram) Mean() float64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	return float64(h.sum.Load()) / float64(n)
}

// Quantile returns the sample at quantile q (0 < q <= 1), to bucket
// precision, clamped to the exact min and max.
func (h *Histogram) Quantile(q float64) int64 {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			v := bucketMid(i)
			return min(max(v, h.Min()), h.Max())
		}
	}
	return h.Max()
}

// Merge adds o's samples into h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n.Load() == 0 {
		return
	}
	for i := range o.counts {
		if c := o.counts[i].Load(); c != 0 {
			h.counts[i].Add(c)
		}
	}
	h.n.Add(o.n.Load())
	h.sum.Add(o.sum.Load())
	if m := o.max.Load(); m > h.max.Load() {
		h.max.Store(m)
	}
	if m := o.min.Load(); m < h.min.Load() {
		h.min.Store(m)
	}
}

// histJSON is a Histogram's wire form between processes: sparse buckets.
type histJSON struct {
	N       uint64     `json:"n"`
	Sum     int64      `json:"sum"`
	Min     int64      `json:"min"`
	Max     int64      `json:"max"`
	Buckets [][2]int64 `json:"b,omitempty"` // [index, count]
}

// MarshalJSON encodes the histogram sparsely.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	out := histJSON{N: h.n.Load(), Sum: h.sum.Load(), Min: h.Min(), Max: h.Max()}
	for i := range h.counts {
		if c := h.counts[i].Load(); c != 0 {
			out.Buckets = append(out.Buckets, [2]int64{int64(i), int64(c)})
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes what MarshalJSON wrote into an empty histogram.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var in histJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	h.min.Store(math.MaxInt64)
	for _, bc := range in.Buckets {
		if bc[0] < 0 || bc[0] >= histBuckets {
			return fmt.Errorf("histogram bucket %d out of range", bc[0])
		}
		h.counts[bc[0]].Store(uint64(bc[1]))
	}
	h.n.Store(in.N)
	h.sum.Store(in.Sum)
	h.max.Store(in.Max)
	if in.N > 0 {
		h.min.Store(in.Min)
	}
	return nil
}

// Summary is the percentile view of a histogram of durations, in
// milliseconds, as it appears in reports.
type Summary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P95   float64 `json:"p95_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

// Summarize returns h's percentiles in milliseconds.
func Summarize(h *Histogram) Summary {
	ms := func(ns int64) float64 { return math.Round(float64(ns)/1e3) / 1e3 }
	return Summary{
		Count: h.Count(),
		Mean:  math.Round(h.Mean()/1e3) / 1e3,
		P50:   ms(h.Quantile(0.50)),
		P95:   ms(h.Quantile(0.95)),
		P99:   ms(h.Quantile(0.99)),
		P999:  ms(h.Quantile(0.999)),
		Max:   ms(h.Max()),
	}
}

// String formats the summary for the human table.
func (s Summary) String() string {
	if s.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p95 %s  p99 %s  max %s  (n=%d)",
		fmtMS(s.P50), fmtMS(s.P95), fmtMS(s.P99), fmtMS(s.Max), s.Count)
}

func fmtMS(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.0fµs", ms*1000)
	case ms < 100:
		return fmt.Sprintf("%.2fms", ms)
	default:
		return fmt.Sprintf("%.0fms", ms)
	}
}
