package harness

import (
	"math"

	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/tolerance"
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
	Ran             [stage.Count]bool        // the stages the plan ran
	// NotInvariant lists the stages a bitwise case did not hold to bitwise
	// equality because the library does not declare them batch invariant.
	NotInvariant []stage.Stage
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
// FlashAttention-style check. Stages that feed the cache are computed for
// every row 0..last (attention reads them), the others only for the decode
// rows.
func chainReference(k *ctx, p *plan) [][stage.Count][]float64 {
	c, dm := k.c, k.dm
	first, last := c.S-1, c.S-1+c.Steps-1
	feedsCache := p.feeding(cacheStage)
	vals := make([][stage.Count][]float64, last+1)
	for _, def := range p.defs {
		from := first
		if feedsCache[def.st] {
			from = 0
		}
		reads := p.readsOf(def)
		if def.refRows != nil && last-from+1 > 1 {
			var x []float64
			for r := from; r <= last; r++ {
				x = append(x, k.chainIn(p, def, reads, vals, r).x[0]...)
			}
			y := def.refRows(k, x, last-from+1)
			w := def.width(dm)
			for r := from; r <= last; r++ {
				vals[r][def.st] = y[(r-from)*w : (r-from+1)*w]
			}
			continue
		}
		for r := from; r <= last; r++ {
			vals[r][def.st] = def.ref(k, k.chainIn(p, def, reads, vals, r), r, c.PosOffset+r)
		}
	}
	return vals[first:]
}

// chainIn is stageIn for row r of the chain reference: the chain's own
// values of the stages def reads, and its cache rows 0..r.
func (k *ctx) chainIn(p *plan, def *stageDef, reads []stage.Stage, vals [][stage.Count][]float64, r int) stageIn {
	var in stageIn
	if def.readsInput {
		in.x = append(in.x, k.in.X[r*k.dm.h:(r+1)*k.dm.h])
	}
	for _, s := range reads {
		v := vals[r][s]
		in.x = append(in.x, v[:primaryLen(defOf(s), k.dm, v)])
	}
	if def.cache != cacheNone {
		for j := 0; j <= r; j++ {
			kv := vals[j][cacheStage]
			in.kRows = append(in.kRows, kv[:k.dm.kvd])
			in.vRows = append(in.vRows, kv[k.dm.kvd:])
		}
	}
	return in
}

// feeding returns the stages target depends on, target included.
func (p *plan) feeding(target stage.Stage) [stage.Count]bool {
	var need [stage.Count]bool
	need[target] = true
	for i := len(p.defs) - 1; i >= 0; i-- {
		if d := p.defs[i]; need[d.st] {
			for _, s := range p.readsOf(d) {
				need[s] = true
			}
		}
	}
	return need
}

// local is a stage's float64 reference on one path's inputs and its
// local bounds: strict, and strict plus the engine contract's extra term.
type local struct {
	ref, strict, engine []float64
}

func (k *ctx) local(def *stageDef, in stageIn, r, pos int) local {
	var ref, strict, extra []float64
	if def.refTol != nil {
		ref, strict, extra = def.refTol(k, in, r, pos)
	} else {
		ref = def.ref(k, in, r, pos)
		strict, extra = def.tol(k, in, ref, r, pos)
	}
	engine := make([]float64, len(strict))
	for i := range strict {
		engine[i] = strict[i] + extra[i]
	}
	return local{ref, strict, engine}
}

// bound is the local bound the case's contract uses.
func (l local) bound(c tolerance.Contract) []float64 {
	if c == tolerance.Engine {
		return l.engine
	}
	return l.strict
}

// Evaluate compares a trace: for every decode step, mode and stage, decode
// against prefill's row (pair check), each against the float64 reference on
// its own inputs (local checks) and against the chain reference (FA check).
// Bitwise equality is required (forced route or Case.Bitwise) only of the
// stages the library declares batch invariant.
func Evaluate(c Case, in *Inputs, tr *Trace) *Result {
	dm := caseDims(c)
	k := &ctx{c: c, dm: dm, in: in}
	p := tr.plan()
	res := &Result{Case: c, Chain: chainReference(k, p), Trace: tr, Ran: tr.Ran}
	if len(tr.Prefill) > 0 {
		res.Prefill = tr.Prefill[0].Launch
	}
	if len(tr.Chained) > 0 {
		res.Decode = tr.Chained[0].Launch
	}
	if c.RequireBitwise() {
		for _, d := range p.defs {
			if !tr.Invariant[d.st] {
				res.NotInvariant = append(res.NotInvariant, d.st)
			}
		}
	}
	for t := 0; t < c.Steps && t < len(tr.Prefill); t++ {
		pre := &tr.Prefill[t]
		r, pos := pre.R, pre.Pos
		// Local references of the prefill row; isolated decode has the same
		// inputs, so they serve it too.
		var lp [stage.Count]local
		var inP [stage.Count]stageIn
		for _, def := range p.defs {
			inP[def.st] = k.inputsOf(p, def, pre)
			lp[def.st] = k.local(def, inP[def.st], r, pos)
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
			for _, def := range p.defs {
				st := def.st
				sr := StageResult{Stage: st, Mode: mode, Step: t}
				ld := lp[st]
				var prop []float64
				if mode == Chained {
					inD := k.inputsOf(p, def, dec)
					if !sameInputs(inD, inP[st]) {
						ld = k.local(def, inD, r, pos)
					}
					prop = def.prop(k, inD, inP[st], ld.ref, lp[st].ref, r, pos)
				}
				compareStage(&sr, dec.Out[st], pre.Out[st], dec.Bits[st], pre.Bits[st], ld, lp[st], prop, res.Chain[t][st], c.Contract, c.RequireBitwise() && tr.Invariant[st])
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
	// A failed device reference fails its stage in both modes.
	for _, is := range k.ref.issues {
		res.Issues = append(res.Issues, is)
		attach(is, Chained)
		attach(is, Isolated)
	}
	return res
}

// sameInputs reports whether decode read exactly prefill's values (every
// element equal and of the same bits: no NaN, no ±0 swap), so that its
// local reference and bounds, deterministic functions of those values, are
// prefill's and need not be computed again: on forced routes every stage
// of a step reads the same values on both paths, and a projection's local
// check is a float64 pass over its whole weight matrix.
func sameInputs(a, b stageIn) bool {
	return sameRows(a.x, b.x) && sameRows(a.kRows, b.kRows) && sameRows(a.vRows, b.vRows)
}

func sameRows(a, b [][]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j, v := range a[i] {
			if v != b[i][j] || math.Float64bits(v) != math.Float64bits(b[i][j]) {
				return false
			}
		}
	}
	return true
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
