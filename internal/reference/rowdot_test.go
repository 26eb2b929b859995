package reference

import (
	"math"
	"math/rand/v2"
	"testing"
)

// oneRowLinearAbs is the one-chain-per-output loop the row-blocked passes
// replace: the oracle their bit-identity is checked against.
func oneRowLinearAbs(x, w []float64, n int) (y, a []float64) {
	k := len(x)
	y, a = make([]float64, n), make([]float64, n)
	for j := 0; j < n; j++ {
		var s, m float64
		for i := 0; i < k; i++ {
			p := float64(x[i] * w[j*k+i])
			s += p
			m += math.Abs(p)
		}
		y[j], a[j] = s, m
	}
	return y, a
}

// spreadVec draws n normal values scaled over 2^±20 (sums that round).
func spreadVec(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = r.NormFloat64() * math.Exp2(float64(r.IntN(40)-20))
	}
	return v
}

// TestRowBlockedPassesMatchOneRow: Linear, LinearAbs and AbsDotCols give
// bit for bit the one-row loop's sums (same products, same order) for row
// counts that leave 0-3 rows after the blocks of four, with and without
// bias; a block that mixed up its rows or summed out of order fails.
func TestRowBlockedPassesMatchOneRow(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 9))
	for _, sz := range []struct{ n, k int }{{1, 1}, {3, 5}, {4, 7}, {5, 64}, {6, 33}, {7, 1}, {13, 129}, {4099, 300}} {
		x, w, bias := spreadVec(r, sz.k), spreadVec(r, sz.n*sz.k), spreadVec(r, sz.n)
		wantY, wantA := oneRowLinearAbs(x, w, sz.n)
		for _, b := range [][]float64{nil, bias} {
			y := Linear(x, w, b, sz.n)
			ya, a := LinearAbs(x, w, b, sz.n)
			for j := 0; j < sz.n; j++ {
				wy, wa := wantY[j], wantA[j]
				if b != nil {
					wy, wa = wy+b[j], wa+math.Abs(b[j])
				}
				if y[j] != wy || ya[j] != wy || a[j] != wa {
					t.Fatalf("n=%d k=%d bias=%v: output %d: Linear %v, LinearAbs %v / %v, want %v / %v",
						sz.n, sz.k, b != nil, j, y[j], ya[j], a[j], wy, wa)
				}
			}
		}
		cols := []int{}
		for i := 0; i < sz.k; i += 1 + r.IntN(3) {
			cols = append(cols, i)
		}
		got := make([]float64, sz.n)
		AbsDotCols(x, w, cols, got, 0, sz.n)
		for j := 0; j < sz.n; j++ {
			var s float64
			for _, i := range cols {
				s += math.Abs(float64(x[i] * w[j*sz.k+i]))
			}
			if got[j] != s {
				t.Fatalf("n=%d k=%d: AbsDotCols[%d] = %v, want %v", sz.n, sz.k, j, got[j], s)
			}
		}
	}
}

// BenchmarkLinearRowBlock compares, on one core, the row-blocked
// LinearAbs pass with the one-row loop (a 2048×4096 weight).
func BenchmarkLinearRowBlock(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const n, k = 2048, 4096
	x, w := spreadVec(r, k), spreadVec(r, n*k)
	b.Run("one-row", func(b *testing.B) {
		b.SetBytes(8 * n * k)
		for b.Loop() {
			oneRowLinearAbs(x, w, n)
		}
	})
	b.Run("blocked", func(b *testing.B) {
		b.SetBytes(8 * n * k)
		y, a := make([]float64, n), make([]float64, n)
		for b.Loop() {
			dotAbsRows(x, w, y, a, 0, n)
		}
	})
}
