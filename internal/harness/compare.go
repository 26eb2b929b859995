package harness

import (
	"math"

	"github.com/gretacore/parity/internal/reference"
	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/tolerance"
)

// Check names one of the per-stage checks; a StageResult lists the ones
// that failed.
type Check string

// The checks, each described where it is computed (compareStage).
const (
	CheckPair      Check = "pair"        // |d−p| within the pair tolerance
	CheckBitwise   Check = "bitwise"     // d == p bit for bit (when required)
	CheckRefDecode Check = "ref-decode"  // decode within local bound of float64 on its inputs
	CheckRefPrefil Check = "ref-prefill" // prefill within local bound of float64 on its inputs
	CheckFA        Check = "fa"          // decode's error vs chain reference ≤ 2× prefill's (+ tol)
	CheckNonFinite Check = "non-finite"  // NaN/Inf where the other side or the reference is finite
	CheckIssue     Check = "integrity"   // unwritten output, cache row outside the slot, mask
)

// StageResult is the comparison of one stage of one decode step in one
// mode with prefill's row.
type StageResult struct {
	Stage stage.Stage
	Mode  Path // Chained or Isolated
	Step  int
	N     int // elements compared

	MAE, MaxAbs, RelL2 float64 // of d − p
	// Margin is the share of the local error budget the worst element
	// uses, after subtracting what carried input differences explain:
	// max_j max(0, |d_j−p_j| − prop_j) / local_j (≤ 1 passes). A chained
	// stage that only carries an upstream difference reads near 0, not 1.
	Margin         float64
	Bitwise        bool    // every element's bits equal
	RefMarginD     float64 // max |d − ref(in_d)| / local(in_d)
	RefMarginP     float64 // max |p − ref(in_p)| / local(in_p)
	FAErrD, FAErrP float64 // max error of each path against the float64 chain reference
	FARatio        float64 // FAErrD / (FAFactor·FAErrP + max tol) (≤ 1 passes)
	WorstIndex     int     // element with the largest |d−p|/tol
	Fails          []Check
	Notes          []string // integrity issues
}

// OK reports whether every check passed.
func (s *StageResult) OK() bool { return len(s.Fails) == 0 }

func (s *StageResult) fail(c Check) {
	for _, f := range s.Fails {
		if f == c {
			return
		}
	}
	s.Fails = append(s.Fails, c)
}

// ctx holds what every comparison of one case needs.
type ctx struct {
	c  Case
	dm dims
	in *Inputs
}

// stageIn collects a stage's inputs from the row of the path that fed it.
type stageIn struct {
	x, x2        []float64   // main input (and v_proj for the cache stage)
	kRows, vRows [][]float64 // cache rows read by qk / pv
}

func (k *ctx) inputsOf(st stage.Stage, row *Row) stageIn {
	h := k.dm.h
	switch st {
	case stage.XNorm:
		return stageIn{x: k.in.X[row.R*h : (row.R+1)*h]}
	case stage.QProj, stage.KProj, stage.VProj:
		return stageIn{x: row.Out[stage.XNorm]}
	case stage.QRope:
		return stageIn{x: row.Out[stage.QProj]}
	case stage.KRope:
		return stageIn{x: row.Out[stage.KProj]}
	case stage.KVCache:
		return stageIn{x: row.Out[stage.KRope], x2: row.Out[stage.VProj]}
	case stage.QK:
		return stageIn{x: row.Out[stage.QRope], kRows: row.KRows}
	case stage.Softmax:
		return stageIn{x: row.Out[stage.QK]}
	case stage.PV:
		return stageIn{x: row.Out[stage.Softmax], vRows: row.VRows}
	case stage.AttnOut:
		return stageIn{x: row.Out[stage.PV]}
	}
	return stageIn{}
}

// local returns the float64 reference of stage st on inputs in, and the
// local tolerance of each element (internal/tolerance).
func (k *ctx) local(st stage.Stage, in stageIn, r, pos int) (ref, tol []float64) {
	m, W, dt, dm := k.c.Model, k.in.W, k.c.Dtype, k.dm
	theta, layout := float64(dm.theta), int(m.Layout())
	switch st {
	case stage.XNorm:
		y, rr := reference.RMSNorm(in.x, W.NormW, float64(dm.eps))
		return y, tolerance.RMSNorm(in.x, W.NormW, rr, y, dt)
	case stage.QProj, stage.KProj, stage.VProj, stage.AttnOut:
		w, b, n := k.weights(st)
		y := reference.Linear(in.x, w, b, n)
		return y, tolerance.Linear(in.x, w, b, y, dt)
	case stage.QRope, stage.KRope:
		nh := dm.nh
		if st == stage.KRope {
			nh = dm.nkv
		}
		y := reference.Rope(in.x, pos, nh, dm.hd, theta, layout)
		return y, tolerance.Rope(in.x, y, pos, nh, dm.hd, theta, layout, dt)
	case stage.KVCache:
		// An append is a copy: exact, tolerance 0.
		y := append(append([]float64{}, in.x...), in.x2...)
		return y, make([]float64, len(y))
	case stage.QK:
		s := reference.Scores(in.x, in.kRows, dm.nh, dm.nkv, dm.hd, r, float64(dm.scale))
		return s, tolerance.Scores(in.x, in.kRows, s, dm.nh, dm.nkv, dm.hd, r, float64(dm.scale))
	case stage.Softmax:
		n := r + 1
		p := reference.Softmax(in.x, dm.nh, n)
		return p, tolerance.Softmax(in.x, p, dm.nh, n)
	case stage.PV:
		o := reference.PV(in.x, in.vRows, dm.nh, dm.nkv, dm.hd)
		return o, tolerance.PV(in.x, in.vRows, o, dm.nh, dm.nkv, dm.hd, dt)
	}
	return nil, nil
}

func (k *ctx) weights(st stage.Stage) (w, b []float64, n int) {
	W, dm := k.in.W, k.dm
	switch st {
	case stage.QProj:
		return W.Wq, W.Bq, dm.qd
	case stage.KProj:
		return W.Wk, W.Bk, dm.kvd
	case stage.VProj:
		return W.Wv, W.Bv, dm.kvd
	}
	return W.Wo, nil, dm.h
}

// prop bounds how much the stage's exact output moves when its inputs move
// from inP (prefill's) to inD (decode's): internal/tolerance's *Prop.
func (k *ctx) prop(st stage.Stage, inD, inP stageIn, refP []float64, r, pos int) []float64 {
	m, dm := k.c.Model, k.dm
	dx := diff(inD.x, inP.x)
	switch st {
	case stage.XNorm:
		_, rr := reference.RMSNorm(inP.x, k.in.W.NormW, float64(dm.eps))
		return tolerance.RMSNormProp(inP.x, dx, k.in.W.NormW, rr)
	case stage.QProj, stage.KProj, stage.VProj, stage.AttnOut:
		w, _, n := k.weights(st)
		return tolerance.LinearProp(dx, w, n)
	case stage.QRope, stage.KRope:
		nh := dm.nh
		if st == stage.KRope {
			nh = dm.nkv
		}
		return tolerance.RopeProp(dx, pos, nh, dm.hd, float64(dm.theta), int(m.Layout()))
	case stage.KVCache:
		// A copy moves exactly as its input moved.
		out := append(dx, diff(inD.x2, inP.x2)...)
		for i, v := range out {
			out[i] = math.Abs(v)
		}
		return out
	case stage.QK:
		return tolerance.ScoresProp(inP.x, dx, inP.kRows, diffRows(inD.kRows, inP.kRows), dm.nh, dm.nkv, dm.hd, r, float64(dm.scale))
	case stage.Softmax:
		return tolerance.SoftmaxProp(refP, dx, dm.nh, r+1)
	case stage.PV:
		return tolerance.PVProp(inP.x, dx, inP.vRows, diffRows(inD.vRows, inP.vRows), dm.nh, dm.nkv, dm.hd)
	}
	return nil
}

// diff returns a − b elementwise; equal infinities give 0, anything else
// non-finite gives NaN (so the propagated bound does not excuse it).
func diff(a, b []float64) []float64 {
	out := make([]float64, len(b))
	for i := range b {
		if i >= len(a) {
			out[i] = math.NaN()
			continue
		}
		if a[i] == b[i] {
			continue
		}
		out[i] = a[i] - b[i]
	}
	return out
}

func diffRows(a, b [][]float64) [][]float64 {
	out := make([][]float64, len(b))
	for i := range b {
		if i < len(a) {
			out[i] = diff(a[i], b[i])
		} else {
			out[i] = make([]float64, len(b[i]))
		}
	}
	return out
}

// compareStage runs every check of one stage (see Check). d and p are the
// decode and prefill outputs; local (local_d + local_p) and prop make the
// pair tolerance; refD/tolD and refP/tolP are the local references and
// bounds; chain the float64 chain reference. prop may be nil (isolated).
func compareStage(sr *StageResult, d, p []float64, dBits, pBits []uint32, local, prop, refD, tolD, refP, tolP, chain []float64, requireBitwise bool) {
	sr.N = len(p)
	sr.Bitwise = len(d) == len(p)
	if len(d) != len(p) {
		sr.fail(CheckPair)
		sr.MaxAbs, sr.Margin = math.Inf(1), math.Inf(1)
		return
	}
	var sumAbs, sumSq, sumRef, maxTol float64
	sr.WorstIndex = -1
	for i := range p {
		if dBits[i] != pBits[i] {
			sr.Bitwise = false
		}
		carried := 0.0
		if prop != nil {
			carried = prop[i]
		}
		maxTol = math.Max(maxTol, local[i]+carried)
		if d[i] == p[i] { // equal, including matching infinities (masked keys)
			continue
		}
		delta := math.Abs(d[i] - p[i])
		if math.IsNaN(delta) || math.IsInf(delta, 0) {
			sr.fail(CheckNonFinite)
			sr.MaxAbs, sr.Margin, sr.WorstIndex = math.Inf(1), math.Inf(1), i
			continue
		}
		sumAbs += delta
		sumSq += delta * delta
		sumRef += p[i] * p[i]
		sr.MaxAbs = math.Max(sr.MaxAbs, delta)
		if m := ratio(math.Max(0, delta-carried), local[i]); m > sr.Margin || sr.WorstIndex < 0 {
			sr.Margin, sr.WorstIndex = math.Max(sr.Margin, m), i
		}
	}
	sr.MAE = sumAbs / float64(len(p))
	if sumRef > 0 {
		sr.RelL2 = math.Sqrt(sumSq / sumRef)
	} else if sumSq > 0 {
		sr.RelL2 = math.Inf(1)
	}
	if sr.Margin > 1 {
		sr.fail(CheckPair)
	}
	if requireBitwise && !sr.Bitwise {
		sr.fail(CheckBitwise)
	}
	var nfD, nfP bool
	sr.RefMarginD, nfD = refMargin(d, refD, tolD)
	sr.RefMarginP, nfP = refMargin(p, refP, tolP)
	if nfD || nfP {
		sr.fail(CheckNonFinite)
	}
	if sr.RefMarginD > 1 {
		sr.fail(CheckRefDecode)
	}
	if sr.RefMarginP > 1 {
		sr.fail(CheckRefPrefil)
	}
	sr.FAErrD, sr.FAErrP = maxErr(d, chain), maxErr(p, chain)
	sr.FARatio = ratio(sr.FAErrD, tolerance.FAFactor*sr.FAErrP+maxTol)
	if sr.FARatio > 1 {
		sr.fail(CheckFA)
	}
}

// ratio is a/b with 0/0 = 0 and x/0 = +Inf.
func ratio(a, b float64) float64 {
	if a == 0 {
		return 0
	}
	if b == 0 {
		return math.Inf(1)
	}
	return a / b
}

// refMargin is max |x − ref|/tol; the bool reports a non-finite x where
// the reference is finite (or the reverse).
func refMargin(x, ref, tol []float64) (float64, bool) {
	var m float64
	nonFinite := false
	for i := range ref {
		if i >= len(x) {
			return math.Inf(1), true
		}
		if x[i] == ref[i] {
			continue
		}
		e := math.Abs(x[i] - ref[i])
		if math.IsNaN(e) || math.IsInf(e, 0) {
			nonFinite = true
			m = math.Inf(1)
			continue
		}
		m = math.Max(m, ratio(e, tol[i]))
	}
	return m, nonFinite
}

func maxErr(x, ref []float64) float64 {
	var m float64
	for i := range ref {
		if i >= len(x) || x[i] == ref[i] {
			continue
		}
		e := math.Abs(x[i] - ref[i])
		if math.IsNaN(e) {
			e = math.Inf(1)
		}
		m = math.Max(m, e)
	}
	return m
}
