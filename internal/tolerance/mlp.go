package tolerance

import (
	"math"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/reference"
)

// ActUlps bounds, in UAcc units, the relative error of each f32 piece of
// a gated activation: the f32 exponential or tanh (libm, CUDA and ROCm
// OCML are within 2 ulp without fast math), the rounding of the constants
// sqrt(2/π) and 0.044715 to f32, and the few products, sums and the
// division around them (1 ulp each). See Act.
const ActUlps = 8.0

// Residual returns the local bound of y = a + b (attn_res, mlp_res): the
// f32 sum of two stored values, rounded once to the storage dtype,
//
//	tol_i = C·(u_out + UAcc)·|ŷ_i| + floor
//
// UAcc for the f32 addition, u_out for the store.
func Residual(ref []float64, dt dtype.Dtype) []float64 {
	u := dt.UnitRoundoff()
	tol := make([]float64, len(ref))
	for i, y := range ref {
		tol[i] = C*(u+UAcc)*math.Abs(y) + floor(dt)
	}
	return tol
}

// EngineResidual is the engine term of a residual add: 0. The sum of two
// stored values has no intermediate result an engine could round to
// dtype: a + b in dtype arithmetic rounds exactly once, as strict does.
func EngineResidual(ref []float64) []float64 { return make([]float64, len(ref)) }

// RMSNormOffset returns the local bound of y = x·r·(offset + w), the
// post-attention norm (offset 1: Gemma's 1 + w, computed in f32):
//
//	tol_i = RMSNorm's bound with w_i → offset + w_i, + C·UAcc·|x_i·r·(offset + w_i)| when offset ≠ 0
//
// the extra term is the f32 rounding of offset + w (a stored w need not
// leave 1 + w exact in f32: f16's 2^-24 does not).
func RMSNormOffset(x, w []float64, offset, r float64, ref []float64, dt dtype.Dtype) []float64 {
	we := shifted(w, offset)
	tol := RMSNorm(x, we, r, ref, dt)
	if offset != 0 {
		for i := range tol {
			tol[i] += C * UAcc * math.Abs(x[i]*r*we[i])
		}
	}
	return tol
}

// RMSNormOffsetProp is RMSNormProp with the weight offset + w.
func RMSNormOffsetProp(x, dx, w []float64, offset, r float64) []float64 {
	return RMSNormProp(x, dx, shifted(w, offset), r)
}

func shifted(w []float64, offset float64) []float64 {
	out := make([]float64, len(w))
	for i, v := range w {
		out[i] = offset + v
	}
	return out
}

// Act returns the local bound of y = act(g)·u, act computed in f32 and the
// product rounded once to the storage dtype:
//
//	tol_i = C·((u_out + UAcc)·|ŷ_i| + E(g_i)·|u_i|) + floor
//
// with E the absolute error of the f32 activation:
//
//   - SwiGLU, silu(g) = g/(1 + e^-g): E = ActUlps·UAcc·|silu(g)|. The
//     relative error of e^-g, of the sum and of the division pass through
//     unmagnified (|d ln silu / d ln(1 + e^-g)| ≤ 1).
//   - tanh-GELU, g/2·(1 + t), t = tanh(z), z = sqrt(2/π)·(g + 0.044715·g³):
//     E = |g|/2·((1 − t²)·ActUlps·UAcc·|z| + ActUlps·UAcc·|t|) +
//     ActUlps·UAcc·|gelu(g)|. z's relative error (its two f32 constants,
//     g³ and the sum of two same-sign terms) moves t by (1 − t²)·|Δz|,
//     tanhf adds its own ulps of |t|, and 1 + t cancels for g ≪ 0, so the
//     error is absolute there, times |g|/2, and not relative to gelu(g).
func Act(kind int, gate, up, ref []float64, dt dtype.Dtype) []float64 {
	u := dt.UnitRoundoff()
	e := ActUlps * UAcc
	tol := make([]float64, len(ref))
	for i, g := range gate {
		a := reference.Act(kind, g)
		var ea float64
		if kind == reference.ActGeluTanh {
			z := reference.GeluC * (g + reference.GeluA*g*g*g)
			t := math.Tanh(z)
			ea = 0.5*math.Abs(g)*((1-t*t)*e*math.Abs(z)+e*math.Abs(t)) + e*math.Abs(a)
		} else {
			ea = e * math.Abs(a)
		}
		tol[i] = C*((u+UAcc)*math.Abs(ref[i])+ea*math.Abs(up[i])) + floor(dt)
	}
	return tol
}

// EngineAct is the engine term of the gated activation:
//
//	M_i = |ŷ_i|
//
// PyTorch's act_fn(gate) * up (HF LlamaMLP, GemmaMLP) stores act(gate) in
// dtype before the product: a relative u_out of act(g), scaled by |u|.
func EngineAct(ref []float64, dt dtype.Dtype) []float64 {
	out := make([]float64, len(ref))
	for i, y := range ref {
		out[i] = engine(math.Abs(y), dt)
	}
	return out
}
