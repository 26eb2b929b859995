// Package tolerance is the one home of the harness's error model: for every
// sub-stage, how far a correct kernel's output may be from the float64
// reference on the same inputs (the local bound), and how far two correct
// outputs may drift apart because their inputs already differed (the
// propagated bound). Every bound is per element and is a formula of the
// inputs, the storage dtype and the reduction length; none is a hand-tuned
// constant.
//
// Notation. u_out is the unit roundoff of the output's storage dtype
// (dtype.UnitRoundoff: 2^-24 f32, 2^-11 f16, 2^-8 bf16); UAcc = 2^-24 is the
// unit roundoff of the f32 accumulators every kernel uses; ŷ is the float64
// reference on the exact inputs the kernel received.
//
// Accumulation. A dot product of length n computed in f32, in any order,
// obeys |ŝ−s| ≤ γ_n·Σ|xᵢwᵢ| with the worst-case γ_n = n·u/(1−n·u). That
// worst case grows linearly in n and is so loose at n = 4096 that it hides
// real faults (a GEMV accumulating in f16 stays inside it). We use instead
// the probabilistic bound of Higham and Mary (SIAM J. Sci. Comput. 2019),
//
//	γ̃_n = λ·√n·UAcc,  λ = Lambda = 4,
//
// which holds with overwhelming probability for rounding errors that are
// independent and mean-free (round-to-nearest accumulators, as on the CPU
// backend and AMD's MFMA/VALU). Truncating accumulators (some NVIDIA tensor
// core paths) add a bias of at most one ulp per K tile; λ = 4 leaves that
// room for the K tile counts of our shapes (≤ 1024 tiles).
//
// Safety factor. Each local bound is multiplied by C = 2 to cover the
// second-order terms the first-order formulas drop (rounding of the
// rounding error, conversion of f32 transcendental results).
//
// Pair check. For decode output d and prefill output p of the same row,
//
//	|d−p| ≤ local(in_d) + local(in_p) + prop(in_d − in_p),
//
// where prop is the first-order (for RoPE, QK and P·V exact) change of the
// stage's exact function when its inputs move from in_p to in_d; for fused
// attention it is the float64 reference's own change on the two inputs
// (ExactProp). In isolated mode both paths get prefill's inputs, prop is
// zero and the tolerance is 2·local.
//
// Contracts. The bounds above are the Strict contract: f32 accumulation
// and exactly one rounding to the storage dtype per stage. The Engine
// contract (Contract, EngineRoundings, engine.go) adds to each local bound
// a term EngineRoundings·C·u_out·M_i for intermediate results rounded to
// the storage dtype, as production engines do; it never relaxes the
// accumulation, so an f16 or bf16 accumulator fails both.
package tolerance

import (
	"math"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/parallel"
	"github.com/gretacore/parity/internal/reference"
)

const (
	// UAcc is the unit roundoff of the f32 accumulators.
	UAcc = 0x1p-24
	// Lambda is the probabilistic bound's confidence factor (see package doc).
	Lambda = 4.0
	// C is the safety factor on every local bound.
	C = 2.0
	// FAFactor is FlashAttention's factor: decode's error against the
	// float64 chain reference may be at most FAFactor times prefill's
	// (plus the pair tolerance), see FACheck.
	FAFactor = 2.0
	// TrigUlps bounds the relative error, in UAcc units, of the f32 RoPE
	// angle pos·theta^(-2i/d): powf's result (a few ulp) plus the rounding
	// of its exponent argument magnified by ln(theta) ≤ 14 for theta ≤ 1e6,
	// plus the product with pos. See Rope.
	TrigUlps = 32.0
)

// Gamma returns γ̃_n = Lambda·√n·UAcc, the accumulation error factor of a
// length-n f32 reduction.
func Gamma(n int) float64 { return Lambda * math.Sqrt(float64(n)) * UAcc }

// floor is the absolute error allowed near zero, where rounding error is
// absolute rather than relative. For f32 results it is the smallest normal
// value: GPU f32 arithmetic may flush subnormal results to zero (and an
// expf or a division landing in the subnormal range rounds to the subnormal
// grid, 2^-149, twice), so anything below 2^-126 is indistinguishable from
// 0. For f16/bf16 storage, whose subnormals GPUs keep, it is two subnormal
// spacings, 4·MinNormal·u (one rounding of the value, one of its input).
func floor(dt dtype.Dtype) float64 {
	if dt == dtype.F32 {
		return dt.MinNormal()
	}
	return 4 * dt.MinNormal() * dt.UnitRoundoff()
}

// Linear returns the local bound of y = x·Wᵀ + b for one row:
//
//	tol_j = C·(u_out·|ŷ_j| + γ̃_{K+1}·(Σ_k |x_k·W_jk| + |b_j|)) + floor
//
// The first term is the final rounding to the storage dtype, the second the
// f32 accumulation over K products and the bias.
func Linear(x, w, bias, ref []float64, dt dtype.Dtype) []float64 {
	k := len(x)
	abs := make([]float64, len(ref))
	parallel.For(len(abs), k, func(lo, hi int) {
		for j := lo; j < hi; j++ {
			row := w[j*k : (j+1)*k]
			var s float64
			for i, xv := range x {
				s += math.Abs(xv * row[i])
			}
			if bias != nil {
				s += math.Abs(bias[j])
			}
			abs[j] = s
		}
	})
	return LinearFromAbs(abs, ref, k, dt)
}

// LinearFromAbs is Linear's bound from the magnitudes abs_j = Σ_k |x_k·W_jk|
// + |b_j| computed elsewhere (reference.LinearAbs, in the reference's own
// pass over W), for a reduction of length k.
func LinearFromAbs(abs, ref []float64, k int, dt dtype.Dtype) []float64 {
	g := Gamma(k + 1)
	u := dt.UnitRoundoff()
	tol := make([]float64, len(ref))
	for j := range tol {
		tol[j] = C*(u*math.Abs(ref[j])+g*abs[j]) + floor(dt)
	}
	return tol
}

// LinearProp is the exact change of x·Wᵀ when x moves by dx:
// prop_j = Σ_k |dx_k|·|W_jk|.
//
// Only the k where dx_k ≠ 0 contribute (a zero dx_k adds nothing; a NaN
// one is kept and poisons the sum), so the pass over W reads only those
// columns, in increasing k as before: decode and prefill usually agree on most of a row, and
// on forced routes on all of it (then prop is 0 without touching W).
func LinearProp(dx, w []float64, n int) []float64 {
	out := make([]float64, n)
	var nz []int
	for i, d := range dx {
		if d != 0 {
			nz = append(nz, i)
		}
	}
	if len(nz) == 0 {
		return out
	}
	parallel.For(n, len(nz), func(lo, hi int) {
		reference.AbsDotCols(dx, w, nz, out, lo, hi)
	})
	return out
}

// RMSNorm returns the local bound of y = x·r·w, r = 1/sqrt(mean(x²)+eps):
//
//	tol_i = C·(u_out·|ŷ_i| + (γ̃_D/2 + 4·UAcc)·|x_i·r·w_i|) + floor
//
// γ̃_D/2 is the sum of squares' relative error after the square root, 4·UAcc
// covers the division, sqrt and the two products.
func RMSNorm(x, w []float64, r float64, ref []float64, dt dtype.Dtype) []float64 {
	rel := Gamma(len(x))/2 + 4*UAcc
	u := dt.UnitRoundoff()
	tol := make([]float64, len(x))
	for i := range x {
		tol[i] = C*(u*math.Abs(ref[i])+rel*math.Abs(x[i]*r*w[i])) + floor(dt)
	}
	return tol
}

// RMSNormProp bounds the change of RMSNorm when x moves by dx, to first
// order: |dy_i| ≤ r·|w_i|·(|dx_i| + |x_i|·Σ|x_k·dx_k|·r²/D).
func RMSNormProp(x, dx, w []float64, r float64) []float64 {
	var xdx float64
	for k := range x {
		xdx += math.Abs(x[k] * dx[k])
	}
	c := xdx * r * r / float64(len(x))
	out := make([]float64, len(x))
	for i := range x {
		out[i] = r * math.Abs(w[i]) * (math.Abs(dx[i]) + math.Abs(x[i])*c)
	}
	return out
}

// Rope returns the local bound of one rotated row at position pos:
//
//	tol_e = C·(u_out·|ŷ_e| + (|x_a|+|x_b|)·TrigUlps·UAcc·(1+|θ_i|)) + floor
//
// where (a, b) is the pair element e belongs to and θ_i its exact angle.
// The second term is the f32 angle's error (relative TrigUlps·UAcc, so
// absolute TrigUlps·UAcc·|θ|) plus sin/cos's own ulps, times the rotated
// magnitudes. At large positions the f32 angle really is that far from the
// float64 one; both paths compute the same angle, so the pair check is
// unaffected.
func Rope(x, ref []float64, pos, nHeads, headDim int, theta float64, layout int, dt dtype.Dtype) []float64 {
	u := dt.UnitRoundoff()
	tol := make([]float64, len(x))
	for h := 0; h < nHeads; h++ {
		base := h * headDim
		for i := 0; i < headDim/2; i++ {
			a, b := reference.RopePairs(layout, headDim, i)
			e := TrigUlps * UAcc * (1 + math.Abs(reference.RopeAngle(pos, i, headDim, theta)))
			m := math.Abs(x[base+a]) + math.Abs(x[base+b])
			tol[base+a] = C*(u*math.Abs(ref[base+a])+m*e) + floor(dt)
			tol[base+b] = C*(u*math.Abs(ref[base+b])+m*e) + floor(dt)
		}
	}
	return tol
}

// RopeProp is the exact change of a rotation when x moves by dx:
// |dy_a| ≤ |dx_a|·|cos θ| + |dx_b|·|sin θ| (and symmetrically for b).
func RopeProp(dx []float64, pos, nHeads, headDim int, theta float64, layout int) []float64 {
	out := make([]float64, len(dx))
	for h := 0; h < nHeads; h++ {
		base := h * headDim
		for i := 0; i < headDim/2; i++ {
			a, b := reference.RopePairs(layout, headDim, i)
			s, c := math.Sincos(reference.RopeAngle(pos, i, headDim, theta))
			s, c = math.Abs(s), math.Abs(c)
			da, db := math.Abs(dx[base+a]), math.Abs(dx[base+b])
			out[base+a] = da*c + db*s
			out[base+b] = da*s + db*c
		}
	}
	return out
}

// Scores returns the local bound of the attention scores of one query row
// (layout [nHeads, nKV]); scores are stored in f32:
//
//	tol_hj = C·(UAcc·|ŝ_hj| + γ̃_d·scale·Σ_c |q_hc·k_jc|) + floor
//
// Masked entries (j > qPos) get 0: both sides must hold -Inf exactly.
func Scores(q []float64, kRows [][]float64, ref []float64, nHeads, nKVHeads, headDim, qPos int, scale float64) []float64 {
	nkv := len(kRows)
	g := Gamma(headDim)
	tol := make([]float64, len(ref))
	for h := 0; h < nHeads; h++ {
		kvh := reference.KVHead(h, nHeads, nKVHeads)
		for j := 0; j < nkv && j <= qPos; j++ {
			var s float64
			for c := 0; c < headDim; c++ {
				s += math.Abs(q[h*headDim+c] * kRows[j][kvh*headDim+c])
			}
			tol[h*nkv+j] = C*(UAcc*math.Abs(ref[h*nkv+j])+g*scale*s) + floor(dtype.F32)
		}
	}
	return tol
}

// ScoresProp is the exact change of scale·q·k when q moves by dq and the
// cache rows by dk: scale·Σ(|dq||k| + |q||dk| + |dq||dk|).
func ScoresProp(q, dq []float64, kRows, dkRows [][]float64, nHeads, nKVHeads, headDim, qPos int, scale float64) []float64 {
	nkv := len(kRows)
	out := make([]float64, nHeads*nkv)
	for h := 0; h < nHeads; h++ {
		kvh := reference.KVHead(h, nHeads, nKVHeads)
		for j := 0; j < nkv && j <= qPos; j++ {
			var s float64
			for c := 0; c < headDim; c++ {
				qa, dqa := math.Abs(q[h*headDim+c]), math.Abs(dq[h*headDim+c])
				ka, dka := math.Abs(kRows[j][kvh*headDim+c]), math.Abs(dkRows[j][kvh*headDim+c])
				s += dqa*ka + qa*dka + dqa*dka
			}
			out[h*nkv+j] = scale * s
		}
	}
	return out
}

// Softmax returns the local bound of the probabilities of rows rows of n
// keys (f32):
//
//	tol_j = C·p̂_j·(8·UAcc + UAcc·|s_j − max s| + γ̃_n) + floor
//
// 8 ulp cover expf and the division, UAcc·|s_j−m| the rounding of the
// subtraction magnified by exp, γ̃_n the sum of the n exponentials.
func Softmax(s, ref []float64, rows, n int) []float64 {
	tol := make([]float64, len(s))
	g := Gamma(n)
	for r := 0; r < rows; r++ {
		row := s[r*n : (r+1)*n]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		for j, v := range row {
			if math.IsInf(v, -1) {
				continue
			}
			tol[r*n+j] = C*ref[r*n+j]*(8*UAcc+UAcc*math.Abs(v-m)+g) + floor(dtype.F32)
		}
	}
	return tol
}

// SoftmaxProp is the exact change of softmax when the scores move by ds:
// p'_j/p_j = e^{δ_j}/Σ_k p_k e^{δ_k} lies in [e^{δ_j−δmax}, e^{δ_j−δmin}],
// so |dp_j| ≤ p_j·max(|e^{δ_j−δmax}−1|, |e^{δ_j−δmin}−1|), δ over the
// unmasked keys. p is the reference probabilities of one path.
func SoftmaxProp(p, ds []float64, rows, n int) []float64 {
	out := make([]float64, len(p))
	for r := 0; r < rows; r++ {
		lo, hi := math.Inf(1), math.Inf(-1)
		for j := 0; j < n; j++ {
			d := ds[r*n+j]
			if math.IsNaN(d) {
				continue
			}
			lo, hi = math.Min(lo, d), math.Max(hi, d)
		}
		for j := 0; j < n; j++ {
			d := ds[r*n+j]
			if math.IsNaN(d) {
				continue
			}
			a := math.Abs(math.Expm1(d - hi))
			b := math.Abs(math.Expm1(d - lo))
			out[r*n+j] = p[r*n+j] * math.Max(a, b)
		}
	}
	return out
}

// PV returns the local bound of the attention output of one query row:
//
//	tol_hc = C·(u_out·|ô_hc| + γ̃_n·Σ_j p_hj·|v_jc|) + floor
func PV(p []float64, vRows [][]float64, ref []float64, nHeads, nKVHeads, headDim int, dt dtype.Dtype) []float64 {
	nkv := len(vRows)
	g := Gamma(nkv)
	u := dt.UnitRoundoff()
	tol := make([]float64, len(ref))
	for h := 0; h < nHeads; h++ {
		kvh := reference.KVHead(h, nHeads, nKVHeads)
		for c := 0; c < headDim; c++ {
			i := h*headDim + c
			tol[i] = C*(u*math.Abs(ref[i])+g*absPV(p, vRows, h, kvh*headDim+c)) + floor(dt)
		}
	}
	return tol
}

// PVProp is the exact change of Σ_j p_j·v_j when p moves by dp and the V
// rows by dv: Σ_j |dp_j||v_j| + |p_j||dv_j| + |dp_j||dv_j|.
func PVProp(p, dp []float64, vRows, dvRows [][]float64, nHeads, nKVHeads, headDim int) []float64 {
	nkv := len(vRows)
	out := make([]float64, nHeads*headDim)
	for h := 0; h < nHeads; h++ {
		kvh := reference.KVHead(h, nHeads, nKVHeads)
		for j := 0; j < nkv; j++ {
			pa, dpa := math.Abs(p[h*nkv+j]), math.Abs(dp[h*nkv+j])
			if math.IsNaN(dpa) {
				dpa = math.Inf(1)
			}
			for c := 0; c < headDim; c++ {
				va, dva := math.Abs(vRows[j][kvh*headDim+c]), math.Abs(dvRows[j][kvh*headDim+c])
				out[h*headDim+c] += dpa*va + pa*dva + dpa*dva
			}
		}
	}
	return out
}

// absPV is Σ_j |p_hj·v_jc| over the keys of vRows: the magnitude that
// P·V's accumulation and rounding errors scale with (column col of V).
func absPV(p []float64, vRows [][]float64, h, col int) float64 {
	nkv := len(vRows)
	var s float64
	for j := 0; j < nkv; j++ {
		s += math.Abs(p[h*nkv+j] * vRows[j][col])
	}
	return s
}
