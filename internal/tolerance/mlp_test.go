package tolerance

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/reference"
)

// actF32 is a kernel's gated activation: every operation rounded to f32 in
// the backends' order, exp and tanh correctly rounded (a libm within 2 ulp
// is covered by ActUlps), the product rounded once to dt.
func actF32(kind int, g, u float64, dt dtype.Dtype) float64 {
	f := func(v float64) float64 { return float64(float32(v)) }
	g, u = f(g), f(u)
	var a float64
	if kind == reference.ActGeluTanh {
		c, k := f(reference.GeluC), f(reference.GeluA)
		z := f(c * f(g+f(k*f(f(g*g)*g))))
		a = f(f(0.5*g) * f(1+f(math.Tanh(z))))
	} else {
		a = f(g / f(1+f(math.Exp(-g))))
	}
	return dt.Round(f(a * u))
}

// TestActBound: the local bound of the gated activation holds for the
// simulated f32 kernel over gates from -30 to 30 (where GELU's 1 + tanh
// cancels and silu's exp overflows) in every dtype, and fails for the
// activation applied to the wrong half (act_wrong_half).
func TestActBound(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, kind := range []int{reference.ActSwiGLU, reference.ActGeluTanh} {
		for _, dt := range dtype.All {
			var gate, up []float64
			for i := 0; i < 4000; i++ {
				g := r.NormFloat64() * 3
				if i%10 == 0 {
					g = (r.Float64() - 0.5) * 60
				}
				gate, up = append(gate, dt.Round(g)), append(up, dt.Round(r.NormFloat64()))
			}
			ref := reference.GatedAct(kind, gate, up)
			tol := Act(kind, gate, up, ref, dt)
			wrong := 0
			for i := range gate {
				got := actF32(kind, gate[i], up[i], dt)
				assert.LessOrEqual(t, math.Abs(got-ref[i]), tol[i], "kind %d %s g=%v u=%v", kind, dt, gate[i], up[i])
				if math.Abs(actF32(kind, up[i], gate[i], dt)-ref[i]) > tol[i] {
					wrong++
				}
			}
			assert.Greater(t, wrong, len(gate)/2, "kind %d %s: act_wrong_half must exceed the bound on most elements", kind, dt)
		}
	}
}

// TestResidualAndPostNormBounds: the residual add's bound holds for the
// f32 sum rounded once and fails for the branch added twice; the offset
// norm's bound holds for x·r·(1 + w) in f32 and fails without the 1.
func TestResidualAndPostNormBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, dt := range dtype.All {
		n := 300
		a, b, w := make([]float64, n), make([]float64, n), make([]float64, n)
		for i := range a {
			a[i], b[i], w[i] = dt.Round(r.NormFloat64()), dt.Round(r.NormFloat64()), dt.Round(0.1*r.NormFloat64())
		}
		ref := reference.ResidualAdd(a, b)
		tol := Residual(ref, dt)
		caught := 0
		for i := range a {
			got := dt.Round(float64(float32(a[i]) + float32(b[i])))
			assert.LessOrEqual(t, math.Abs(got-ref[i]), tol[i], "%s residual %d", dt, i)
			if math.Abs(dt.Round(a[i]+2*b[i])-ref[i]) > tol[i] {
				caught++
			}
		}
		assert.Greater(t, caught, n*9/10, "%s: residual_twice must exceed the bound", dt)

		y, rr := reference.RMSNormOffset(a, w, 1, 1e-6)
		ntol := RMSNormOffset(a, w, 1, rr, y, dt)
		var ss float32
		for _, v := range a {
			ss += float32(v) * float32(v)
		}
		inv := float32(1) / float32(math.Sqrt(float64(ss/float32(n)+1e-6)))
		caught = 0
		for i := range a {
			got := dt.Round(float64((float32(a[i]) * inv) * (1 + float32(w[i]))))
			assert.LessOrEqual(t, math.Abs(got-y[i]), ntol[i], "%s post_norm %d", dt, i)
			if math.Abs(dt.Round(a[i]*float64(rr)*w[i])-y[i]) > ntol[i] {
				caught++
			}
		}
		assert.Greater(t, caught, n*9/10, "%s: post_norm_no_offset must exceed the bound", dt)
	}
}
