package reference

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/assert"
)

// approx lets cmp.Diff compare float64 vectors to within 1e-15 (the diff
// then shows every element that differs); without it, cmp.Diff is exact.
var approx = cmpopts.EquateApprox(0, 1e-15)

// TestRopeKnownValues checks the rotation against hand-computed values,
// in both layouts.
func TestRopeKnownValues(t *testing.T) {
	x := []float64{1, 2, 3, 4}
	// neox pairs (0,2), (1,3); pair 1 angle = pos·theta^(-1/2).
	c0, s0 := math.Cos(1), math.Sin(1)
	c1, s1 := math.Cos(0.1), math.Sin(0.1)
	want := []float64{1*c0 - 3*s0, 2*c1 - 4*s1, 1*s0 + 3*c0, 2*s1 + 4*c1}
	assert.Empty(t, cmp.Diff(want, Rope(x, 1, 1, 4, 100, 0), approx), "neox (-want +got)")
	// interleaved pairs (0,1), (2,3)
	want = []float64{1*c0 - 2*s0, 1*s0 + 2*c0, 3*c1 - 4*s1, 3*s1 + 4*c1}
	assert.Empty(t, cmp.Diff(want, Rope(x, 1, 1, 4, 100, 1), approx), "interleaved (-want +got)")
}

// TestAttentionSmall checks scores, mask, softmax and PV on a 2-key GQA case.
func TestAttentionSmall(t *testing.T) {
	q := []float64{1, 0, 0, 1}        // 2 heads of dim 2
	k := [][]float64{{1, 1}, {2, -1}} // 1 KV head
	// qPos 1: both keys visible; qPos 0 masks key 1.
	assert.Empty(t, cmp.Diff([]float64{0.5, 1, 0.5, -0.5}, Scores(q, k, 2, 1, 2, 1, 0.5)), "scores (-want +got)")
	ninf := math.Inf(-1)
	assert.Empty(t, cmp.Diff([]float64{0.5, ninf, 0.5, ninf}, Scores(q, k, 2, 1, 2, 0, 0.5)), "qPos 0 must mask key 1 (-want +got)")
	assert.Empty(t, cmp.Diff([]float64{1, 0}, Softmax([]float64{0, ninf}, 1, 2)), "softmax with a masked key (-want +got)")
	assert.Empty(t, cmp.Diff([]float64{1, 5, 4, 8}, PV([]float64{0.25, 0.75, 1, 0}, [][]float64{{4, 8}, {0, 4}}, 2, 1, 2)), "PV (-want +got)")
}

// TestLinearRowsMatchesLinear checks the BLAS path against the plain loop.
func TestLinearRowsMatchesLinear(t *testing.T) {
	x := []float64{1, 2, 3, 4, 5, 6} // 2 rows, K=3
	w := []float64{1, 0, -1, 2, 2, 2}
	b := []float64{0.5, -0.5}
	var want []float64
	for r := 0; r < 2; r++ {
		want = append(want, Linear(x[r*3:(r+1)*3], w, b, 2)...)
	}
	assert.Empty(t, cmp.Diff(want, LinearRows(x, 2, 3, w, b, 2)), "LinearRows (-Linear per row +LinearRows)")
}

// TestLinearAbsRowsMatchesLinearAbs: the one-pass reference over several
// rows gives each row bit for bit what LinearAbs gives it alone, with the
// bias where the row asks for it; a row of the wrong length gets NaN, not
// a sum over part of W.
func TestLinearAbsRowsMatchesLinearAbs(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	const k, n = 257, 300
	w, b := make([]float64, n*k), make([]float64, n)
	xs := make([][]float64, 4)
	for i := range xs {
		xs[i] = make([]float64, k)
	}
	for _, v := range append([][]float64{w, b}, xs...) {
		for i := range v {
			v[i] = r.NormFloat64() * math.Exp2(float64(r.IntN(20)-10))
		}
	}
	xs[2][5] = 0
	biased := []bool{true, false, true, false}
	ys, as := LinearAbsRows(xs, biased, w, b, n)
	for v, x := range xs {
		var bias []float64
		if biased[v] {
			bias = b
		}
		y, a := LinearAbs(x, w, bias, n)
		for j := 0; j < n; j++ {
			if math.Float64bits(ys[v][j]) != math.Float64bits(y[j]) || math.Float64bits(as[v][j]) != math.Float64bits(a[j]) {
				t.Fatalf("row %d (biased %v), output %d: LinearAbsRows (%v, %v), LinearAbs (%v, %v)", v, biased[v], j, ys[v][j], as[v][j], y[j], a[j])
			}
		}
	}
	ys, _ = LinearAbsRows([][]float64{xs[0], xs[1][:k-1]}, []bool{false, false}, w, nil, n)
	if !math.IsNaN(ys[1][0]) || math.IsNaN(ys[0][0]) {
		t.Errorf("a short row gave %v (want NaN), the full one %v", ys[1][0], ys[0][0])
	}
}
