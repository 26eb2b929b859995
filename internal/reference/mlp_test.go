package reference

import (
	"math"
	"testing"
)

// TestActivations pins the activations at known values: silu(0) = 0,
// silu(x) → x for large x and → 0 for very negative x; tanh-GELU(1) =
// 0.841192 (PyTorch's gelu(1, approximate="tanh")); and the gated form
// multiplies by up.
func TestActivations(t *testing.T) {
	for _, c := range []struct {
		kind    int
		g, want float64
		tol     float64
	}{
		{ActSwiGLU, 0, 0, 0},
		{ActSwiGLU, 1, 1 / (1 + math.Exp(-1)), 1e-15},
		{ActSwiGLU, 40, 40, 1e-12},
		{ActSwiGLU, -40, 0, 1e-15},
		{ActGeluTanh, 0, 0, 0},
		{ActGeluTanh, 1, 0.8411919906082768, 1e-12},
		{ActGeluTanh, -1, -0.15880800939172324, 1e-12},
		{ActGeluTanh, 10, 10, 1e-12},
	} {
		if got := Act(c.kind, c.g); math.Abs(got-c.want) > c.tol {
			t.Errorf("Act(%d, %v) = %v, want %v", c.kind, c.g, got, c.want)
		}
	}
	y := GatedAct(ActSwiGLU, []float64{1, 2}, []float64{3, -1})
	if want := []float64{3 * Act(ActSwiGLU, 1), -Act(ActSwiGLU, 2)}; y[0] != want[0] || y[1] != want[1] {
		t.Errorf("GatedAct = %v, want %v", y, want)
	}
	if got := ResidualAdd([]float64{1, 2}, []float64{0.5, -2}); got[0] != 1.5 || got[1] != 0 {
		t.Errorf("ResidualAdd = %v", got)
	}
	n, _ := RMSNormOffset([]float64{3, 4}, []float64{0, 1}, 1, 0)
	want := []float64{3 / math.Sqrt(12.5), 2 * 4 / math.Sqrt(12.5)}
	for i := range n {
		if math.Abs(n[i]-want[i]) > 1e-15 {
			t.Errorf("RMSNormOffset = %v, want %v", n, want)
		}
	}
}
