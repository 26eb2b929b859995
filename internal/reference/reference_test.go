package reference

import (
	"math"
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
