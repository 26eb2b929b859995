package harness

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/stage"
)

// The layers mode: a case chains Case.Layers layers, each with its own
// weights (LayerSeed) and its own KV cache, then the head (final_norm,
// lm_head) after the last. Each layer is one run of the table (Execute)
// whose inputs are the layer before's outputs, on each path:
//
//   - prefill (and isolated decode, which is fed prefill's rows) reads
//     prefill's residual stream: the layer before's mlp_res of every row;
//   - chained decode reads its own stream: the layer before's chained
//     mlp_res of each step (Inputs.DecodeX), as the engine's decode does.
//
// So a difference of a few ulps at layer 0 reaches layer 31 through the
// residual stream in chained mode, and the pair check's carried allowance
// (tolerance's propagation bounds) follows it; isolated mode still blames
// each layer's own stages. Each layer's float64 chain reference (the FA
// check) starts from prefill's input of that layer, not from layer 0: a
// float64 chain through 32 layers is what the pair check already bounds.

// ErrNoChain is returned by ExecuteLayers when the library cannot chain
// layers: without the "mlp" capability a layer has no output (mlp_res) to
// feed the next one.
var ErrNoChain = errors.New("cannot chain layers")

// LayersResult is the verdict of a layers-mode case: each layer's Result
// (Case.Layer = its index; the last one holds the head's stages) and the
// head's token verdict of each decode step.
type LayersResult struct {
	Case   Case
	Layers []*Result
	Tokens []TokenVerdict // per decode step; nil when the head did not run
	Arm    FaultArm       // the fault armed for one layer or the head only
}

// FaultArm is a library fault armed for part of a layers-mode case only
// (-parity.fault-layer): set (gp_set_fault) before that part's calls and
// cleared after them, so that every other layer runs clean and a
// divergence there must be blamed on that layer. Fault "" arms nothing.
type FaultArm struct {
	Fault string
	Layer int  // the layer whose calls run with the fault
	Head  bool // instead of Layer: only the head's calls (final_norm, lm_head)
}

// String names the armed part: "rope_pos_prev at layer 2", "… at the head".
func (f FaultArm) String() string {
	if f.Head {
		return f.Fault + " at the head only"
	}
	return fmt.Sprintf("%s at layer %d only", f.Fault, f.Layer)
}

// ExecuteLayers runs and evaluates c.Depth() layers of c on lib, and the
// head after the last when c.Head is set, with arm's fault armed where it
// says. It returns what it evaluated so far with an error (a kernel's
// error, ErrNoChain).
func ExecuteLayers(lib *gpapi.Lib, c Case, timeout time.Duration, arm FaultArm) (*LayersResult, error) {
	n := c.Depth()
	out := &LayersResult{Case: c, Arm: arm}
	if n > 1 && !c.RunsMLP() {
		return out, fmt.Errorf("%w: case %s runs no MLP (attn-only case or a shape without intermediate_size), so a layer has no output to feed the next", ErrNoChain, c.Name())
	}
	if n > 1 && !lib.Has(gpapi.CapMLP) {
		return out, fmt.Errorf("%w: %v", ErrNoChain, lib.Need(gpapi.CapMLP))
	}
	switch {
	case arm.Fault == "":
	case arm.Head && !c.RunsHead():
		return out, fmt.Errorf("fault %s: the case runs no head (-parity.head, or the layers mode; the shape needs vocab_size and an MLP)", arm)
	case !arm.Head && (arm.Layer < 0 || arm.Layer >= n):
		return out, fmt.Errorf("fault %s: layer %d is not a layer of the case (0..%d)", arm, arm.Layer, n-1)
	}
	var stream []float64
	var decStream [][]float64
	for l := 0; l < n; l++ {
		cl := c
		cl.Layer, cl.Head = l, c.Head && l == n-1
		in := NewInputs(cl)
		if l > 0 {
			in = &Inputs{W: in.W, X: stream, DecodeX: decStream}
		}
		res, err := runLayer(lib, cl, in, timeout, arm, l)
		if res != nil {
			out.Layers = append(out.Layers, res)
		}
		if err != nil {
			return out, fmt.Errorf("layer %d: %w", l, err)
		}
		if l == n-1 {
			break
		}
		stream, decStream = res.Trace.Stream, nil
		for _, row := range res.Trace.Chained {
			decStream = append(decStream, row.Out[stage.MLPRes])
		}
		if stream == nil || len(decStream) != c.Steps {
			return out, fmt.Errorf("layer %d: %w: mlp_res did not run", l, ErrNoChain)
		}
	}
	if last := out.Layers[n-1]; last.Ran[stage.LMHead] {
		for t := range last.Trace.Chained {
			pre, dec := last.Rows(t, Chained)
			out.Tokens = append(out.Tokens, CompareTokens(dec.Out[stage.LMHead], pre.Out[stage.LMHead]))
		}
	}
	return out, nil
}

// runLayer runs and evaluates layer l (case c), with arm's fault set for
// the whole layer (arm.Layer == l) or for its head stages only (arm.Head),
// and cleared after either.
func runLayer(lib *gpapi.Lib, c Case, in *Inputs, timeout time.Duration, arm FaultArm, l int) (*Result, error) {
	var hook func(stage.Stage) error
	armed := "none"
	switch {
	case arm.Fault == "":
	case arm.Head && c.RunsHead():
		armed = arm.String()
		hook = func(st stage.Stage) error {
			if st.InHead() {
				return lib.SetFault(arm.Fault)
			}
			return lib.SetFault("")
		}
	case !arm.Head && arm.Layer == l:
		armed = arm.Fault
		if err := lib.SetFault(arm.Fault); err != nil {
			return nil, fmt.Errorf("arming fault %s: %w", arm.Fault, err)
		}
	}
	tr, err := execute(lib, c, in, timeout, hook)
	if armed != "none" {
		if cerr := lib.SetFault(""); cerr != nil && err == nil {
			err = fmt.Errorf("clearing fault %s: %w", arm.Fault, cerr)
		}
	}
	if err != nil {
		return nil, err
	}
	res := Evaluate(c, in, tr)
	res.Backend, res.Fault = lib.Backend, armed
	if armed == "none" {
		res.Fault = lib.ActiveFault() // GRETA_FAULT for the whole run, if set
	}
	return res, nil
}

// Pass reports whether every layer (and the head) passed.
func (r *LayersResult) Pass() bool {
	for _, l := range r.Layers {
		if !l.Pass() {
			return false
		}
	}
	return true
}

// FirstDivergence returns the first layer with a failing chained stage and
// that stage (its first in step, stage order): where divergence starts.
// -1, nil if none.
func (r *LayersResult) FirstDivergence() (int, *StageResult) {
	for l, res := range r.Layers {
		if f := res.FirstDivergence(); f != nil {
			return l, f
		}
	}
	return -1, nil
}

// StageGroup is the drift plot's line a stage belongs to: "attention"
// (x_norm … attn_out), "MLP" (attn_res … mlp_res) or "head" (final_norm,
// lm_head).
func StageGroup(st stage.Stage) string {
	switch d := defOf(st); {
	case st.InHead():
		return "head"
	case d.needs == gpapi.CapMLP:
		return "MLP"
	}
	return "attention"
}

// StageGroups are the groups in pipeline order.
var StageGroups = []string{"attention", "MLP", "head"}

// LayerMargins returns each layer's worst chained pair margin per stage
// (over its decode steps; -1 for a stage the layer did not run): how a
// difference grows along the residual stream.
func (r *LayersResult) LayerMargins() [][stage.Count]float64 {
	out := make([][stage.Count]float64, len(r.Layers))
	for l, res := range r.Layers {
		for i := range out[l] {
			out[l][i] = -1
		}
		for _, s := range res.Stages {
			if s.Mode == Chained && res.Ran[s.Stage] {
				out[l][s.Stage] = worse(out[l][s.Stage], s.Margin)
			}
		}
	}
	return out
}

// worse is the larger margin; NaN (a non-finite comparison) counts as the
// worst.
func worse(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return math.Max(a, b)
}

// GroupMargins returns, per stage group (StageGroups order), the worst
// chained margin at each layer of the layers that ran it (first: the
// first such layer; the head runs at the last layer only). Groups no
// layer ran are left out.
func (r *LayersResult) GroupMargins() (names []string, first []int, margins [][]float64) {
	lm := r.LayerMargins()
	for _, g := range StageGroups {
		from := -1
		var ms []float64
		for l := range lm {
			m, ran := 0.0, false
			for _, st := range stage.All() {
				if v := lm[l][st]; StageGroup(st) == g && (v >= 0 || math.IsNaN(v)) {
					m, ran = worse(m, v), true
				}
			}
			if !ran {
				continue
			}
			if from < 0 {
				from = l
			}
			ms = append(ms, m)
		}
		if from >= 0 {
			names, first, margins = append(names, g), append(first, from), append(margins, ms)
		}
	}
	return names, first, margins
}

// Report is a layers-mode case's account: the first divergence (layer,
// stage, step), each layer's worst chained margin per stage, and the
// head's tokens.
func (r *LayersResult) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "layers mode: %s, %d layer(s)", r.Case.Name(), len(r.Layers))
	if r.Case.Head {
		b.WriteString(" + head (final_norm, lm_head)")
	}
	if r.Arm.Fault != "" {
		fmt.Fprintf(&b, "; fault %s", r.Arm)
	}
	b.WriteString("\n")
	if l, f := r.FirstDivergence(); f != nil {
		fmt.Fprintf(&b, "first divergence: layer %d, stage %s (decode%d, chained; %s; %s)\n", l, f.Stage, f.Step, joinChecks(f.Fails), within(f))
		if iso := r.Layers[l].IsolatedFailures(); len(iso) > 0 {
			fmt.Fprintf(&b, "fails in isolation at layer %d: %v\n", l, iso)
		}
	} else {
		b.WriteString("first divergence: none\n")
	}
	for t, tv := range r.Tokens {
		fmt.Fprintf(&b, "decode%d: %s\n", t, tv)
	}
	lm := r.LayerMargins()
	var cols []stage.Stage
	for _, st := range stage.All() {
		for l := range lm {
			if lm[l][st] >= 0 || math.IsNaN(lm[l][st]) {
				cols = append(cols, st)
				break
			}
		}
	}
	b.WriteString("\nworst chained margin per layer and stage (≤ 1 passes):\n\n| layer |")
	for _, st := range cols {
		fmt.Fprintf(&b, " %s |", st)
	}
	b.WriteString(" verdict |\n|---:|")
	b.WriteString(strings.Repeat("---:|", len(cols)))
	b.WriteString("---|\n")
	for l := range lm {
		fmt.Fprintf(&b, "| %d |", l)
		for _, st := range cols {
			if m := lm[l][st]; m >= 0 || math.IsNaN(m) {
				fmt.Fprintf(&b, " %s |", num(m))
			} else {
				b.WriteString(" |")
			}
		}
		verdict := "ok"
		if !r.Layers[l].Pass() {
			verdict = "FAIL"
		}
		fmt.Fprintf(&b, " %s |\n", verdict)
	}
	return b.String()
}
