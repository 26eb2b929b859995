package signature

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/trace"
)

// Obs is one stage as observed in one mode: diverged or within tolerance,
// and what else the input tells (a margin, the checks that fired, the value
// a user pasted).
type Obs struct {
	Stage    stage.Stage
	Label    string // the name the input used ("q"), "" when it is the stage's name
	Diverges bool
	Value    float64 // the metric the verdict came from (NaN: none)
	Metric   string  // "MAE", "max|Δ|", "rel L2", … ("" when no value)
	Margin   Mag     // pair margin bucket (Verdicts view; "" when unknown)
	RelL2    Mag     // rel L2 bucket of decode − prefill (Differences view; "" when unknown)
	Checks   []string
	// HasChecks: Checks is known (a harness result); nil Checks then means
	// none fired.
	HasChecks bool
	fixed     bool // a pasted verdict word, not a value to classify
	carried   bool // tracediff's verdict: carried (differs because its inputs do)
}

func (o *Obs) name() string {
	if o.Label != "" && o.Label != o.Stage.String() {
		return fmt.Sprintf("%s (%s)", o.Stage, o.Label)
	}
	return o.Stage.String()
}

// Pattern is an observed divergence: per mode, the stages seen (missing
// stages are not evidence either way). A mode with no stages was not
// observed.
type Pattern struct {
	Name   string // the case or prompt
	Source string // "harness result", "trace", "pasted pattern"
	Rule   string // how values became verdicts, for the reader
	View   View   // what "diverges" means: failing the checks, or a large difference
	Modes  [numModes][]Obs
}

// Diverges reports whether any observed stage diverges.
func (p *Pattern) Diverges() bool {
	for _, obs := range p.Modes {
		for _, o := range obs {
			if o.Diverges {
				return true
			}
		}
	}
	return false
}

// obs returns the observation of st in mode m, or nil.
func (p *Pattern) obs(m Mode, st stage.Stage) *Obs {
	for i := range p.Modes[m] {
		if p.Modes[m][i].Stage == st {
			return &p.Modes[m][i]
		}
	}
	return nil
}

// resultStep is the decode step a result is read at: the first
// divergence's, or 0.
func resultStep(res *harness.Result) int {
	if f := res.FirstDivergence(); f != nil {
		return f.Step
	}
	return 0
}

// FromResult reads the harness's own verdict: every stage the case ran, in
// both modes, at the step of the first divergence, with its pair margin
// and the checks that failed.
func FromResult(res *harness.Result) *Pattern {
	p := &Pattern{Name: res.Case.Name(), Source: "harness result", View: Verdicts,
		Rule: "verdicts and margins from the harness's checks (" + res.Case.Contract.String() + " contract)"}
	step := resultStep(res)
	for i := range res.Stages {
		s := &res.Stages[i]
		if s.Step != step || !res.Ran[s.Stage] {
			continue
		}
		m := Chained
		if s.Mode == harness.Isolated {
			m = Isolated
		}
		o := Obs{Stage: s.Stage, Diverges: !s.OK(), Value: s.Margin, Metric: "margin", HasChecks: true}
		if o.Diverges {
			o.Margin = MagOf(s.Margin)
			for _, c := range s.Fails {
				o.Checks = append(o.Checks, string(c))
			}
			slices.Sort(o.Checks)
		}
		p.Modes[m] = append(p.Modes[m], o)
	}
	return p
}

// SignatureOf is the signature of a failing result res (a shipped fault's
// case) given ctrl, the same case without the fault: per mode, the stages
// that fail (margin bucket and checks) or move (rel L2 at least
// RelativeFactor × ctrl's, or a NaN/Inf mismatch), and the stages the case
// did not run.
func SignatureOf(res, ctrl *harness.Result) Signature {
	c := res.Case
	s := Signature{Case: c.Name(), Model: c.Model.Name, Dtype: c.Dtype.String(),
		Chained: []StageSig{}, Isolated: []StageSig{}}
	for _, st := range stage.All() {
		if !res.Ran[st] && (!st.InHead() || c.Head) {
			s.NotRun = append(s.NotRun, st.String())
		}
	}
	type key struct {
		mode harness.Path
		st   stage.Stage
		step int
	}
	base := map[key]*harness.StageResult{}
	for i := range ctrl.Stages {
		cs := &ctrl.Stages[i]
		base[key{cs.Mode, cs.Stage, cs.Step}] = cs
	}
	step := resultStep(res)
	for i := range res.Stages {
		r := &res.Stages[i]
		if r.Step != step || !res.Ran[r.Stage] {
			continue
		}
		m := Chained
		if r.Mode == harness.Isolated {
			m = Isolated
		}
		e := StageSig{Stage: r.Stage.String(), RelL2: MagOf(r.RelL2)}
		nonFinite := slices.Contains(r.Fails, harness.CheckNonFinite)
		if nonFinite {
			e.RelL2 = "inf"
		}
		if b := base[key{r.Mode, r.Stage, r.Step}]; nonFinite || (r.RelL2 > 0 && (b == nil || r.RelL2 >= RelativeFactor*b.RelL2)) {
			e.Moves = true
		}
		if !r.OK() {
			e.Margin = MagOf(r.Margin)
			for _, c := range r.Fails {
				e.Checks = append(e.Checks, string(c))
			}
			slices.Sort(e.Checks)
		}
		if !e.Moves && !e.fails() {
			continue
		}
		if m == Chained {
			s.Chained = append(s.Chained, e)
		} else {
			s.Isolated = append(s.Isolated, e)
		}
	}
	return s
}

// FromTrace turns a tracediff report into one pattern per (prompt, layer).
// Groups without a mode (an engine's own traces) are taken as chained: the
// engine's decode feeds itself. Where every stage of a pattern carries the
// harness's bounds (trace records with tol_local, checks), it is read as
// the harness judged it (Verdicts view: margins, checks, carried stages
// pass); otherwise a stage diverges when tracediff says so — its -metric
// above its -threshold, a NaN/Inf mismatch, or a carried verdict
// (Differences view).
func FromTrace(rep *trace.Report) []*Pattern {
	o := rep.Options
	metric := map[trace.Metric]string{trace.MetricMAE: "MAE", trace.MetricMaxAbs: "max|Δ|", trace.MetricRelL2: "rel L2"}[o.Metric]
	type key struct {
		prompt string
		layer  int
	}
	byKey := map[key]*Pattern{}
	bounded := map[*Pattern]bool{}
	var out []*Pattern
	layers := map[int]bool{}
	for _, g := range rep.Groups {
		layers[g.Layer] = true
	}
	for _, g := range rep.Groups {
		k := key{g.PromptID, g.Layer}
		p := byKey[k]
		if p == nil {
			name := g.PromptID
			if len(layers) > 1 {
				name += fmt.Sprintf(" L%d", g.Layer)
			}
			p = &Pattern{Name: name, Source: "trace"}
			byKey[k], bounded[p] = p, true
			out = append(out, p)
		}
		m := Chained
		if g.Mode == trace.ModeIsolated {
			m = Isolated
		}
		for _, s := range g.Stages {
			rl := MagOf(s.RelL2)
			if s.NonFinite > 0 || s.ShapeMismatch > 0 {
				rl = "inf"
			}
			ob := Obs{Stage: s.Stage, Diverges: s.Diverges, Value: s.Value(o.Metric), Metric: metric, RelL2: rl}
			if s.Bounded {
				ob.Checks, ob.HasChecks = s.Checks, true
				if s.Diverges {
					ob.Margin = MagOf(s.Margin)
				}
			} else {
				bounded[p] = false
			}
			if s.Verdict == trace.VerdictCarried {
				ob.carried = true
			}
			p.Modes[m] = append(p.Modes[m], ob)
		}
	}
	for _, p := range out {
		if bounded[p] {
			p.View = Verdicts
			p.Rule = "the harness's bounds and checks recorded in the trace"
			continue
		}
		p.View = Differences
		p.Rule = fmt.Sprintf("a stage diverges when its %s > %g (tracediff's threshold), on a NaN/Inf mismatch, or when tracediff calls it carried", metric, o.Threshold)
		for m := range p.Modes {
			for i := range p.Modes[m] {
				ob := &p.Modes[m][i]
				ob.Diverges = ob.Diverges || ob.carried
				ob.Margin, ob.Checks, ob.HasChecks = "", nil, false
			}
		}
	}
	return out
}

// describe is the one-line observed pattern of a mode.
func (p *Pattern) describe(m Mode) string {
	var div, clean []string
	for i := range p.Modes[m] {
		o := &p.Modes[m][i]
		n := o.name()
		if !math.IsNaN(o.Value) && o.Metric != "margin" {
			n += " " + fmtNum(o.Value)
		}
		if o.Diverges {
			if o.Margin != "" {
				n += " (margin ~" + string(o.Margin) + ")"
			} else if o.RelL2 != "" && o.Metric != "rel L2" {
				n += " (rel L2 ~" + string(o.RelL2) + ")"
			}
			div = append(div, n)
		} else {
			clean = append(clean, n)
		}
	}
	return fmt.Sprintf("diverges: %s; within tolerance: %s", orNone(div), orNone(clean))
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func fmtNum(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case v == 0:
		return "0"
	}
	return fmt.Sprintf("%.3g", v)
}
