package gpapi

import (
	"fmt"
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
		l.held[o] += time.Since(t)
		l.calls[o]++
		l.mu.Unlock()
	}
}

// HeldSummary says how long the harness held the library, in all and per
// kind of call: "12.3 s in 45678 calls (h2d 4.1 s/9000/3.2 GB, ...)".
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
			parts = append(parts, p)
		}
	}
	return fmt.Sprintf("%.1f s in %d calls (%s)", total.Seconds(), n, strings.Join(parts, ", "))
}
