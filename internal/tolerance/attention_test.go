package tolerance

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/assert"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/reference"
)

// flashOpts describes one simulated fused attention kernel: how it splits
// the keys, how it exponentiates and merges, and (for the tightness tests)
// which bug it has.
type flashOpts struct {
	chunk int // keys per KV split; 0 = random boundaries
	block int // keys per online-softmax block inside a split
	// variant 0: s = fl(q·k·scale), expf(s − r), splits merged by exp(m_s − m).
	// variant 1: FlashAttention-2: raw scores, exp2f(fma(s, scale·log2e,
	// −fl(r·scale·log2e))), splits merged through their LSEs.
	// variant 2: as 0 with __expf: exp2f(fl(x·log2e)).
	variant int
	roundP  dtype.Dtype // P rounded to this dtype before P·V (engine), if setP
	setP    bool
	// bugs
	dropLast, noScale, noRescale, gqaMod, f16Acc bool
	lseSkipLast                                  bool // the last split left out of the LSE only
}

// expNoisy is an f32 exp (or exp2) with an error of up to 2 ulp, as a GPU's
// expf/exp2f has, plus its final rounding.
func expNoisy(r *rand.Rand, x float32, base2 bool) float32 {
	var v float64
	if base2 {
		v = math.Exp2(float64(x))
	} else {
		v = math.Exp(float64(x))
	}
	return float32(v * (1 + (2*r.Float64()-1)*2*UAcc))
}

func r16(v float32) float32 { return float32(dtype.F16.Round(float64(v))) }

// flashF32 simulates a split-KV FlashAttention kernel in f32 for one query
// row: the visible keys are cut into splits, each visited in random order
// in blocks with a running max and rescaling, then the splits are merged in
// random order. The output is rounded to dt, the LSE is f32.
func flashF32(r *rand.Rand, q []float64, kRows, vRows [][]float64, nHeads, nKV, d, qPos int, scale float64, dt dtype.Dtype, o flashOpts) (out, lse []float64) {
	out = make([]float64, nHeads*d)
	lse = make([]float64, nHeads)
	n := qPos + 1
	if o.dropLast {
		n--
	}
	scale32 := float32(scale)
	if o.noScale {
		scale32 = 1
	}
	const log2e = 1.4426950408889634
	c2 := float32(float64(scale32) * log2e) // FA2's softmax_scale_log2
	log2e32 := float32(log2e)
	acc := func(v float32) float32 {
		if o.f16Acc {
			return r16(v)
		}
		return v
	}
	// exponent returns exp(x − r) for a score x and a max r in score units.
	exponent := func(x, m float32) float32 {
		switch o.variant {
		case 1:
			ms := float32(float64(m) * float64(c2))
			return expNoisy(r, float32(float64(x)*float64(c2)-float64(ms)), true)
		case 2:
			return expNoisy(r, float32(x-m)*log2e32, true)
		}
		return expNoisy(r, x-m, false)
	}
	// rescale returns exp(prev − cur) for two maxima in score units.
	rescale := func(prev, cur float32) float32 {
		if o.variant == 1 {
			return expNoisy(r, (prev-cur)*c2, true)
		}
		return exponent(prev, cur)
	}
	for h := 0; h < nHeads; h++ {
		g := h / (nHeads / nKV)
		if o.gqaMod {
			g = h % nKV
		}
		s := make([]float32, n)
		perm := r.Perm(d)
		for j := 0; j < n; j++ {
			var dot float32
			for _, c := range perm {
				dot += float32(q[h*d+c]) * float32(kRows[j][g*d+c])
			}
			if o.variant == 1 {
				s[j] = dot // raw; scaled inside the exponent
			} else {
				s[j] = dot * scale32
			}
		}
		// Split boundaries.
		var cuts []int
		if o.chunk > 0 {
			for b := 0; b < n; b += o.chunk {
				cuts = append(cuts, b)
			}
		} else {
			cuts = append(cuts, 0)
			for b := 1; b < n; b++ {
				if r.IntN(8) == 0 {
					cuts = append(cuts, b)
				}
			}
		}
		cuts = append(cuts, n)
		type part struct {
			m, l float32
			o    []float32
		}
		parts := make([]part, 0, len(cuts))
		for ci := 0; ci+1 < len(cuts); ci++ {
			lo, hi := cuts[ci], cuts[ci+1]
			keys := r.Perm(hi - lo)
			rm := float32(math.Inf(-1))
			var l float32
			acco := make([]float32, d)
			for b := 0; b < len(keys); b += o.block {
				blk := keys[b:min(b+o.block, len(keys))]
				bm := rm
				for _, kk := range blk {
					bm = max(bm, s[lo+kk])
				}
				if bm > rm && !math.IsInf(float64(rm), -1) {
					a := rescale(rm, bm)
					l = acc(l * a)
					for c := range acco {
						acco[c] = acc(acco[c] * a)
					}
				}
				rm = bm
				bo := make([]float32, d)
				var bl float32
				for _, kk := range blk {
					j := lo + kk
					w := exponent(s[j], rm)
					bl = acc(bl + w)
					wp := w
					if o.setP {
						wp = float32(o.roundP.Round(float64(w)))
					}
					for c := range bo {
						bo[c] = acc(bo[c] + wp*float32(vRows[j][g*d+c]))
					}
				}
				l = acc(l + bl)
				for c := range acco {
					acco[c] = acc(acco[c] + bo[c])
				}
			}
			parts = append(parts, part{rm, l, acco})
		}
		order := r.Perm(len(parts))
		var lseh float32
		res := make([]float32, d)
		if o.variant == 1 {
			// FA2 split-KV combine: lse_s = m_s·scale + logf(l_s), o_s/l_s.
			lses := make([]float32, len(parts))
			lmax := float32(math.Inf(-1))
			for i, p := range parts {
				lses[i] = p.m*scale32 + float32(math.Log(float64(p.l)))
				lmax = max(lmax, lses[i])
			}
			var sum float32
			for _, i := range order {
				sum += expNoisy(r, lses[i]-lmax, false)
			}
			lseh = float32(math.Log(float64(sum))) + lmax
			for _, i := range order {
				a := expNoisy(r, lses[i]-lseh, false)
				if o.noRescale {
					a = 1
				}
				for c := range res {
					res[c] += a * (parts[i].o[c] / parts[i].l)
				}
			}
		} else {
			m := float32(math.Inf(-1))
			for _, p := range parts {
				m = max(m, p.m)
			}
			var L, Llse float32
			for _, i := range order {
				a := rescale(parts[i].m, m)
				if o.noRescale {
					a = 1
				}
				L += a * parts[i].l
				if !o.lseSkipLast || i != len(parts)-1 {
					Llse += a * parts[i].l
				}
				for c := range res {
					res[c] += a * parts[i].o[c]
				}
			}
			for c := range res {
				res[c] /= L
			}
			lseh = m + float32(math.Log(float64(Llse)))
		}
		for c := range res {
			out[h*d+c] = dt.Round(float64(res[c]))
		}
		lse[h] = float64(lseh)
	}
	return out, lse
}

// attnInputs draws q, K, V rounded to dt: "normal" (N(0,1)), "large_qk"
// (scores of up to about ±30) or "positive" (uniform [0, 2), no
// cancellation anywhere).
func attnInputs(r *rand.Rand, kind string, nHeads, nKV, d, rows int, dt dtype.Dtype) (q []float64, kRows, vRows [][]float64) {
	draw := func(n int, sigma float64) []float64 {
		x := make([]float64, n)
		for i := range x {
			if kind == "positive" {
				x[i] = dt.Round(2 * r.Float64())
			} else {
				x[i] = dt.Round(sigma * r.NormFloat64())
			}
		}
		return x
	}
	sigma := 1.0
	if kind == "large_qk" {
		sigma = math.Sqrt(10)
	}
	q = draw(nHeads*d, sigma)
	kRows = make([][]float64, rows)
	vRows = make([][]float64, rows)
	for j := range kRows {
		kRows[j] = draw(nKV*d, sigma)
		vRows[j] = draw(nKV*d, 1)
	}
	return q, kRows, vRows
}

// attnRatio returns the worst err/tol over the output and over the LSE.
func attnRatio(out, lse, refO, refL, tolO, tolL []float64) (ro, rl float64) {
	for i := range out {
		ro = math.Max(ro, math.Abs(out[i]-refO[i])/tolO[i])
	}
	for i := range lse {
		rl = math.Max(rl, math.Abs(lse[i]-refL[i])/tolL[i])
	}
	return ro, rl
}

// TestAttentionBoundHoldsForSplitKV: simulated f32 split-KV kernels, with
// splits of 1 key, 64 keys and random boundaries, blocks of 1, 16 and 64
// keys, keys in random order, three exp/merge variants, on normal,
// large-score and positive inputs, stay within the bound for f32, f16 and
// bf16 outputs, and so does their LSE.
func TestAttentionBoundHoldsForSplitKV(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	const nHeads, nKV = 4, 2
	worst := map[string]float64{}
	for _, dt := range dtype.All {
		for _, kind := range []string{"normal", "large_qk", "positive"} {
			for trial := 0; trial < 24; trial++ {
				d := []int{16, 64, 128}[trial%3]
				rows := []int{1, 2, 17, 64, 65, 200, 1000}[r.IntN(7)]
				qPos := rows - 1 - r.IntN(min(rows, 3)) // some cache rows masked
				opts := flashOpts{
					chunk:   []int{1, 64, 0, 7}[trial%4],
					block:   []int{1, 16, 64}[r.IntN(3)],
					variant: r.IntN(3),
				}
				q, kRows, vRows := attnInputs(r, kind, nHeads, nKV, d, rows, dt)
				scale := 1 / math.Sqrt(float64(d))
				refO, refL := reference.Attention(q, kRows, vRows, nHeads, nKV, d, qPos, scale)
				tolO, tolL := Attention(q, kRows, vRows, refO, refL, nHeads, nKV, d, qPos, scale, dt)
				out, lse := flashF32(r, q, kRows, vRows, nHeads, nKV, d, qPos, scale, dt, opts)
				ro, rl := attnRatio(out, lse, refO, refL, tolO, tolL)
				key := dt.String() + "/" + kind
				worst[key] = math.Max(worst[key], ro)
				worst[key+"/lse"] = math.Max(worst[key+"/lse"], rl)
				if ro > 1 || rl > 1 {
					t.Errorf("%s d=%d n=%d %+v: err/tol out %.3g lse %.3g > 1", key, d, qPos+1, opts, ro, rl)
				}
			}
		}
	}
	t.Logf("worst err/tol of correct kernels: %v", worst)
}

// TestAttentionBoundCatchesBugs: each real fused-attention bug exceeds the
// bound on its worst element (ratio err/tol > 1), for f32 and bf16 outputs
// (and f16 for f16 accumulation).
func TestAttentionBoundCatchesBugs(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	const nHeads, nKV, d, rows = 4, 2, 64, 100
	bugs := []struct {
		name string
		opts flashOpts
		dts  []dtype.Dtype
	}{
		{"drop last key", flashOpts{dropLast: true}, dtype.All},
		{"missing 1/sqrt(d)", flashOpts{noScale: true}, dtype.All},
		{"splits merged without rescaling", flashOpts{noRescale: true}, dtype.All},
		{"GQA h%nKV", flashOpts{gqaMod: true}, dtype.All},
		{"P·V and l accumulated in f16", flashOpts{f16Acc: true}, []dtype.Dtype{dtype.F32, dtype.F16}},
	}
	for _, b := range bugs {
		for _, dt := range b.dts {
			for _, variant := range []int{0, 1} {
				worst := 0.0
				for trial := 0; trial < 3; trial++ {
					o := b.opts
					o.chunk, o.block, o.variant = 16, 16, variant
					q, kRows, vRows := attnInputs(r, "normal", nHeads, nKV, d, rows, dt)
					scale := 1 / math.Sqrt(float64(d))
					refO, refL := reference.Attention(q, kRows, vRows, nHeads, nKV, d, rows-1, scale)
					tolO, tolL := Attention(q, kRows, vRows, refO, refL, nHeads, nKV, d, rows-1, scale, dt)
					out, lse := flashF32(r, q, kRows, vRows, nHeads, nKV, d, rows-1, scale, dt, o)
					ro, _ := attnRatio(out, lse, refO, refL, tolO, tolL)
					worst = math.Max(worst, ro)
				}
				t.Logf("%s %v variant %d: worst err/tol %.3g", b.name, dt, variant, worst)
				if worst <= 1 {
					t.Errorf("%s %v variant %d: worst err/tol %.3g, the bound hides the bug", b.name, dt, variant, worst)
				}
			}
		}
	}
}

// TestAttentionLSEBoundCatchesSkippedSplit: an LSE that leaves the last
// split out (however small: here 1 key of 65, p ≈ 1/65) exceeds tolLSE.
func TestAttentionLSEBoundCatchesSkippedSplit(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	const nHeads, nKV, d = 4, 2, 64
	for _, rows := range []int{65, 100} {
		q, kRows, vRows := attnInputs(r, "normal", nHeads, nKV, d, rows, dtype.F32)
		scale := 1 / math.Sqrt(float64(d))
		refO, refL := reference.Attention(q, kRows, vRows, nHeads, nKV, d, rows-1, scale)
		tolO, tolL := Attention(q, kRows, vRows, refO, refL, nHeads, nKV, d, rows-1, scale, dtype.F32)
		out, lse := flashF32(r, q, kRows, vRows, nHeads, nKV, d, rows-1, scale, dtype.F32, flashOpts{chunk: 64, block: 64, lseSkipLast: true})
		ro, rl := attnRatio(out, lse, refO, refL, tolO, tolL)
		t.Logf("n=%d: LSE without the last split: err/tol out %.3g lse %.3g", rows, ro, rl)
		if ro > 1 {
			t.Errorf("n=%d: the output (correct) exceeds its bound: %.3g", rows, ro)
		}
		if rl <= 1 {
			t.Errorf("n=%d: LSE without the last split hides in tolLSE (%.3g)", rows, rl)
		}
	}
}

// TestExactProp checks |refD − refP| with its special cases.
func TestExactProp(t *testing.T) {
	inf := math.Inf(1)
	d := []float64{1, -2, inf, inf, math.NaN(), 3, math.Inf(-1)}
	p := []float64{1.5, -2, inf, 1, 0, math.NaN(), math.Inf(-1)}
	want := []float64{0.5, 0, 0, inf, math.NaN(), math.NaN(), 0}
	assert.Empty(t, cmp.Diff(want, ExactProp(d, p), cmpopts.EquateNaNs()), "ExactProp (-want +got)")
}
