package harness

import (
	"fmt"
	"math"
	"strings"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/reference"
	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/tolerance"
)

// Kernels is what the stage table launches through: the ABI's stage entry
// points and capability query. *gpapi.Lib satisfies it.
type Kernels interface {
	Has(gpapi.Capability) bool
	RMSNorm(dt int32, x, w, y uintptr, rows, dim int, eps float32) (gpapi.Launch, error)
	Linear(dt int32, route gpapi.Route, x, w, bias, y uintptr, m, n, k int) (gpapi.Launch, error)
	Rope(dt int32, layout gpapi.RopeLayout, x, y, pos uintptr, rows, nHeads, headDim int, theta float32) (gpapi.Launch, error)
	KVAppend(dt int32, k, v, kCache, vCache uintptr, rows, kvWidth, slot, capacity int) (gpapi.Launch, error)
	AttnScores(dt int32, q, kCache, scores uintptr, nQ, nKV, nHeads, nKVHeads, headDim, qPos0 int, scale float32, causal bool) (gpapi.Launch, error)
	Softmax(scores, probs uintptr, nHeads, nQ, nKV int) (gpapi.Launch, error)
	AttnPV(dt int32, probs, vCache, out uintptr, nQ, nKV, nHeads, nKVHeads, headDim int) (gpapi.Launch, error)
	Attention(dt int32, q, kCache, vCache, out, lse uintptr, nQ, nKV, nHeads, nKVHeads, headDim, qPos0 int, scale float32, causal bool) (gpapi.Launch, error)
	ResidualAdd(dt int32, a, b, y uintptr, rows, width int) (gpapi.Launch, error)
	RMSNormOffset(dt int32, x, w, y uintptr, rows, dim int, eps, wOffset float32) (gpapi.Launch, error)
	GatedAct(dt int32, kind gpapi.Act, gate, up, y uintptr, rows, width int) (gpapi.Launch, error)
}

var _ Kernels = (*gpapi.Lib)(nil)

// outKind is how a stage's output is laid out in device memory, which
// decides how it is allocated, poisoned, checked for unwritten elements and
// cut into one token row.
type outKind int

const (
	outRows   outKind = iota // one dtype tensor [rows, width]
	outScores                // one f32 tensor [n_heads, n_q, n_kv]; a row is [n_heads, keys 0..r]
	outCache                 // the K and V caches [capacity, kv_width]; a row is K row r then V row r
	outAttn                  // dtype [n_q, q_dim] and f32 LSE [n_heads, n_q]; a row is out row then LSE per head
)

// cacheUse says which cache rows (0..r) a stage reads.
type cacheUse int

const (
	cacheNone cacheUse = iota
	cacheK
	cacheV
	cacheKV
)

// launchArgs is everything a stage's launch needs, for one path: rows is
// M = rows = n_q of the call (P in prefill, 1 in decode), nkv the keys
// visible to the last query, qPos0 the first query's cache index (0 in
// prefill, r in decode), slot the KV append's first row.
type launchArgs struct {
	dt                  int32
	c                   Case
	dm                  dims
	rows, nkv, qPos0    int
	slot                int
	x, pos, kc, vc      uintptr // layer input, positions, the caches attention reads
	w                   *weightBufs
	out                 *[stage.Count][]*tensor // every stage's output tensors on this path
	attention           stage.Stage             // the stage whose output attn_out projects
	kcWrite, vcWrite    uintptr                 // the caches kv_cache writes
	route               gpapi.Route
	layout              gpapi.RopeLayout
	theta, eps, scale32 float32
}

// in is the device pointer of a read stage's (primary) output.
func (a *launchArgs) in(s stage.Stage) uintptr { return a.out[s][0].buf.Ptr }

// stageIn collects a stage's inputs from the row of the path that fed it.
type stageIn struct {
	x            [][]float64 // x[i] is the output of reads[i] (the layer input for x_norm)
	kRows, vRows [][]float64 // cache rows 0..r as the stage read them
}

// stageDef is one stage, described once: what it reads, how its output is
// laid out, how it launches, its float64 reference, its local tolerance
// (strict, plus what the engine contract adds) and its propagation bound.
// runPrefill, runDecode, the chain reference and Evaluate are loops over
// stageTable; adding a stage is one entry here (README, "Adding a stage").
type stageDef struct {
	st    stage.Stage
	needs gpapi.Capability // "" = the ABI core
	// reads are the stages whose row output the stage consumes, in order.
	// readsInput: the layer input x instead; readsAttention: whichever
	// attention stage the plan runs (fused if the library has it).
	reads          []stage.Stage
	readsInput     bool
	readsAttention bool
	cache          cacheUse
	kind           outKind
	width          func(dm dims) int // row width of the primary output (outRows, outAttn)
	masked         bool              // outScores holding -Inf above the causal limit
	launch         func(k Kernels, a *launchArgs) (gpapi.Launch, error)
	ref            func(k *ctx, in stageIn, r, pos int) []float64
	// tol returns the strict local bound and the engine contract's extra
	// term (tolerance.Engine*): element i may be off the reference by
	// strict_i, or strict_i + engine_i under -parity.contract=engine.
	tol  func(k *ctx, in stageIn, ref []float64, r, pos int) (strict, engine []float64)
	prop func(k *ctx, inD, inP stageIn, refD, refP []float64, r, pos int) []float64
	// refRows, if set, is a batched reference over n rows of x (the chain
	// reference uses it for the rows that only feed the cache).
	refRows func(k *ctx, x []float64, n int) []float64
	// refTol, if set, computes ref and tol in one go (the same values):
	// the projections' reference and bound share one pass over W.
	refTol func(k *ctx, in stageIn, r, pos int) (ref, strict, engine []float64)
}

// projection builds the table entry of a gp_linear stage: y = x·Wᵀ (+ b)
// with the weights sel picks, output width n and reduction length kdim,
// over the output of reads (-1: the plan's attention output).
func projection(st, reads stage.Stage, sel func(W *Weights) (w, b []float64), wbuf func(w *weightBufs) (wt, bias *tensor), n, kdim func(dm dims) int) *stageDef {
	d := &stageDef{st: st, kind: outRows, width: n}
	if reads >= 0 {
		d.reads = []stage.Stage{reads}
	} else {
		d.readsAttention = true
	}
	d.launch = func(k Kernels, a *launchArgs) (gpapi.Launch, error) {
		wt, b := wbuf(a.w)
		x := a.in(a.attention)
		if !d.readsAttention {
			x = a.in(reads)
		}
		return k.Linear(a.dt, a.route, x, wt.buf.Ptr, a.w.bias(b), a.out[st][0].buf.Ptr, a.rows, n(a.dm), kdim(a.dm))
	}
	d.ref = func(k *ctx, in stageIn, _, _ int) []float64 {
		w, b := sel(k.in.W)
		y, _ := k.linearRef(st, in.x[0], w, b, n(k.dm), false)
		return y
	}
	d.tol = func(k *ctx, in stageIn, ref []float64, _, _ int) ([]float64, []float64) {
		w, b := sel(k.in.W)
		return tolerance.Linear(in.x[0], w, b, ref, k.c.Dtype), tolerance.EngineLinear(ref, b, k.c.Dtype)
	}
	d.refTol = func(k *ctx, in stageIn, _, _ int) ([]float64, []float64, []float64) {
		w, b := sel(k.in.W)
		ref, abs := k.linearRef(st, in.x[0], w, b, n(k.dm), true)
		return ref, tolerance.LinearFromAbs(abs, ref, len(in.x[0]), k.c.Dtype), tolerance.EngineLinear(ref, b, k.c.Dtype)
	}
	d.prop = func(k *ctx, inD, inP stageIn, _, _ []float64, _, _ int) []float64 {
		w, _ := sel(k.in.W)
		dx := diff(inD.x[0], inP.x[0])
		return k.linearPropRef(st, dx, w, n(k.dm), func() []float64 { return tolerance.LinearProp(dx, w, n(k.dm)) })
	}
	d.refRows = func(k *ctx, x []float64, rows int) []float64 {
		w, b := sel(k.in.W)
		return k.linearRowsRef(st, x, rows, kdim(k.dm), w, b, n(k.dm))
	}
	return d
}

// rope builds the table entry of a RoPE stage over the output of reads.
func rope(st, reads stage.Stage, heads func(dm dims) int, width func(dm dims) int) *stageDef {
	return &stageDef{st: st, reads: []stage.Stage{reads}, kind: outRows, width: width,
		launch: func(k Kernels, a *launchArgs) (gpapi.Launch, error) {
			return k.Rope(a.dt, a.layout, a.in(reads), a.out[st][0].buf.Ptr, a.pos, a.rows, heads(a.dm), a.dm.hd, a.theta)
		},
		ref: func(k *ctx, in stageIn, _, pos int) []float64 {
			return reference.Rope(in.x[0], pos, heads(k.dm), k.dm.hd, float64(k.dm.theta), k.layout())
		},
		tol: func(k *ctx, in stageIn, ref []float64, _, pos int) ([]float64, []float64) {
			nh := heads(k.dm)
			return tolerance.Rope(in.x[0], ref, pos, nh, k.dm.hd, float64(k.dm.theta), k.layout(), k.c.Dtype),
				tolerance.EngineRope(in.x[0], nh, k.dm.hd, k.layout(), k.c.Dtype)
		},
		prop: func(k *ctx, inD, inP stageIn, _, _ []float64, _, pos int) []float64 {
			return tolerance.RopeProp(diff(inD.x[0], inP.x[0]), pos, heads(k.dm), k.dm.hd, float64(k.dm.theta), k.layout())
		},
	}
}

func qdim(dm dims) int     { return dm.qd }
func kvdim(dm dims) int    { return dm.kvd }
func hidden(dm dims) int   { return dm.h }
func interDim(dm dims) int { return dm.inter }
func vocab(dm dims) int    { return dm.vocab }

// residual builds the table entry of a residual add y = stream + branch
// (gp_residual_add) over the stream (the layer input x when stream < 0)
// and the branch's output.
func residual(st, stream, branch stage.Stage) *stageDef {
	d := &stageDef{st: st, needs: gpapi.CapMLP, kind: outRows, width: hidden}
	if stream < 0 {
		d.readsInput, d.reads = true, []stage.Stage{branch}
	} else {
		d.reads = []stage.Stage{stream, branch}
	}
	d.launch = func(k Kernels, a *launchArgs) (gpapi.Launch, error) {
		x := a.x
		if stream >= 0 {
			x = a.in(stream)
		}
		return k.ResidualAdd(a.dt, x, a.in(branch), a.out[st][0].buf.Ptr, a.rows, a.dm.h)
	}
	d.ref = func(_ *ctx, in stageIn, _, _ int) []float64 { return reference.ResidualAdd(in.x[0], in.x[1]) }
	d.tol = func(k *ctx, _ stageIn, ref []float64, _, _ int) ([]float64, []float64) {
		return tolerance.Residual(ref, k.c.Dtype), tolerance.EngineResidual(ref)
	}
	// A sum moves exactly as its inputs' sum moves.
	d.prop = func(_ *ctx, _, _ stageIn, refD, refP []float64, _, _ int) []float64 {
		return tolerance.ExactProp(refD, refP)
	}
	return d
}

// stageTable is the layer, in pipeline order (stage.All()): the attention
// block, then (capability "mlp", shapes with an MLP) the residual add, the
// post-attention norm, the gated MLP and the second residual add; then,
// after the last layer of a case that runs the head, the final norm and
// the LM head (its output row is the logits; TokenVerdict reads them).
var stageTable = []*stageDef{
	{st: stage.XNorm, readsInput: true, kind: outRows, width: hidden,
		launch: func(k Kernels, a *launchArgs) (gpapi.Launch, error) {
			return k.RMSNorm(a.dt, a.x, a.w.norm.buf.Ptr, a.out[stage.XNorm][0].buf.Ptr, a.rows, a.dm.h, a.eps)
		},
		ref: func(k *ctx, in stageIn, _, _ int) []float64 {
			y, _ := reference.RMSNorm(in.x[0], k.in.W.NormW, float64(k.dm.eps))
			return y
		},
		tol: func(k *ctx, in stageIn, ref []float64, _, _ int) ([]float64, []float64) {
			_, rr := reference.RMSNorm(in.x[0], k.in.W.NormW, float64(k.dm.eps))
			return tolerance.RMSNorm(in.x[0], k.in.W.NormW, rr, ref, k.c.Dtype), tolerance.EngineRMSNorm(ref, k.c.Dtype)
		},
		prop: func(k *ctx, inD, inP stageIn, _, _ []float64, _, _ int) []float64 {
			_, rr := reference.RMSNorm(inP.x[0], k.in.W.NormW, float64(k.dm.eps))
			return tolerance.RMSNormProp(inP.x[0], diff(inD.x[0], inP.x[0]), k.in.W.NormW, rr)
		},
	},
	projection(stage.QProj, stage.XNorm, func(W *Weights) ([]float64, []float64) { return W.Wq, W.Bq },
		func(w *weightBufs) (*tensor, *tensor) { return w.wq, w.bq }, qdim, hidden),
	projection(stage.KProj, stage.XNorm, func(W *Weights) ([]float64, []float64) { return W.Wk, W.Bk },
		func(w *weightBufs) (*tensor, *tensor) { return w.wk, w.bk }, kvdim, hidden),
	projection(stage.VProj, stage.XNorm, func(W *Weights) ([]float64, []float64) { return W.Wv, W.Bv },
		func(w *weightBufs) (*tensor, *tensor) { return w.wv, w.bv }, kvdim, hidden),
	rope(stage.QRope, stage.QProj, func(dm dims) int { return dm.nh }, qdim),
	rope(stage.KRope, stage.KProj, func(dm dims) int { return dm.nkv }, kvdim),
	{st: stage.KVCache, reads: []stage.Stage{stage.KRope, stage.VProj}, kind: outCache,
		launch: func(k Kernels, a *launchArgs) (gpapi.Launch, error) {
			return k.KVAppend(a.dt, a.in(stage.KRope), a.in(stage.VProj), a.kcWrite, a.vcWrite, a.rows, a.dm.kvd, a.slot, a.dm.C)
		},
		// An append is a copy: exact, tolerance 0 under every contract.
		ref: func(_ *ctx, in stageIn, _, _ int) []float64 {
			return append(append([]float64{}, in.x[0]...), in.x[1]...)
		},
		tol: func(_ *ctx, _ stageIn, ref []float64, _, _ int) ([]float64, []float64) {
			return make([]float64, len(ref)), make([]float64, len(ref))
		},
		// A copy moves exactly as its input moved.
		prop: func(_ *ctx, inD, inP stageIn, _, _ []float64, _, _ int) []float64 {
			out := append(diff(inD.x[0], inP.x[0]), diff(inD.x[1], inP.x[1])...)
			for i, v := range out {
				out[i] = math.Abs(v)
			}
			return out
		},
	},
	{st: stage.QK, needs: gpapi.CapUnfused, reads: []stage.Stage{stage.QRope}, cache: cacheK, kind: outScores, masked: true,
		launch: func(k Kernels, a *launchArgs) (gpapi.Launch, error) {
			return k.AttnScores(a.dt, a.in(stage.QRope), a.kc, a.out[stage.QK][0].buf.Ptr, a.rows, a.nkv, a.dm.nh, a.dm.nkv, a.dm.hd, a.qPos0, a.scale32, true)
		},
		ref: func(k *ctx, in stageIn, r, _ int) []float64 {
			return reference.Scores(in.x[0], in.kRows, k.dm.nh, k.dm.nkv, k.dm.hd, r, float64(k.dm.scale))
		},
		tol: func(k *ctx, in stageIn, ref []float64, r, _ int) ([]float64, []float64) {
			return tolerance.Scores(in.x[0], in.kRows, ref, k.dm.nh, k.dm.nkv, k.dm.hd, r, float64(k.dm.scale)), tolerance.EngineScores(ref, k.c.Dtype)
		},
		prop: func(k *ctx, inD, inP stageIn, _, _ []float64, r, _ int) []float64 {
			return tolerance.ScoresProp(inP.x[0], diff(inD.x[0], inP.x[0]), inP.kRows, diffRows(inD.kRows, inP.kRows), k.dm.nh, k.dm.nkv, k.dm.hd, r, float64(k.dm.scale))
		},
	},
	{st: stage.Softmax, needs: gpapi.CapUnfused, reads: []stage.Stage{stage.QK}, kind: outScores,
		launch: func(k Kernels, a *launchArgs) (gpapi.Launch, error) {
			return k.Softmax(a.in(stage.QK), a.out[stage.Softmax][0].buf.Ptr, a.dm.nh, a.rows, a.nkv)
		},
		ref: func(k *ctx, in stageIn, r, _ int) []float64 { return reference.Softmax(in.x[0], k.dm.nh, r+1) },
		tol: func(k *ctx, in stageIn, ref []float64, r, _ int) ([]float64, []float64) {
			return tolerance.Softmax(in.x[0], ref, k.dm.nh, r+1), tolerance.EngineSoftmax(ref, k.c.Dtype)
		},
		prop: func(k *ctx, inD, inP stageIn, _, refP []float64, r, _ int) []float64 {
			return tolerance.SoftmaxProp(refP, diff(inD.x[0], inP.x[0]), k.dm.nh, r+1)
		},
	},
	{st: stage.PV, needs: gpapi.CapUnfused, reads: []stage.Stage{stage.Softmax}, cache: cacheV, kind: outRows, width: qdim,
		launch: func(k Kernels, a *launchArgs) (gpapi.Launch, error) {
			return k.AttnPV(a.dt, a.in(stage.Softmax), a.vc, a.out[stage.PV][0].buf.Ptr, a.rows, a.nkv, a.dm.nh, a.dm.nkv, a.dm.hd)
		},
		ref: func(k *ctx, in stageIn, _, _ int) []float64 {
			return reference.PV(in.x[0], in.vRows, k.dm.nh, k.dm.nkv, k.dm.hd)
		},
		tol: func(k *ctx, in stageIn, ref []float64, _, _ int) ([]float64, []float64) {
			return tolerance.PV(in.x[0], in.vRows, ref, k.dm.nh, k.dm.nkv, k.dm.hd, k.c.Dtype),
				tolerance.EnginePV(in.x[0], in.vRows, ref, k.dm.nh, k.dm.nkv, k.dm.hd, k.c.Dtype)
		},
		prop: func(k *ctx, inD, inP stageIn, _, _ []float64, _, _ int) []float64 {
			return tolerance.PVProp(inP.x[0], diff(inD.x[0], inP.x[0]), inP.vRows, diffRows(inD.vRows, inP.vRows), k.dm.nh, k.dm.nkv, k.dm.hd)
		},
	},
	{st: stage.Attn, needs: gpapi.CapFused, reads: []stage.Stage{stage.QRope}, cache: cacheKV, kind: outAttn, width: qdim,
		launch: func(k Kernels, a *launchArgs) (gpapi.Launch, error) {
			o := a.out[stage.Attn]
			return k.Attention(a.dt, a.in(stage.QRope), a.kc, a.vc, o[0].buf.Ptr, o[1].buf.Ptr, a.rows, a.nkv, a.dm.nh, a.dm.nkv, a.dm.hd, a.qPos0, a.scale32, true)
		},
		// The output row, then the LSE of each head: one compared region.
		ref: func(k *ctx, in stageIn, r, _ int) []float64 {
			o, lse := reference.Attention(in.x[0], in.kRows, in.vRows, k.dm.nh, k.dm.nkv, k.dm.hd, r, float64(k.dm.scale))
			return append(o, lse...)
		},
		tol: func(k *ctx, in stageIn, ref []float64, r, _ int) ([]float64, []float64) {
			qd := k.dm.qd
			to, tl := tolerance.Attention(in.x[0], in.kRows, in.vRows, ref[:qd], ref[qd:], k.dm.nh, k.dm.nkv, k.dm.hd, r, float64(k.dm.scale), k.c.Dtype)
			eo := tolerance.EngineAttention(in.x[0], in.kRows, in.vRows, ref[:qd], k.dm.nh, k.dm.nkv, k.dm.hd, r, float64(k.dm.scale), k.c.Dtype)
			// The LSE is f32 in every contract: no extra rounding to dtype.
			return append(to, tl...), append(eo, make([]float64, len(tl))...)
		},
		prop: func(_ *ctx, _, _ stageIn, refD, refP []float64, _, _ int) []float64 {
			return tolerance.ExactProp(refD, refP)
		},
	},
	projection(stage.AttnOut, -1, func(W *Weights) ([]float64, []float64) { return W.Wo, nil },
		func(w *weightBufs) (*tensor, *tensor) { return w.wo, nil }, hidden, qdim),
	residual(stage.AttnRes, -1, stage.AttnOut),
	offsetNorm(stage.PostNorm, stage.AttnRes, func(W *Weights) []float64 { return W.PostNormW }, func(w *weightBufs) *tensor { return w.postNorm }),
	mlp(projection(stage.GateProj, stage.PostNorm, func(W *Weights) ([]float64, []float64) { return W.Wg, nil },
		func(w *weightBufs) (*tensor, *tensor) { return w.wg, nil }, interDim, hidden)),
	mlp(projection(stage.UpProj, stage.PostNorm, func(W *Weights) ([]float64, []float64) { return W.Wu, nil },
		func(w *weightBufs) (*tensor, *tensor) { return w.wu, nil }, interDim, hidden)),
	{st: stage.Act, needs: gpapi.CapMLP, reads: []stage.Stage{stage.GateProj, stage.UpProj}, kind: outRows, width: interDim,
		launch: func(k Kernels, a *launchArgs) (gpapi.Launch, error) {
			return k.GatedAct(a.dt, a.c.Model.ActKind(), a.in(stage.GateProj), a.in(stage.UpProj), a.out[stage.Act][0].buf.Ptr, a.rows, a.dm.inter)
		},
		ref: func(k *ctx, in stageIn, _, _ int) []float64 {
			return reference.GatedAct(int(k.c.Model.ActKind()), in.x[0], in.x[1])
		},
		tol: func(k *ctx, in stageIn, ref []float64, _, _ int) ([]float64, []float64) {
			return tolerance.Act(int(k.c.Model.ActKind()), in.x[0], in.x[1], ref, k.c.Dtype), tolerance.EngineAct(ref, k.c.Dtype)
		},
		// The exact change: act is nonlinear, and a carried difference
		// need not be small.
		prop: func(_ *ctx, _, _ stageIn, refD, refP []float64, _, _ int) []float64 {
			return tolerance.ExactProp(refD, refP)
		},
	},
	mlp(projection(stage.DownProj, stage.Act, func(W *Weights) ([]float64, []float64) { return W.Wd, nil },
		func(w *weightBufs) (*tensor, *tensor) { return w.wd, nil }, hidden, interDim)),
	residual(stage.MLPRes, stage.AttnRes, stage.DownProj),
	head(offsetNorm(stage.FinalNorm, stage.MLPRes, func(W *Weights) []float64 { return W.FinalNormW }, func(w *weightBufs) *tensor { return w.finalNorm })),
	head(mlp(projection(stage.LMHead, stage.FinalNorm, func(W *Weights) ([]float64, []float64) { return W.Wlm, nil },
		func(w *weightBufs) (*tensor, *tensor) { return w.wlm, nil }, vocab, hidden))),
}

// offsetNorm builds the table entry of an RMSNorm with the shape's weight
// offset (gp_rmsnorm_offset: Gemma's (1 + w), computed in f32; 0 for the
// others) over the output of reads: post_norm, and final_norm of the head.
func offsetNorm(st, reads stage.Stage, sel func(W *Weights) []float64, wbuf func(w *weightBufs) *tensor) *stageDef {
	return &stageDef{st: st, needs: gpapi.CapMLP, reads: []stage.Stage{reads}, kind: outRows, width: hidden,
		launch: func(k Kernels, a *launchArgs) (gpapi.Launch, error) {
			return k.RMSNormOffset(a.dt, a.in(reads), wbuf(a.w).buf.Ptr, a.out[st][0].buf.Ptr, a.rows, a.dm.h, a.eps, a.dm.normOffset)
		},
		ref: func(k *ctx, in stageIn, _, _ int) []float64 {
			y, _ := reference.RMSNormOffset(in.x[0], sel(k.in.W), float64(k.dm.normOffset), float64(k.dm.eps))
			return y
		},
		tol: func(k *ctx, in stageIn, ref []float64, _, _ int) ([]float64, []float64) {
			off := float64(k.dm.normOffset)
			_, rr := reference.RMSNormOffset(in.x[0], sel(k.in.W), off, float64(k.dm.eps))
			return tolerance.RMSNormOffset(in.x[0], sel(k.in.W), off, rr, ref, k.c.Dtype), tolerance.EngineRMSNorm(ref, k.c.Dtype)
		},
		prop: func(k *ctx, inD, inP stageIn, _, _ []float64, _, _ int) []float64 {
			off := float64(k.dm.normOffset)
			_, rr := reference.RMSNormOffset(inP.x[0], sel(k.in.W), off, float64(k.dm.eps))
			return tolerance.RMSNormOffsetProp(inP.x[0], diff(inD.x[0], inP.x[0]), sel(k.in.W), off, rr)
		},
	}
}

// head marks a table entry as a stage of the head (stage.InHead: after
// the last layer): it runs only in a case that runs the head
// (Case.RunsHead: the layers mode's last layer, -parity.head), with the
// "mlp" capability.
func head(d *stageDef) *stageDef {
	if !d.st.InHead() {
		panic("harness: " + d.st.String() + " is not a head stage in internal/stage")
	}
	return d
}

// mlp marks a table entry as part of the MLP block: it runs only with
// the "mlp" capability (the core gp_linear computes the MLP projections,
// but nothing feeds them without the residual add and the norm).
func mlp(d *stageDef) *stageDef {
	d.needs = gpapi.CapMLP
	return d
}

// cacheStage is the table's one stateful stage: the KV append (outCache),
// whose rows every attention stage reads.
const cacheStage = stage.KVCache

// defOf returns the table entry of st.
func defOf(st stage.Stage) *stageDef {
	for _, d := range stageTable {
		if d.st == st {
			return d
		}
	}
	panic("harness: stage " + st.String() + " has no table entry")
}

// plan is the stages one case runs on one library: the core, the
// attention capabilities the library has (unfused, fused or both; only
// fused for a FusedOnly case), and which attention output attn_out reads.
type plan struct {
	defs      []*stageDef
	ran       [stage.Count]bool
	attention stage.Stage
}

func newPlan(k Kernels, c Case) (plan, error) {
	var p plan
	for _, d := range stageTable {
		switch {
		case d.needs == gpapi.CapUnfused && c.FusedOnly:
			continue
		case d.needs == gpapi.CapMLP && !c.RunsMLP():
			continue
		case d.st.InHead() && !c.RunsHead():
			continue
		case d.needs != "" && !k.Has(d.needs):
			continue
		}
		p.defs = append(p.defs, d)
		p.ran[d.st] = true
	}
	switch {
	case p.ran[stage.Attn]:
		p.attention = stage.Attn
	case p.ran[stage.PV]:
		p.attention = stage.PV
	default:
		return p, fmt.Errorf("no attention stage to run: the case is fused-only and the library lacks %s", strings.Join(gpapi.CapabilitySymbols(gpapi.CapFused), ", "))
	}
	return p, nil
}

// readsOf returns the stages d reads under plan p.
func (p *plan) readsOf(d *stageDef) []stage.Stage {
	if d.readsAttention {
		return []stage.Stage{p.attention}
	}
	return d.reads
}

// primaryLen is the length of the part of a row output that later stages
// read (attn's output row without its LSE).
func primaryLen(d *stageDef, dm dims, out []float64) int {
	if d.kind == outAttn {
		return d.width(dm)
	}
	return len(out)
}

// outTensors allocates the output tensors of d for a call of rows query
// rows over at most nkv keys (outCache: the caller's caches).
func outTensors(d *stageDef, alloc func(string, dtype.Dtype, int) *tensor, name string, dt dtype.Dtype, dm dims, rows, nkv int) []*tensor {
	switch d.kind {
	case outRows:
		return []*tensor{alloc(name, dt, rows*d.width(dm))}
	case outScores:
		return []*tensor{alloc(name, dtype.F32, dm.nh*rows*nkv)}
	case outAttn:
		return []*tensor{alloc(name, dt, rows*d.width(dm)), alloc(name+" lse", dtype.F32, dm.nh*rows)}
	}
	return nil
}

// cutRow extracts query row i (of rows) from a stage's raw outputs, for a
// row that sees keys 0..r of nkv. It returns the values, bits and the count
// of poisoned (never written) elements in the row.
func cutRow(d *stageDef, dt dtype.Dtype, dm dims, raw [][]byte, rows, nkv, i, r int) ([]float64, []uint32, int) {
	switch d.kind {
	case outRows:
		w := d.width(dm)
		return rowsOf(dt, raw[0], i*w, w)
	case outScores:
		var vals []float64
		var bits []uint32
		var un int
		for h := 0; h < dm.nh; h++ {
			v, b, u := rowsOf(dtype.F32, raw[0], (h*rows+i)*nkv, r+1)
			vals, bits, un = append(vals, v...), append(bits, b...), un+u
		}
		return vals, bits, un
	case outCache:
		kv, kb, ku := rowsOf(dt, raw[0], r*dm.kvd, dm.kvd)
		vv, vb, vu := rowsOf(dt, raw[1], r*dm.kvd, dm.kvd)
		return append(kv, vv...), append(kb, vb...), ku + vu
	case outAttn:
		w := d.width(dm)
		vals, bits, un := rowsOf(dt, raw[0], i*w, w)
		for h := 0; h < dm.nh; h++ {
			v, b, u := rowsOf(dtype.F32, raw[1], h*rows+i, 1)
			vals, bits, un = append(vals, v...), append(bits, b...), un+u
		}
		return vals, bits, un
	}
	return nil, nil, 0
}

// HeadSlices splits a stage's compared row (query row r) into per-head
// slices with their shapes, as traces and heatmaps show them: head -1 is
// the whole row of a whole-row stage; scores [r+1] per query head; the
// cache [2, head_dim] (K then V) per KV head; attn [head_dim + 1] (the
// head's output, then its LSE) per query head.
func HeadSlices(c Case, st stage.Stage, vals []float64, r int) (heads []int, slices [][]float64, shapes [][]int) {
	m, d := c.Model, defOf(st)
	add := func(h int, s []float64, shape ...int) {
		heads, slices, shapes = append(heads, h), append(slices, s), append(shapes, shape)
	}
	switch {
	case !st.PerHead():
		add(-1, vals, len(vals))
	case d.kind == outScores:
		for h := 0; h < m.NHeads; h++ {
			add(h, vals[h*(r+1):(h+1)*(r+1)], r+1)
		}
	case d.kind == outCache:
		kvd := m.KVDim()
		for h := 0; h < m.NKVHeads; h++ {
			s := append(append([]float64{}, vals[h*m.HeadDim:(h+1)*m.HeadDim]...), vals[kvd+h*m.HeadDim:kvd+(h+1)*m.HeadDim]...)
			add(h, s, 2, m.HeadDim)
		}
	case d.kind == outAttn:
		qd := m.QDim()
		for h := 0; h < m.NHeads; h++ {
			s := append(append([]float64{}, vals[h*m.HeadDim:(h+1)*m.HeadDim]...), vals[qd+h])
			add(h, s, m.HeadDim+1)
		}
	default:
		n := m.NHeads
		if st.KVHeads() {
			n = m.NKVHeads
		}
		for h := 0; h < n; h++ {
			add(h, vals[h*m.HeadDim:(h+1)*m.HeadDim], m.HeadDim)
		}
	}
	return heads, slices, shapes
}

// RowDtype is the dtype a stage's row values are exactly representable in:
// the storage dtype, or f32 for scores and for attn (whose LSE is f32).
func RowDtype(c Case, st stage.Stage) dtype.Dtype {
	switch defOf(st).kind {
	case outScores, outAttn:
		return dtype.F32
	}
	return c.Dtype
}
