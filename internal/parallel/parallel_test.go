package parallel

import (
	"sync/atomic"
	"testing"
)

// TestForCoversEveryIndexOnce: every index in [0, n) is visited exactly
// once, for loops below and above MinWork and for sizes that do not
// divide evenly.
func TestForCoversEveryIndexOnce(t *testing.T) {
	for _, tc := range []struct{ n, per int }{{0, 1}, {1, MinWork * 4}, {7, 1}, {1000, MinWork / 10}, {4097, 4096}, {128256, 4096}} {
		seen := make([]atomic.Int32, tc.n)
		calls := atomic.Int32{}
		For(tc.n, tc.per, func(lo, hi int) {
			calls.Add(1)
			if lo < 0 || hi > tc.n || lo >= hi && tc.n > 0 {
				t.Errorf("n=%d: range [%d, %d) out of bounds or empty", tc.n, lo, hi)
				return
			}
			for i := lo; i < hi; i++ {
				seen[i].Add(1)
			}
		})
		for i := range seen {
			if v := seen[i].Load(); v != 1 {
				t.Fatalf("n=%d per=%d: index %d visited %d times", tc.n, tc.per, i, v)
			}
		}
		if tc.n*tc.per < MinWork && calls.Load() != 1 {
			t.Errorf("n=%d per=%d: %d calls below MinWork, want 1 (inline)", tc.n, tc.per, calls.Load())
		}
	}
}
