package harness

import (
	"fmt"
	"math"
	"strings"

	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/stage"
)

// Verdict is a stage result's one-word verdict, the one the report, the
// trace (Record.Verdict) and tracediff give:
//
//   - "DIVERGES": the stage fails, and fails in isolation too (it is faulty
//     in its own right), or has no isolated counterpart;
//   - "carried": a chained stage whose difference comes from upstream —
//     it fails chained only (it passes when fed prefill's inputs), or it
//     passes but only thanks to the carried allowance (|Δ| beyond its own
//     local budget, within local + carried: OwnMargin > 1 ≥ Margin);
//   - "ok": every check passes within the stage's own budget.
func (r *Result) Verdict(s *StageResult) string {
	switch {
	case !s.OK() && r.Carried(s):
		return "carried"
	case !s.OK():
		return "DIVERGES"
	case s.Mode == Chained && s.OwnMargin > 1:
		return "carried"
	}
	return "ok"
}

// Carrying returns the chained stages of a step whose verdict is
// "carried": the differences upstream explains.
func (r *Result) Carrying(step int) []stage.Stage {
	var out []stage.Stage
	for i := range r.Stages {
		if s := &r.Stages[i]; s.Mode == Chained && s.Step == step && r.Verdict(s) == "carried" {
			out = append(out, s.Stage)
		}
	}
	return out
}

func num(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "inf"
	case math.IsNaN(v):
		return "NaN"
	case v == 0:
		return "0"
	}
	return fmt.Sprintf("%.3e", v)
}

// Routes describes which kernels ran for the projections (route
// attestation), prefill and decode.
func (r *Result) Routes() string {
	var b strings.Builder
	for _, st := range stage.Projections() {
		if r.Ran[st] {
			fmt.Fprintf(&b, "  %-9s prefill: %-40s decode: %s\n", st, r.Prefill[st], r.Decode[st])
		}
	}
	// The attention kernels too, where the library names them: which
	// FlashAttention / flash-decoding variant ran matters as much as the
	// GEMM route.
	for _, st := range stage.All() {
		d := defOf(st)
		if (d.needs != gpapi.CapUnfused && d.needs != gpapi.CapFused) || !r.Ran[st] || (r.Prefill[st].Kernel == "" && r.Decode[st].Kernel == "") {
			continue
		}
		fmt.Fprintf(&b, "  %-9s prefill: %-40s decode: %s\n", st, r.Prefill[st], r.Decode[st])
	}
	return b.String()
}

// Cell escapes a GitHub-flavoured markdown table cell: a "|" would end
// the cell, a newline the row.
func Cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// tableHeader is the per-stage table's header: one cell per column, the
// pipes in "max|Δ|" escaped (the header and every row must have as many
// cells as the delimiter row, or GitHub renders no table at all).
var tableHeader = []string{"step", "mode", "stage", "MAE", "max|Δ|", "rel L2", "worst |Δ|",
	"bound there: local + carried", "margin", "bitwise", "ref margin d/p", "FA ratio", "within", "verdict"}

// tableAlign is the delimiter row's alignment per column.
var tableAlign = []string{"---", "---", "---", "---:", "---:", "---:", "---:", "---:", "---:", "---", "---:", "---:", "---", "---"}

// Table renders the per-stage table in the field report's style: one row
// per (step, mode, stage), with the bound the pair check used at the worst
// element (local budget + the allowance carried from upstream), the
// margin against it (so the slack of a passing stage is visible too) and
// the verdict (Verdict; failing checks in parentheses).
func (r *Result) Table() string {
	var b strings.Builder
	row := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + Cell(c) + " |")
		}
		b.WriteString("\n")
	}
	row(tableHeader)
	b.WriteString("|" + strings.Join(tableAlign, "|") + "|\n")
	for i := range r.Stages {
		s := &r.Stages[i]
		v := r.Verdict(s)
		if !s.OK() {
			v += " (" + joinChecks(s.Fails) + ")"
		}
		bound := "–"
		if s.WorstIndex >= 0 {
			bound = num(s.WorstLocal)
			if s.Mode == Chained {
				bound += " + " + num(s.WorstProp)
			}
		}
		worst := "–"
		if s.WorstIndex >= 0 {
			worst = num(s.WorstDelta)
		}
		row([]string{fmt.Sprintf("decode%d", s.Step), string(s.Mode), s.Stage.String(), num(s.MAE), num(s.MaxAbs), num(s.RelL2),
			worst, bound, num(s.Margin), fmt.Sprint(s.Bitwise), num(s.RefMarginD) + " / " + num(s.RefMarginP), num(s.FARatio), within(s), v})
	}
	return b.String()
}

// TableLegend explains the table's bound, margin and verdict columns.
const TableLegend = `Pair check: an element passes when |Δ| = |decode − prefill| ≤ local + carried, where local is the ` +
	`contract's error budget of the two kernels on their own inputs and carried the exact (or first-order) change of the ` +
	`stage's function when its inputs differ (chained mode only; 0 in isolated mode). "bound there" is that bound at the ` +
	`worst element; margin = max(0, |Δ| − carried) / local there (≤ 1 passes). Verdict: ok = within the stage's own budget; ` +
	`carried = a chained difference upstream explains (beyond the stage's own budget but within local + carried, or failing ` +
	`chained only); DIVERGES = the stage fails in its own right (in isolation too). Failing checks are in parentheses.`

// Markdown is the failure report (report.md) as GitHub-flavoured
// markdown: a heading, the summary in a code block, the per-stage table
// with its legend, the rerun command, and extra lines.
func (r *Result) Markdown(rerun string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Parity case %s\n\n```text\n%s```\n\n%s\n%s\n\nRerun:\n\n```sh\n%s\n```\n", r.Case.Name(), r.Summary(), r.Table(), TableLegend, rerun)
	for _, e := range extra {
		if e != "" {
			b.WriteString("\n" + e + "\n")
		}
	}
	return b.String()
}

// within says which accuracy contract a stage's outputs meet: "strict",
// "engine, beyond strict" (a rounding-level difference, not a logic bug),
// or "beyond engine".
func within(s *StageResult) string {
	switch s.Within() {
	case "strict":
		return "strict"
	case "engine":
		return "engine, beyond strict"
	}
	return "beyond engine"
}

func joinChecks(cs []Check) string {
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = string(c)
	}
	return strings.Join(s, ",")
}

// Summary is the failure report's head: the case, backend, fault, first
// divergence and isolated blame, the routes that ran, integrity notes.
func (r *Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "case %s  backend=%q  fault=%s  contract=%s  bitwise=%v\n", r.Case.Name(), r.Backend, r.Fault, r.Case.Contract, r.Case.RequireBitwise())
	if f := r.FirstDivergence(); f != nil {
		fmt.Fprintf(&b, "first divergence (chained): %s at decode%d (%s; %s)\n", f.Stage, f.Step, joinChecks(f.Fails), within(f))
	} else {
		b.WriteString("first divergence (chained): none\n")
	}
	iso := r.IsolatedFailures()
	names := make([]string, len(iso))
	for i, s := range iso {
		names[i] = s.String()
	}
	fmt.Fprintf(&b, "fails in isolation: [%s]\n", strings.Join(names, " "))
	step := 0
	if f := r.FirstDivergence(); f != nil {
		step = f.Step
	}
	if c := r.Carrying(step); len(c) > 0 {
		names := make([]string, len(c))
		for i, s := range c {
			names[i] = s.String()
		}
		fmt.Fprintf(&b, "carried from upstream (chained, decode%d): [%s]\n", step, strings.Join(names, " "))
	}
	b.WriteString("routes (attested):\n")
	b.WriteString(r.Routes())
	for _, is := range r.Issues {
		fmt.Fprintf(&b, "integrity: %s\n", is)
	}
	if n := r.NeedEngine(); len(n) > 0 {
		fmt.Fprintf(&b, "within engine, beyond strict: %s (a rounding-level difference: extra roundings of intermediates; -parity.contract=engine accepts it)\n", strings.Join(n, " "))
	}
	for i := range r.Stages {
		if s := &r.Stages[i]; s.failed(CheckBitwise) && s.Mode == Isolated {
			fmt.Fprintf(&b, "%s: declared batch invariant (gp_batch_invariant_stages) but decode differs from prefill bit for bit (decode%d, isolated)\n", s.Stage, s.Step)
		}
	}
	if len(r.NotInvariant) > 0 {
		names := make([]string, len(r.NotInvariant))
		for i, s := range r.NotInvariant {
			names[i] = s.String()
		}
		fmt.Fprintf(&b, "bitwise not required of %s: the library does not declare them batch invariant (gp_batch_invariant_stages)\n", strings.Join(names, " "))
	}
	var notRun, mlpNotRun []string
	for _, st := range stage.All() {
		switch {
		case r.Ran[st]:
		case st.InHead() && !r.Case.Head:
			// the head runs after the last layer of a case that asks for it
		case defOf(st).needs == gpapi.CapMLP:
			mlpNotRun = append(mlpNotRun, st.String())
		default:
			notRun = append(notRun, st.String())
		}
	}
	if len(notRun) > 0 {
		fmt.Fprintf(&b, "stages not run (capability missing or fused-only case): %s\n", strings.Join(notRun, " "))
	}
	if len(mlpNotRun) > 0 {
		fmt.Fprintf(&b, "MLP stages skipped (%s): %s\n", r.mlpSkipReason(), strings.Join(mlpNotRun, " "))
	}
	return b.String()
}

// mlpSkipReason says why a case ran no MLP stage: the shape has none, or
// the library lacks the capability (naming its symbols).
func (r *Result) mlpSkipReason() string {
	if !r.Case.Model.HasMLP() {
		return "the shape has no MLP: intermediate_size 0"
	}
	if r.Case.AttnOnly {
		return "attn-only case"
	}
	return (&gpapi.MissingError{Backend: r.Backend, Cap: gpapi.CapMLP}).Error()
}

// WorstMargins returns, per stage, the largest pair margin over steps and
// modes: the slack report of a passing run.
func (r *Result) WorstMargins() [stage.Count]float64 {
	var m [stage.Count]float64
	for _, s := range r.Stages {
		m[s.Stage] = math.Max(m[s.Stage], s.Margin)
	}
	return m
}

// NeedEngine lists the failing stages (as "stage@mode/step") whose every
// element is within the engine contract but not within strict: under
// -parity.contract=strict they are reported as rounding-level differences.
func (r *Result) NeedEngine() []string {
	var out []string
	for i := range r.Stages {
		s := &r.Stages[i]
		if !s.OK() && s.Within() == "engine" {
			out = append(out, fmt.Sprintf("%s@%s/decode%d", s.Stage, s.Mode, s.Step))
		}
	}
	return out
}
