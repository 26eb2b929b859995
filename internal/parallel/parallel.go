// Package parallel splits a loop over independent indices across the host's
// cores. The float64 reference and the error bounds walk every weight of
// every projection for every compared row (a real MLP has 58 M weights per
// projection); each output index is a sum of its own, so splitting the
// indices across goroutines changes no value, only the wall time.
package parallel

import (
	"runtime"
	"sync"
)

// MinWork is the work (in multiply-adds) below which For runs inline: a
// goroutine costs about a microsecond, a multiply-add about a nanosecond.
const MinWork = 1 << 20

// For calls f(lo, hi) over consecutive ranges that together cover [0, n),
// in parallel when n·perIndex (the work of the whole loop) is at least
// MinWork, else once with (0, n). f must only write what its range owns.
func For(n, perIndex int, f func(lo, hi int)) {
	workers := runtime.GOMAXPROCS(0)
	if n <= 1 || workers == 1 || n*perIndex < MinWork {
		f(0, n)
		return
	}
	// Several ranges per worker, so that a slow core does not hold up the
	// rest, and each range still at least MinWork/4 of work.
	chunks := min(n, 4*workers, max(1, n*perIndex/(MinWork/4)))
	size := (n + chunks - 1) / chunks
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for lo := 0; lo < n; lo += size {
		hi := min(lo+size, n)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			f(lo, hi)
		}()
	}
	wg.Wait()
}
