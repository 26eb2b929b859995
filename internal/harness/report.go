package harness

import (
	"fmt"
	"math"
	"strings"

	"github.com/gretacore/parity/internal/stage"
)

// Verdict is a stage result's one-word verdict: "ok", "DIVERGES" (fails,
// and fails in isolation too, or is the first chained failure), "carried"
// (fails chained only: it carries an upstream difference).
func (r *Result) Verdict(s *StageResult) string {
	switch {
	case s.OK():
		return "ok"
	case r.Carried(s):
		return "carried"
	}
	return "DIVERGES"
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
		fmt.Fprintf(&b, "  %-8s prefill: %-40s decode: %s\n", st, r.Prefill[st], r.Decode[st])
	}
	return b.String()
}

// Table renders the per-stage table in the field report's style: one row
// per (step, mode, stage), with the margin (largest |Δ|/tolerance) so the
// slack of a passing stage is visible too.
func (r *Result) Table() string {
	var b strings.Builder
	b.WriteString("| step | mode | stage | MAE | max|Δ| | rel L2 | margin | bitwise | ref margin d/p | FA ratio | within | verdict |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---|---:|---:|---|---|\n")
	for i := range r.Stages {
		s := &r.Stages[i]
		v := r.Verdict(s)
		if !s.OK() {
			v += " (" + joinChecks(s.Fails) + ")"
		}
		fmt.Fprintf(&b, "| decode%d | %s | %s | %s | %s | %s | %s | %v | %s / %s | %s | %s | %s |\n",
			s.Step, s.Mode, s.Stage, num(s.MAE), num(s.MaxAbs), num(s.RelL2), num(s.Margin), s.Bitwise,
			num(s.RefMarginD), num(s.RefMarginP), num(s.FARatio), within(s), v)
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
	var notRun []string
	for _, st := range stage.All() {
		if !r.Ran[st] {
			notRun = append(notRun, st.String())
		}
	}
	if len(notRun) > 0 {
		fmt.Fprintf(&b, "stages not run (capability missing or fused-only case): %s\n", strings.Join(notRun, " "))
	}
	return b.String()
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
