package tolerance

import (
	"fmt"
	"math"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/reference"
)

// Contract is the accuracy contract a kernel library is held to.
//
// Strict: f32 accumulation and exactly one rounding to the storage dtype,
// at the end of each stage: the local bounds of this package as they are
// (Linear, RMSNorm, Rope, Scores, Softmax, PV, Attention).
//
// Engine: what production inference engines do and their users accept.
// Accumulation is still f32 (an f16/bf16 accumulator fails either
// contract), but each stage may round up to EngineRoundings intermediate
// results to the storage dtype. A stage's bound is then strict + its
// Engine* term below.
type Contract int

const (
	// Strict: f32 accumulation, one rounding to dtype per stage.
	Strict Contract = iota
	// Engine: Strict plus EngineRoundings extra roundings to dtype of an
	// intermediate result per stage.
	Engine
)

// String returns "strict" or "engine".
func (c Contract) String() string {
	switch c {
	case Strict:
		return "strict"
	case Engine:
		return "engine"
	}
	return fmt.Sprintf("contract(%d)", int(c))
}

// ParseContract returns the Contract named s ("strict", "engine").
func ParseContract(s string) (Contract, error) {
	for _, c := range []Contract{Strict, Engine} {
		if c.String() == s {
			return c, nil
		}
	}
	return -1, fmt.Errorf("unknown contract %q (valid: strict, engine)", s)
}

// EngineRoundings is the number of extra roundings of an intermediate
// result to the storage dtype that the engine contract allows per stage.
// Engines really do this: a bias added after a product that was already
// rounded to dtype (cuBLAS with beta = 1 on a dtype C, or a separate add
// kernel); split-K partials stored in the output dtype and summed; the
// probabilities rounded to dtype before P·V (FlashAttention-2 feeds its
// f16/bf16 MMA so); RMSNorm that normalizes, casts to dtype, then multiplies
// by the weight (HuggingFace's LlamaRMSNorm); RoPE with cos/sin tables
// stored in dtype (HuggingFace's rotary embedding). Two covers any one of
// those plus one more in the same stage.
//
// A rounding of an intermediate t to dtype moves it by at most u_out·|t|,
// and the stages are linear in t (or, for RMSNorm, RoPE and P·V, linear in
// each rounded factor), so each Engine* term is
//
//	engine_i = EngineRoundings·C·u_out·M_i
//
// with M_i a bound on the magnitude of the rounded intermediates' effect
// on element i, stated per stage. For f32 storage u_out = 2^-24 and the
// terms are correspondingly tiny.
const EngineRoundings = 2

// engine returns EngineRoundings·C·u_out·M.
func engine(m float64, dt dtype.Dtype) float64 {
	return EngineRoundings * C * dt.UnitRoundoff() * m
}

// EngineLinear is the engine term of y = x·Wᵀ + b:
//
//	M_j = |ŷ_j| + |ŷ_j − b_j|
//
// |ŷ_j − b_j| is the product x·Wᵀ before the bias, which an engine may
// round to dtype before adding b (or store as split-K partials, each at
// most of that size to first order); |ŷ_j| is the rounding of the sum.
// When the bias cancels most of the product, the first term is what
// matters and strict's u_out·|ŷ_j| cannot cover it. bias may be nil.
func EngineLinear(ref, bias []float64, dt dtype.Dtype) []float64 {
	out := make([]float64, len(ref))
	for j, y := range ref {
		p := y
		if bias != nil {
			p = y - bias[j]
		}
		out[j] = engine(math.Abs(y)+math.Abs(p), dt)
	}
	return out
}

// EngineRMSNorm is the engine term of y = x·r·w:
//
//	M_i = |ŷ_i|
//
// Normalize, cast to dtype, multiply by w: the cast moves x·r by
// u_out·|x_i·r|, which the product scales to u_out·|ŷ_i|.
func EngineRMSNorm(ref []float64, dt dtype.Dtype) []float64 {
	out := make([]float64, len(ref))
	for i, y := range ref {
		out[i] = engine(math.Abs(y), dt)
	}
	return out
}

// EngineRope is the engine term of a rotation, x a row of nHeads heads:
//
//	M_e = |x_a| + |x_b|
//
// for the pair (a, b) element e belongs to (reference.RopePairs). cos and
// sin tables in dtype move each by u_out (|cos|, |sin| ≤ 1), so
// y_a = x_a·cos − x_b·sin moves by u_out·(|x_a| + |x_b|); the two products
// rounded to dtype before their sum, by as much again.
func EngineRope(x []float64, nHeads, headDim, layout int, dt dtype.Dtype) []float64 {
	out := make([]float64, len(x))
	for h := 0; h < nHeads; h++ {
		base := h * headDim
		for i := 0; i < headDim/2; i++ {
			a, b := reference.RopePairs(layout, headDim, i)
			m := engine(math.Abs(x[base+a])+math.Abs(x[base+b]), dt)
			out[base+a], out[base+b] = m, m
		}
	}
	return out
}

// EngineScores is the engine term of the attention scores:
//
//	M = |ŝ|
//
// An engine may compute q·Kᵀ into a dtype result (a GEMM with dtype C) and
// upcast it: one rounding of the score. Masked (-Inf) entries get 0: they
// must stay exactly -Inf.
func EngineScores(ref []float64, dt dtype.Dtype) []float64 {
	out := make([]float64, len(ref))
	for i, s := range ref {
		if math.IsInf(s, -1) {
			continue
		}
		out[i] = engine(math.Abs(s), dt)
	}
	return out
}

// EngineSoftmax is the engine term of the probabilities:
//
//	M = p̂
//
// The probabilities (or the exponentials before the division) stored in
// dtype: a relative u_out each.
func EngineSoftmax(ref []float64, dt dtype.Dtype) []float64 {
	out := make([]float64, len(ref))
	for i, p := range ref {
		out[i] = engine(math.Abs(p), dt)
	}
	return out
}

// EnginePV is the engine term of Σ_j p_j·v_j, p laid out [nHeads, nKV]:
//
//	M_hc = Σ_j p_hj·|v_jc| + |ô_hc|
//
// P rounded to dtype before the product moves the sum by at most
// u_out·Σ_j p_j·|v_jc|; split-K partials (over key ranges) stored in dtype
// are each at most that large; a final extra rounding costs u_out·|ô|.
func EnginePV(p []float64, vRows [][]float64, ref []float64, nHeads, nKVHeads, headDim int, dt dtype.Dtype) []float64 {
	out := make([]float64, len(ref))
	for h := 0; h < nHeads; h++ {
		kvh := reference.KVHead(h, nHeads, nKVHeads)
		for c := 0; c < headDim; c++ {
			i := h*headDim + c
			out[i] = engine(absPV(p, vRows, h, kvh*headDim+c)+math.Abs(ref[i]), dt)
		}
	}
	return out
}

// EngineAttention is the engine term of fused attention's output (the LSE
// stays f32 in every contract and gets none):
//
//	M_hc = Σ_j p_j·|v_jc| + |ô_hc|
//
// with p_j the exact probabilities of head h over keys j ≤ qPos. As for
// EnginePV: FlashAttention-2 rounds the (unnormalized, ≤ 1) probabilities
// to dtype for its P·V MMA while summing the normalizer from the f32
// values, which moves the output by at most u_out·Σ_j p_j·|v_jc|; a
// split-KV kernel may store its normalized partial outputs in dtype, each
// bounded by the same sum, and merge them with one more rounding, u_out·|ô|.
func EngineAttention(q []float64, kRows, vRows [][]float64, out []float64, nHeads, nKVHeads, headDim, qPos int, scale float64, dt dtype.Dtype) []float64 {
	n := min(qPos+1, len(kRows))
	res := make([]float64, nHeads*headDim)
	if n <= 0 {
		return res
	}
	s := make([]float64, n)
	p := make([]float64, n)
	for h := 0; h < nHeads; h++ {
		kvh := reference.KVHead(h, nHeads, nKVHeads)
		attnScores(q, kRows, h, kvh, headDim, n, scale, s, p)
		for c := 0; c < headDim; c++ {
			var t float64
			for j := 0; j < n; j++ {
				t += p[j] * math.Abs(vRows[j][kvh*headDim+c])
			}
			i := h*headDim + c
			res[i] = engine(t+math.Abs(out[i]), dt)
		}
	}
	return res
}
