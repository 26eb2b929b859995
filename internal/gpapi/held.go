package gpapi

import (
	"fmt"
	"math/bits"
	"strings"
	"time"
)

// op is a kind of call into the library, for the time the harness holds it.
type op int

const (
	opMalloc op = iota
	opFree
	opH2D
	opD2H
	opKernel // kernels and every other entry point
	opSync
	opCount
)

var opNames = [opCount]string{"malloc", "free", "h2d", "d2h", "kernels", "synchronize"}

// lock takes the library (one caller at a time, as the ABI says) for an
// op and returns the unlock, which adds the time held to the op's account:
// the library is the one thing a run's cases cannot share, so its held
// time is the floor of the run's wall time.
func (l *Lib) lock(o op) func() {
	l.mu.Lock()
	t := time.Now()
	return func() {
		d := time.Since(t)
		l.held[o] += d
		l.calls[o]++
		l.hist[o][min(bits.Len64(uint64(d.Microseconds())), heldBuckets-1)]++
		l.mu.Unlock()
	}
}

// heldBuckets: a call's held time goes in bucket k when it took [2^(k-1),
// 2^k) µs (bucket 0: under a µs); the last bucket takes the rest.
const heldBuckets = 24

// quantile returns the upper bound of the bucket that holds the q-quantile
// of op o's held times: "≤ 16 µs".
func (l *Lib) quantile(o op, q float64) string {
	want := int64(q * float64(l.calls[o]))
	var seen int64
	for k, n := range l.hist[o] {
		seen += n
		if seen > want {
			if us := int64(1) << k; us >= 1000 {
				return fmt.Sprintf("≤%.0f ms", float64(us)/1000)
			}
			return fmt.Sprintf("≤%d µs", int64(1)<<k)
		}
	}
	return "?"
}

// HeldSummary says how long the harness held the library, in all and per
// kind of call, with the median and 99th percentile of a call's held time
// (bucket bounds, powers of two): "12.3 s in 45678 calls (h2d 4.1 s/9000/3.2
// GB (median ≤16 µs, p99 ≤2 ms), ...)". A median well above the
// benchmarks' per-call cost (BenchmarkCopyHost, BenchmarkCallOverhead)
// means calls wait inside the runtime (for the device, a copy engine or a
// lock of the driver's), not for the harness.
func (l *Lib) HeldSummary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var total time.Duration
	var n int64
	var parts []string
	for o := range opCount {
		total += l.held[o]
		n += l.calls[o]
		if l.calls[o] > 0 {
			p := fmt.Sprintf("%s %.1f s/%d", opNames[o], l.held[o].Seconds(), l.calls[o])
			if l.moved[o] > 0 {
				p += fmt.Sprintf("/%.1f GB", float64(l.moved[o])/1e9)
			}
			p += fmt.Sprintf(" (median %s, p99 %s)", l.quantile(o, 0.5), l.quantile(o, 0.99))
			parts = append(parts, p)
		}
	}
	return fmt.Sprintf("%.1f s in %d calls (%s)", total.Seconds(), n, strings.Join(parts, ", "))
}
