package tolerance

import (
	"math"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/reference"
)

// Attention returns the local bounds of fused attention of one query row
// (reference.Attention): tolOut for the output [nHeads·headDim], rounded
// once to dt, and tolLSE for the log-sum-exp [nHeads], kept in f32. out and
// lse are the float64 reference on the kernel's inputs.
//
// Kernel model. Everything is f32. The n = min(qPos+1, len(kRows))
// visible keys are split into any number of chunks with any boundaries
// (FlashAttention's key blocks, flash decoding's KV splits, both nested),
// visited in any order.
// A chunk keeps a running max r, weights w_j = exp(s̃_j − r), l = Σ w_j and
// o = Σ w_j·v_j, and rescales l and o by exp(r − r') when its max grows to r';
// chunks are merged by rescaling with exp(m_s − m) (or, equivalently, through
// their log-sum-exps lse_s); the result is o/l, and lse = m + ln l.
//
// Notation, per head h: s_j the exact scores, m = max_j s_j, p_j the exact
// probabilities, ô and lse the reference, n the visible keys.
//
//	e_j  = UAcc·|s_j| + γ̃_d·scale·Σ_c |q_c·k_jc|      f32 score error (as Scores)
//	κ_j  = (8 + 2·(|s_j − m| + ln n) + 3·max(|s_j|, |m| + ln n))·UAcc
//	ē    = Σ_k p_k·(e_k + κ_k)
//	γ̃    = γ̃_{4n}
//
//	tolOut_hc = C·(u_out·|ô_hc| + Σ_j p_j·|v_jc|·(e_j + κ_j + ē + 2·γ̃)) + floor(dt)
//	tolLSE_h  = C·(ē + γ̃ + (2 + 2·ln n + 3·|lse_h|)·UAcc) + floor(f32)
//
// Derivation. Whatever the split, key j ends up with a weight
// W_j = exp(s̃_j − m̃)·(1 + η_j) relative to the computed global max m̃, and
// out = Σ W_j·v_j / Σ W_j, lse = m̃ + ln Σ W_j. The max cancels exactly from
// both (out depends on the W_j only through their ratios, and
// m̃ + ln Σ exp(s̃_j − m̃) = ln Σ exp(s̃_j)), so neither the choice of maxima
// nor their errors matter except through η_j:
//
//   - Score error: |s̃_j − s_j| ≤ e_j, as for the unfused QK stage.
//   - Exponent arguments, κ_j. Every max or lse the kernel forms on the way
//     from key j to the result (the running max r when j was exponentiated,
//     the later maxima it was rescaled to, the chunk's m_s or lse_s, the
//     global m or lse) lies in [s_j, m + ln n], in increasing order along the
//     way. Each exp argument is a difference of two consecutive ones and is
//     rounded with relative error UAcc, so the absolute errors telescope to
//     UAcc·(m + ln n − s_j) ≤ UAcc·(|s_j − m| + ln n); twice that covers
//     kernels that multiply the argument by log2 e (and scale) in f32 for
//     exp2f or __expf. Besides, up to three of those quantities are
//     rounded on their own (FlashAttention-2's pre-scaled max r·scale·log2 e,
//     lse_s and lse of the split-KV merge), each by UAcc times its magnitude,
//     at most max(|s_j|, |m| + ln n); the f32 constant scale·log2 e
//     shifts every score by a relative UAcc, within that |s_j|. 8 ulp cover
//     the element's expf (2 ulp), the merge factor's exp and product
//     (3 ulp), the per-chunk normalization o_s/l_s and the final division
//     (1 ulp each), and one spare; rescales inside a chunk are counted
//     with the sums below.
//   - Softmax perturbation. With δ_j = (s̃_j − s_j) + η_j, the computed
//     probabilities are p̃_j = p_j·e^{δ_j}/Σ_k p_k·e^{δ_k}, so to first order
//     δ log p̃_j = δ_j − Σ_k p_k·δ_k and |p̃_j − p_j| ≤ p_j·(e_j + κ_j + ē). ē
//     is the p-weighted mean of the per-key errors, not their max: a key with
//     p_k ≈ 0 does not move the normalizer.
//   - Sums. Σ W_j·v_jc and l = Σ W_j are f32 sums of n terms in an
//     arbitrary order and tree. On its way to the result each term passes
//     at most n additions and at most n rescales of the partial sum holding
//     it (one per growth of a running max; a rescale that leaves the max
//     unchanged multiplies by exp(0) = 1 exactly). A rescale by
//     exp(r − r') errs like one more rounding of every term in that partial
//     sum, by its exp's 2 ulp and the product's 1: 3 roundings. So a term
//     sees at most 4n independent roundings, γ̃ = γ̃_{4n} = 2·γ̃_n. The
//     numerator errs by γ̃·Σ_j p_j|v_jc|; the normalizer (positive terms) by
//     a relative γ̃, which moves o by γ̃·|ô| ≤ γ̃·Σ_j p_j|v_jc|: 2·γ̃ in all.
//   - Output: one rounding to dt, u_out·|ô|.
//   - LSE: m̃ + ln Σ W_j = ln Σ exp(s̃_j)·(1 + η_j), off by at most
//     Σ p_j·(e_j + κ_j) = ē; the sum l adds its relative γ̃; logf errs by an
//     ulp of ln l ≤ ln n, and adding m (rounded pre-scaled, |m| ≤ |lse| + ln n)
//     and, for exp2-based kernels, the conversion to natural log by ln 2 cost
//     an ulp of lse each: (2 + 2·ln n + 3·|lse|)·UAcc.
//
// The bound holds for any split, so decode's split-KV kernel and prefill's
// FlashAttention kernel are each within it of the same reference, whatever
// their chunking. It does not allow the probabilities to be rounded to dt
// before P·V (FlashAttention-2 with f16/bf16 MMA inputs): that is the engine
// contract's EngineAttention.
func Attention(q []float64, kRows, vRows [][]float64, out, lse []float64, nHeads, nKVHeads, headDim, qPos int, scale float64, dt dtype.Dtype) (tolOut, tolLSE []float64) {
	n := min(qPos+1, len(kRows))
	tolOut = make([]float64, nHeads*headDim)
	tolLSE = make([]float64, nHeads)
	if n <= 0 {
		for i := range tolOut {
			tolOut[i] = floor(dt)
		}
		for h := range tolLSE {
			tolLSE[h] = floor(dtype.F32)
		}
		return tolOut, tolLSE
	}
	u := dt.UnitRoundoff()
	gd := Gamma(headDim)
	g := Gamma(4 * n)
	ln := math.Log(float64(n))
	s := make([]float64, n)
	p := make([]float64, n)
	ek := make([]float64, n) // e_j + κ_j
	for h := 0; h < nHeads; h++ {
		kvh := reference.KVHead(h, nHeads, nKVHeads)
		m := attnScores(q, kRows, h, kvh, headDim, n, scale, s, p)
		var ebar float64
		for j := 0; j < n; j++ {
			var a float64
			for c := 0; c < headDim; c++ {
				a += math.Abs(q[h*headDim+c] * kRows[j][kvh*headDim+c])
			}
			e := UAcc*math.Abs(s[j]) + gd*scale*a
			kappa := (8 + 2*(math.Abs(s[j]-m)+ln) + 3*math.Max(math.Abs(s[j]), math.Abs(m)+ln)) * UAcc
			ek[j] = e + kappa
			ebar += p[j] * ek[j]
		}
		for c := 0; c < headDim; c++ {
			var t float64
			for j := 0; j < n; j++ {
				t += p[j] * math.Abs(vRows[j][kvh*headDim+c]) * (ek[j] + ebar + 2*g)
			}
			i := h*headDim + c
			tolOut[i] = C*(u*math.Abs(out[i])+t) + floor(dt)
		}
		tolLSE[h] = C*(ebar+g+(2+2*ln+3*math.Abs(lse[h]))*UAcc) + floor(dtype.F32)
	}
	return tolOut, tolLSE
}

// attnScores fills s[:n] with head h's exact scaled scores against KV head
// kvh and p[:n] with their softmax; it returns the max score.
func attnScores(q []float64, kRows [][]float64, h, kvh, headDim, n int, scale float64, s, p []float64) float64 {
	m := math.Inf(-1)
	for j := 0; j < n; j++ {
		var d float64
		for c := 0; c < headDim; c++ {
			d += q[h*headDim+c] * kRows[j][kvh*headDim+c]
		}
		s[j] = scale * d
		m = math.Max(m, s[j])
	}
	var l float64
	for j := 0; j < n; j++ {
		p[j] = math.Exp(s[j] - m)
		l += p[j]
	}
	for j := 0; j < n; j++ {
		p[j] /= l
	}
	return m
}

// ExactProp is the propagated bound of a stage whose float64 reference is
// evaluated on each path's own inputs: |refD − refP| elementwise. The pair
// check |d − p| ≤ local_d + local_p + |f(in_d) − f(in_p)| then holds by the
// triangle inequality (|d − f(in_d)| ≤ local_d, |p − f(in_p)| ≤ local_p)
// without any first-order expansion, and the exact change is the tightest
// valid propagated bound. The fused attention stage uses it: its inputs
// (q, the K and V caches) enter through a softmax whose first-order bound
// would be loose. Elements equal on both sides, equal infinities included,
// give 0; a NaN on either side gives NaN (the check then fails loudly).
func ExactProp(refD, refP []float64) []float64 {
	out := make([]float64, len(refD))
	for i, d := range refD {
		p := refP[i]
		switch {
		case math.IsNaN(d) || math.IsNaN(p):
			out[i] = math.NaN()
		case d == p:
			out[i] = 0
		default:
			out[i] = math.Abs(d - p)
		}
	}
	return out
}
