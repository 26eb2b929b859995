package harness

import (
	"math"
	"slices"

	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/tolerance"
	"github.com/gretacore/parity/internal/trace"
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

	// MAE, MaxAbs and RelL2 are of d − p, computed by trace.Diff: the
	// function tracediff uses, so both print the same numbers.
	MAE, MaxAbs, RelL2 float64
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
	// OwnMargin is max_j |d_j−p_j| / local_j, without the carried
	// allowance: a chained stage with Margin ≤ 1 < OwnMargin passes only
	// because upstream explains its difference (verdict "carried").
	OwnMargin float64
	// Local and Prop are the bounds the pair check used, per element:
	// local(in_d) + local(in_p) under the case's contract, and the
	// propagated allowance (nil in isolated mode). Traces record them, so
	// tracediff judges by the same bounds. WorstDelta, WorstLocal and
	// WorstProp are |d−p| and the two bounds at WorstIndex.
	Local, Prop                       []float64
	WorstDelta, WorstLocal, WorstProp float64
	// StrictMargin and EngineMargin are the largest of the pair and
	// reference margins under each accuracy contract (≤ 1: within it),
	// whichever contract the checks used: a stage failing strict with
	// EngineMargin ≤ 1 is a rounding-level difference, not a logic bug.
	StrictMargin, EngineMargin float64
	Fails                      []Check
	Notes                      []string // integrity issues
}

// Within names the strictest accuracy contract the stage meets: "strict",
// "engine" (within engine, beyond strict) or "" (beyond both).
func (s *StageResult) Within() string {
	switch {
	case s.StrictMargin <= 1:
		return tolerance.Strict.String()
	case s.EngineMargin <= 1:
		return tolerance.Engine.String()
	}
	return ""
}

// OK reports whether every check passed.
func (s *StageResult) OK() bool { return len(s.Fails) == 0 }

func (s *StageResult) failed(c Check) bool { return slices.Contains(s.Fails, c) }

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
	c   Case
	dm  dims
	in  *Inputs
	ref refIssues // the device reference's failures (refdev.go)
}

func (k *ctx) layout() int { return int(k.c.Model.Layout()) }

// inputsOf collects def's inputs from the row of the path that fed it.
func (k *ctx) inputsOf(p *plan, def *stageDef, row *Row) stageIn {
	var in stageIn
	if def.readsInput {
		h := k.dm.h
		if row.X != nil {
			in.x = append(in.x, row.X)
		} else {
			in.x = append(in.x, k.in.X[row.R*h:(row.R+1)*h])
		}
	}
	for _, s := range p.readsOf(def) {
		v := row.Out[s]
		in.x = append(in.x, v[:primaryLen(defOf(s), k.dm, v)])
	}
	if def.cache != cacheNone {
		in.kRows, in.vRows = row.KRows, row.VRows
	}
	return in
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
// decode and prefill outputs; ld and lp the local references and bounds on
// each path's inputs; prop the propagated bound (nil in isolated mode);
// chain the float64 chain reference. The checks use the bounds of
// contract; the margins under both contracts are kept for the report
// (Within).
func compareStage(sr *StageResult, d, p []float64, dBits, pBits []uint32, ld, lp local, prop, chain []float64, contract tolerance.Contract, requireBitwise bool) {
	sr.N = len(p)
	sr.Bitwise = len(d) == len(p)
	if len(d) != len(p) {
		sr.fail(CheckPair)
		sr.MaxAbs, sr.Margin = math.Inf(1), math.Inf(1)
		return
	}
	tolD, tolP := ld.bound(contract), lp.bound(contract)
	local := make([]float64, len(tolP))
	for i := range local {
		local[i] = tolD[i] + tolP[i]
	}
	var maxTol float64
	for i := range p {
		if dBits[i] != pBits[i] {
			sr.Bitwise = false
		}
		carried := 0.0
		if prop != nil {
			carried = prop[i]
		}
		maxTol = math.Max(maxTol, local[i]+carried)
	}
	m := trace.Diff(p, d, local, prop)
	sr.MAE, sr.MaxAbs, sr.RelL2 = m.MAE, m.MaxAbs, m.RelL2
	sr.Margin, sr.OwnMargin, sr.WorstIndex = m.Margin, m.OwnMargin, m.Worst
	sr.WorstDelta, sr.WorstLocal, sr.WorstProp = m.WorstDelta, m.WorstLocal, m.WorstProp
	sr.Local, sr.Prop = local, prop
	if m.NonFinite > 0 {
		sr.fail(CheckNonFinite)
	}
	if sr.Margin > 1 {
		sr.fail(CheckPair)
	}
	if requireBitwise && !sr.Bitwise {
		sr.fail(CheckBitwise)
	}
	var nfD, nfP bool
	sr.RefMarginD, nfD = refMargin(d, ld.ref, tolD)
	sr.RefMarginP, nfP = refMargin(p, lp.ref, tolP)
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
	sr.FARatio = trace.Ratio(sr.FAErrD, tolerance.FAFactor*sr.FAErrP+maxTol)
	if sr.FARatio > 1 {
		sr.fail(CheckFA)
	}
	sr.StrictMargin = contractMargin(d, p, ld.ref, lp.ref, ld.strict, lp.strict, prop)
	sr.EngineMargin = contractMargin(d, p, ld.ref, lp.ref, ld.engine, lp.engine, prop)
}

// contractMargin is the largest of the pair margin and both reference
// margins under one contract's local bounds.
func contractMargin(d, p, refD, refP, tolD, tolP, prop []float64) float64 {
	var m float64
	for i := range p {
		if d[i] == p[i] {
			continue
		}
		carried := 0.0
		if prop != nil {
			carried = prop[i]
		}
		delta := math.Abs(d[i] - p[i])
		if math.IsNaN(delta) || math.IsInf(delta, 0) {
			return math.Inf(1)
		}
		m = math.Max(m, trace.Ratio(math.Max(0, delta-carried), tolD[i]+tolP[i]))
	}
	md, _ := refMargin(d, refD, tolD)
	mp, _ := refMargin(p, refP, tolP)
	return math.Max(m, math.Max(md, mp))
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
		m = math.Max(m, trace.Ratio(e, tol[i]))
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
