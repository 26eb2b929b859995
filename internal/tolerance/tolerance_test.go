package tolerance

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/reference"
)

// dotF32 computes a dot product the way a kernel does: f32 products and sums
// in a given order, optionally rounding partials to f16 (a faulty kernel).
func dotF32(x, w []float64, order []int, f16acc bool) float64 {
	var acc float32
	for _, i := range order {
		acc = float32(float64(float32(x[i])*float32(w[i])) + float64(acc))
		if f16acc {
			acc = float32(dtype.F16.Round(float64(acc)))
		}
	}
	return float64(acc)
}

// TestLinearBoundHoldsForCorrectKernels checks the local bound against
// simulated f32 kernels with random reduction orders (it must hold), and
// against an f16-accumulating kernel (it must not: the bound can fail).
func TestLinearBoundHoldsForCorrectKernels(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range []int{7, 90, 1000, 4096} {
		for _, dt := range dtype.All {
			x := make([]float64, k)
			w := make([]float64, k)
			for i := range x {
				x[i] = dt.Round(r.NormFloat64())
				w[i] = dt.Round(r.NormFloat64() / math.Sqrt(float64(k)))
			}
			ref := reference.Linear(x, w, nil, 1)
			tol := Linear(x, w, nil, ref, dt)[0]
			faulty := 0
			for trial := 0; trial < 20; trial++ {
				order := r.Perm(k)
				got := dt.Round(dotF32(x, w, order, false))
				if e := math.Abs(got - ref[0]); e > tol {
					t.Errorf("K=%d %v: correct f32 kernel error %g > bound %g", k, dt, e, tol)
				}
				if math.Abs(dt.Round(dotF32(x, w, order, true))-ref[0]) > 2*tol {
					faulty++
				}
			}
			if dt == dtype.F32 && k >= 90 && faulty == 0 {
				t.Errorf("K=%d f32: an f16-accumulating kernel never exceeds twice the bound", k)
			}
		}
	}
}

// TestSoftmaxPropIsExact checks the propagated softmax bound against the
// actual change for random score perturbations.
func TestSoftmaxPropIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for trial := 0; trial < 200; trial++ {
		n := 2 + r.IntN(30)
		s := make([]float64, n)
		ds := make([]float64, n)
		s2 := make([]float64, n)
		for i := range s {
			s[i] = 5 * r.NormFloat64()
			ds[i] = 0.1 * r.NormFloat64()
			s2[i] = s[i] + ds[i]
		}
		p := reference.Softmax(s, 1, n)
		p2 := reference.Softmax(s2, 1, n)
		prop := SoftmaxProp(p, ds, 1, n)
		for i := range p {
			require.LessOrEqual(t, math.Abs(p2[i]-p[i]), prop[i]*(1+1e-9)+1e-300,
				"trial %d: softmax[%d] moved more than its propagated bound", trial, i)
		}
	}
}

// TestRopePropIsExact checks the propagated RoPE bound.
func TestRopePropIsExact(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	x := make([]float64, 32)
	dx := make([]float64, 32)
	x2 := make([]float64, 32)
	for i := range x {
		x[i], dx[i] = r.NormFloat64(), 1e-3*r.NormFloat64()
		x2[i] = x[i] + dx[i]
	}
	for _, layout := range []int{0, 1} {
		y := reference.Rope(x, 77, 2, 16, 1e4, layout)
		y2 := reference.Rope(x2, 77, 2, 16, 1e4, layout)
		prop := RopeProp(dx, 77, 2, 16, 1e4, layout)
		for i := range y {
			require.LessOrEqual(t, math.Abs(y2[i]-y[i]), prop[i]*(1+1e-9)+1e-15,
				"layout %d: rope[%d] moved more than its propagated bound", layout, i)
		}
	}
}

func TestGammaGrowsWithSqrtN(t *testing.T) {
	assert.InDelta(t, 2, Gamma(400)/Gamma(100), 1e-12, "Gamma(400)/Gamma(100)")
}
