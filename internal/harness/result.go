package harness

import (
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/reference"
	"github.com/gretacore/parity/internal/stage"
)

// Result is the verdict of one case.
type Result struct {
	Case    Case
	Backend string
	Fault   string // the library's active fault during the run ("none")
	Stages  []StageResult
	Issues  []Issue
	// Prefill and Decode attest which kernels ran for each stage (decode:
	// chained step 0).
	Prefill, Decode [stage.Count]gpapi.Launch
	Chain           [][stage.Count][]float64 // float64 chain reference, per step
	Trace           *Trace                   // the rows compared
}

// Pass reports whether every check of every stage passed.
func (r *Result) Pass() bool {
	for i := range r.Stages {
		if !r.Stages[i].OK() {
			return false
		}
	}
	return true
}

// FirstDivergence returns the first failing chained stage, in (step, stage)
// order: where divergence starts. nil if none.
func (r *Result) FirstDivergence() *StageResult {
	for i := range r.Stages {
		s := &r.Stages[i]
		if s.Mode == Chained && !s.OK() {
			return s
		}
	}
	return nil
}

// IsolatedFailures returns the stages that fail with prefill's inputs, at
// the step of the first divergence (or any step if none): the stages that
// are faulty in their own right.
func (r *Result) IsolatedFailures() []stage.Stage {
	step := -1
	if f := r.FirstDivergence(); f != nil {
		step = f.Step
	}
	var out []stage.Stage
	seen := map[stage.Stage]bool{}
	for _, s := range r.Stages {
		if s.Mode == Isolated && !s.OK() && (step < 0 || s.Step == step) && !seen[s.Stage] {
			out = append(out, s.Stage)
			seen[s.Stage] = true
		}
	}
	return out
}

// Carried reports whether a failing chained stage result only carries an
// upstream divergence: it passes when fed prefill's inputs.
func (r *Result) Carried(s *StageResult) bool {
	if s.Mode != Chained || s.OK() {
		return false
	}
	for _, o := range r.Stages {
		if o.Mode == Isolated && o.Step == s.Step && o.Stage == s.Stage {
			return o.OK()
		}
	}
	return false
}

// chainReference computes every stage of every decode row in float64 from
// the original inputs, with no intermediate rounding: the reference of the
// FlashAttention-style check.
func chainReference(c Case, dm dims, in *Inputs) [][stage.Count][]float64 {
	m, W := c.Model, in.W
	h := dm.h
	last := c.S - 1 + c.Steps - 1
	n := last + 1
	xn := make([]float64, n*h)
	for r := 0; r < n; r++ {
		y, _ := reference.RMSNorm(in.X[r*h:(r+1)*h], W.NormW, float64(dm.eps))
		copy(xn[r*h:], y)
	}
	kAll := reference.LinearRows(xn, n, h, W.Wk, W.Bk, dm.kvd)
	vAll := reference.LinearRows(xn, n, h, W.Wv, W.Bv, dm.kvd)
	theta, layout := float64(dm.theta), int(m.Layout())
	kr := make([][]float64, n)
	vr := make([][]float64, n)
	for r := 0; r < n; r++ {
		kr[r] = reference.Rope(kAll[r*dm.kvd:(r+1)*dm.kvd], c.PosOffset+r, dm.nkv, dm.hd, theta, layout)
		vr[r] = vAll[r*dm.kvd : (r+1)*dm.kvd]
	}
	out := make([][stage.Count][]float64, c.Steps)
	for t := range out {
		r := c.S - 1 + t
		pos := c.PosOffset + r
		var o [stage.Count][]float64
		o[stage.XNorm] = xn[r*h : (r+1)*h]
		o[stage.QProj] = reference.Linear(o[stage.XNorm], W.Wq, W.Bq, dm.qd)
		o[stage.KProj] = kAll[r*dm.kvd : (r+1)*dm.kvd]
		o[stage.VProj] = vr[r]
		o[stage.QRope] = reference.Rope(o[stage.QProj], pos, dm.nh, dm.hd, theta, layout)
		o[stage.KRope] = kr[r]
		o[stage.KVCache] = append(append([]float64{}, kr[r]...), vr[r]...)
		o[stage.QK] = reference.Scores(o[stage.QRope], kr[:r+1], dm.nh, dm.nkv, dm.hd, r, float64(dm.scale))
		o[stage.Softmax] = reference.Softmax(o[stage.QK], dm.nh, r+1)
		o[stage.PV] = reference.PV(o[stage.Softmax], vr[:r+1], dm.nh, dm.nkv, dm.hd)
		o[stage.AttnOut] = reference.Linear(o[stage.PV], W.Wo, nil, h)
		out[t] = o
	}
	return out
}

// Evaluate compares a trace: for every decode step, mode and stage, decode
// against prefill's row (pair check), each against the float64 reference on
// its own inputs (local checks) and against the chain reference (FA check).
func Evaluate(c Case, in *Inputs, tr *Trace) *Result {
	dm := caseDims(c)
	k := &ctx{c: c, dm: dm, in: in}
	res := &Result{Case: c, Chain: chainReference(c, dm, in), Trace: tr}
	if len(tr.Prefill) > 0 {
		res.Prefill = tr.Prefill[0].Launch
	}
	if len(tr.Chained) > 0 {
		res.Decode = tr.Chained[0].Launch
	}
	bitwise := c.RequireBitwise()
	for t := 0; t < c.Steps && t < len(tr.Prefill); t++ {
		pre := &tr.Prefill[t]
		r, pos := pre.R, pre.Pos
		// Local references of the prefill row; isolated decode has the same
		// inputs, so they serve it too.
		var refP, tolP [stage.Count][]float64
		var inP [stage.Count]stageIn
		for _, st := range stage.All() {
			inP[st] = k.inputsOf(st, pre)
			refP[st], tolP[st] = k.local(st, inP[st], r, pos)
		}
		for _, mode := range []Path{Chained, Isolated} {
			rows := tr.Chained
			if mode == Isolated {
				rows = tr.Isolated
			}
			if t >= len(rows) {
				continue
			}
			dec := &rows[t]
			for _, st := range stage.All() {
				sr := StageResult{Stage: st, Mode: mode, Step: t}
				refD, tolD := refP[st], tolP[st]
				var prop []float64
				if mode == Chained {
					inD := k.inputsOf(st, dec)
					refD, tolD = k.local(st, inD, r, pos)
					prop = k.prop(st, inD, inP[st], refP[st], r, pos)
				}
				local := make([]float64, len(tolP[st]))
				for i := range local {
					local[i] = tolD[i] + tolP[st][i]
				}
				compareStage(&sr, dec.Out[st], pre.Out[st], dec.Bits[st], pre.Bits[st], local, prop, refD, tolD, refP[st], tolP[st], res.Chain[t][st], bitwise)
				res.Stages = append(res.Stages, sr)
			}
		}
	}
	// Integrity issues fail their stage: prefill's in both modes.
	attach := func(is Issue, mode Path) {
		step := is.Step
		if step < 0 {
			step = 0
		}
		for i := range res.Stages {
			s := &res.Stages[i]
			if s.Stage == is.Stage && s.Mode == mode && s.Step == step {
				s.fail(CheckIssue)
				s.Notes = append(s.Notes, is.String())
			}
		}
	}
	for _, rowsOf := range [][]Row{tr.Prefill, tr.Chained, tr.Isolated} {
		for _, row := range rowsOf {
			for _, is := range row.Issues {
				res.Issues = append(res.Issues, is)
				if is.Path == Prefill {
					attach(is, Chained)
					attach(is, Isolated)
				} else {
					attach(is, is.Path)
				}
			}
		}
	}
	return res
}

// Rows returns prefill's row and the decode row of a step in a mode, or
// nils when the trace has none (the trace is kept for artifacts).
func (r *Result) Rows(step int, mode Path) (pre, dec *Row) {
	if r.Trace == nil || step >= len(r.Trace.Prefill) {
		return nil, nil
	}
	rows := r.Trace.Chained
	if mode == Isolated {
		rows = r.Trace.Isolated
	}
	if step >= len(rows) {
		return nil, nil
	}
	return &r.Trace.Prefill[step], &rows[step]
}
