// Command tracediff compares two phases of a parity trace stage by stage and
// prints the MAE table of the field report that started this project
// (layer 0 attention, prefill_last vs decode0), naming the first divergent
// stage.
//
// Usage:
//
//	tracediff [flags] FILE        # one JSONL trace holding both phases
//	tracediff [flags] BASE CAND   # baseline phase from BASE, candidate from CAND
//
// Flags:
//
//	-base PHASE      baseline phase (default prefill_last)
//	-cand PHASE      candidate phase (default decode0)
//	-metric M        rel_l2 (default), mae or max_abs: the number compared with -threshold
//	-threshold X     a stage diverges when its metric exceeds X (default 1e-2);
//	                 any NaN/Inf mismatch diverges regardless
//	-bounds=false    ignore the bounds a trace records (see below)
//	-layer N         only layer N
//	-head N          only head N (whole-row stages, head -1, are always kept)
//	-by-stage        one table row per stage (MAE, max|Δ|, rel L2, diverges)
//	                 instead of one row per prompt
//	-json            JSON instead of markdown
//	-strict          unpaired records and pos_id/seq_len_used/dtype
//	                 mismatches are input errors (exit 2)
//	-explain         also rank the shipped faults' signatures against the
//	                 divergence, with the evidence (internal/signature)
//	-pattern P       with -explain, no FILE: explain a typed or pasted pattern
//	                 ('q=0.54 k=0.20 v=2.7e-3', a report's MAE table; - = stdin)
//
// Exit status: 0 no divergence, 1 divergence, 2 usage or input error (a
// malformed line is reported as file:line).
//
// Verdicts. The harness writes, on each decode record, the bounds its pair
// check used (tol_local, tol_prop) and the checks that failed (checks):
// tracediff then judges each stage as the harness did — the pair check
// recomputed from the bounds (|Δ| ≤ tol_local + tol_prop per element,
// margin ≤ 1) and the checks a trace cannot recompute (bitwise, ref-decode,
// ref-prefill, fa, integrity) as recorded — and gives the harness's verdict
// (ok, carried, DIVERGES). MAE, max|Δ| and rel L2 come from trace.Diff,
// the function the harness's report uses. Only stages without recorded
// bounds (an engine's own traces, older traces, or -base other than
// prefill_last) fall back to -metric > -threshold, and the output says
// which rule judged what. The default threshold (rel L2 > 1e-2) is
// explained at trace.DefaultThreshold: f16/bf16 noise of a correct decode
// path is ~1e-3 or below, the field report's faulty q was of order 1; it
// is blind to small real bugs, which is why the bounds come first.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/gretacore/parity/internal/signature"
	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/trace"
)

// Exit codes.
const (
	exitOK       = 0
	exitDiverges = 1
	exitUsage    = 2
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// optInt is an int flag that may be unset ("all").
type optInt struct{ p **int }

func (o optInt) String() string {
	if o.p == nil || *o.p == nil {
		return "all"
	}
	return strconv.Itoa(**o.p)
}

func (o optInt) Set(s string) error {
	if s == "all" {
		*o.p = nil
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("want an integer or \"all\"")
	}
	*o.p = &n
	return nil
}

// run is main without os.Exit, so the golden test can call it.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tracediff", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := trace.DefaultOptions()
	fs.StringVar(&opts.Base, "base", opts.Base, "baseline `phase`")
	fs.StringVar(&opts.Cand, "cand", opts.Cand, "candidate `phase`")
	metric := fs.String("metric", string(opts.Metric), "divergence `metric`: rel_l2, mae or max_abs")
	fs.Float64Var(&opts.Threshold, "threshold", opts.Threshold, "a stage diverges when its metric exceeds this `value` (or on any NaN/Inf mismatch)")
	fs.Var(optInt{&opts.Layer}, "layer", "only this `layer` (default all)")
	fs.Var(optInt{&opts.Head}, "head", "only this `head`; whole-row stages (head -1) are always kept (default all)")
	byStage := fs.Bool("by-stage", false, "one row per stage instead of one row per prompt")
	asJSON := fs.Bool("json", false, "write JSON instead of markdown")
	strict := fs.Bool("strict", false, "unpaired records and pos_id/seq_len_used/dtype mismatches are errors (exit 2)")
	bounds := fs.Bool("bounds", true, "judge stages by the bounds the trace records where it has them (false: -metric/-threshold for every stage)")
	explain := fs.Bool("explain", false, "rank the shipped faults' signatures against the divergence, with the evidence")
	pattern := fs.String("pattern", "", "with -explain: explain this typed or pasted `pattern` instead of a trace ('q=0.54 k=0.20 v=2.7e-3', a markdown MAE table; - reads stdin)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: tracediff [flags] FILE\n       tracediff [flags] BASE CAND\n\n"+
			"Compares phase -base with phase -cand stage by stage (MAE, max|Δ|, rel L2)\n"+
			"and names the first divergent stage. Exit: 0 none, 1 divergence, 2 usage or input error.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	opts.Metric = trace.Metric(*metric)
	opts.IgnoreBounds = !*bounds
	if *explain && *asJSON {
		fmt.Fprintln(stderr, "tracediff: -explain writes markdown; drop -json")
		return exitUsage
	}
	if *pattern != "" {
		return explainPattern(fs, *pattern, opts.Threshold, stdout, stderr)
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fs.Usage()
		return exitUsage
	}
	base, err := trace.ReadFile(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(stderr, "tracediff:", err)
		return exitUsage
	}
	cand := base
	if fs.NArg() == 2 {
		if cand, err = trace.ReadFile(fs.Arg(1)); err != nil {
			fmt.Fprintln(stderr, "tracediff:", err)
			return exitUsage
		}
	}
	rep, err := trace.CompareSets(base, cand, opts)
	if err != nil {
		fmt.Fprintln(stderr, "tracediff:", err)
		return exitUsage
	}
	if *asJSON {
		b, err := json.MarshalIndent(toJSON(rep), "", "  ")
		if err != nil {
			fmt.Fprintln(stderr, "tracediff:", err)
			return exitUsage
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		writeMarkdown(stdout, rep, *byStage)
	}
	if *explain {
		text, err := signature.ExplainTrace(rep)
		if err != nil {
			fmt.Fprintln(stderr, "tracediff:", err)
			return exitUsage
		}
		fmt.Fprint(stdout, text)
	}
	if *strict && (len(rep.Unpaired) > 0 || len(rep.Warnings) > 0) {
		fmt.Fprintf(stderr, "tracediff: -strict: %d unpaired records, %d warnings\n", len(rep.Unpaired), len(rep.Warnings))
		return exitUsage
	}
	if rep.Diverges() {
		return exitDiverges
	}
	return exitOK
}

// num formats a metric like the field report's table: %.5e, with NaN and
// ±Inf spelled out.
func num(x float64) string {
	switch {
	case math.IsNaN(x):
		return "NaN"
	case math.IsInf(x, 1):
		return "+Inf"
	case math.IsInf(x, -1):
		return "-Inf"
	}
	return fmt.Sprintf("%.5e", x)
}

// cell escapes a table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func writeMarkdown(w io.Writer, rep *trace.Report, byStage bool) {
	o := rep.Options
	fmt.Fprintf(w, "## tracediff: %s vs %s\n\n", o.Base, o.Cand)
	fmt.Fprintf(w, "%s **Bold** marks divergent values.\n\n", rule(rep))

	layers := map[int]bool{}
	anyMode := false
	for _, g := range rep.Groups {
		layers[g.Layer] = true
		anyMode = anyMode || g.Mode != ""
	}
	label := func(g *trace.Group) string {
		s := g.PromptID
		if len(layers) > 1 {
			s += fmt.Sprintf(" L%d", g.Layer)
		}
		if g.Mode != "" {
			s += " (" + g.Mode + ")"
		}
		return cell(s)
	}
	bold := func(s string, b bool) string {
		if b {
			return "**" + s + "**"
		}
		return s
	}

	if byStage {
		for i := range rep.Groups {
			g := &rep.Groups[i]
			fmt.Fprintf(w, "### %s (layer %d)\n\n", cell(g.PromptID), g.Layer)
			if g.Mode != "" {
				fmt.Fprintf(w, "Mode: %s\n\n", g.Mode)
			}
			fmt.Fprintf(w, "| Stage | MAE | max\\|Δ\\| | rel L2 | margin | judged by | Verdict |\n|---|---:|---:|---:|---:|---|---|\n")
			for _, s := range g.Stages {
				d := s.Verdict
				if s.Diverges {
					d = "**" + d + "**"
					var why []string
					switch {
					case s.ShapeMismatch > 0:
						why = append(why, "shape mismatch")
					case s.NonFinite > 0:
						why = append(why, fmt.Sprintf("%d NaN/Inf", s.NonFinite))
					}
					for _, c := range s.Checks {
						if c != "non-finite" || s.NonFinite == 0 {
							why = append(why, c)
						}
					}
					if len(why) > 0 {
						d += " (" + strings.Join(why, ", ") + ")"
					}
				}
				margin, by := "–", fmt.Sprintf("%s > %g", o.Metric, o.Threshold)
				if s.Bounded {
					margin, by = num(s.Margin), "bounds"
				}
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", s.Stage, num(s.MAE), num(s.MaxAbs), num(s.RelL2), margin, cell(by), d)
			}
			fmt.Fprintf(w, "\nFirst divergent stage: %s\n\n", firstName(g))
		}
	} else {
		// Columns: every stage present in any group, registry order.
		present := map[stage.Stage]bool{}
		for _, g := range rep.Groups {
			for _, s := range g.Stages {
				present[s.Stage] = true
			}
		}
		var cols []stage.Stage
		for _, st := range stage.All() {
			if present[st] {
				cols = append(cols, st)
			}
		}
		fmt.Fprint(w, "| Prompt |")
		for _, st := range cols {
			fmt.Fprintf(w, " %s MAE |", st)
		}
		fmt.Fprint(w, " First divergent |\n|---|")
		for range cols {
			fmt.Fprint(w, "---:|")
		}
		fmt.Fprint(w, "---|\n")
		for i := range rep.Groups {
			g := &rep.Groups[i]
			byName := map[stage.Stage]*trace.StageResult{}
			for j := range g.Stages {
				byName[g.Stages[j].Stage] = &g.Stages[j]
			}
			fmt.Fprintf(w, "| %s |", label(g))
			for _, st := range cols {
				if s, ok := byName[st]; ok {
					fmt.Fprintf(w, " %s |", bold(num(s.MAE), s.Diverges))
				} else {
					fmt.Fprint(w, " – |")
				}
			}
			fmt.Fprintf(w, " %s |\n", firstName(g))
		}
		fmt.Fprintln(w)
	}

	if st, gs, ok := rep.FirstDivergent(); ok {
		names := make([]string, len(gs))
		for i, g := range gs {
			names[i] = label(g)
		}
		fmt.Fprintf(w, "**First divergent stage: %s** (%s).\n", st, strings.Join(names, ", "))
	} else {
		fmt.Fprintln(w, "No divergent stage.")
	}
	if n := len(rep.Unpaired) + len(rep.Warnings); n > 0 {
		fmt.Fprintf(w, "\n### Warnings\n\n")
		const max = 10
		shown := 0
		for _, u := range rep.Unpaired {
			if shown < max {
				fmt.Fprintf(w, "- unpaired %s record %v at %v\n", u.Phase, u.Key, u.Source)
			}
			shown++
		}
		for _, s := range rep.Warnings {
			if shown < max {
				fmt.Fprintf(w, "- %s\n", s)
			}
			shown++
		}
		if shown > max {
			fmt.Fprintf(w, "- … %d more\n", shown-max)
		}
	}
}

// rule says how the stages were judged: by the bounds the trace records,
// by the threshold (saying that it is a fixed threshold, not the harness's
// bounds), or both.
func rule(rep *trace.Report) string {
	o := rep.Options
	thr := fmt.Sprintf("%s > %g or on any NaN/Inf mismatch", o.Metric, o.Threshold)
	bounds := "the bounds the harness recorded in the trace (pair check |Δ| ≤ tol_local + tol_prop per element, i.e. margin ≤ 1, and the harness's other checks as recorded)"
	switch {
	case rep.Unbounded == 0:
		return "Every stage is judged by " + bounds + "; verdicts as the harness's report: ok, carried (a chained difference upstream explains), DIVERGES."
	case rep.Bounded == 0 && o.IgnoreBounds:
		return "A stage diverges when " + thr + " (-bounds=false: recorded bounds ignored)."
	case rep.Bounded == 0:
		return "No bounds recorded for these records: a stage diverges when " + thr + " — a fixed threshold, not the harness's bounds, so a small real bug can pass."
	}
	return fmt.Sprintf("%d stage results are judged by %s; %d without recorded bounds diverge when %s (a fixed threshold).", rep.Bounded, bounds, rep.Unbounded, thr)
}

func firstName(g *trace.Group) string {
	if !g.HasFirst {
		return "none"
	}
	return "**" + g.First.String() + "**"
}

// The JSON report. Metrics use trace.Float, so NaN and ±Inf are written as
// "NaN", "+Inf", "-Inf" like trace values.
type jsonReport struct {
	BasePhase      string       `json:"base_phase"`
	CandPhase      string       `json:"cand_phase"`
	Metric         string       `json:"metric"`
	Threshold      float64      `json:"threshold"`
	Bounded        int          `json:"stages_judged_by_bounds"`
	Unbounded      int          `json:"stages_judged_by_threshold"`
	Diverges       bool         `json:"diverges"`
	FirstDivergent string       `json:"first_divergent,omitempty"`
	Groups         []jsonGroup  `json:"groups"`
	Unpaired       []jsonUnpair `json:"unpaired,omitempty"`
	Warnings       []string     `json:"warnings,omitempty"`
}

type jsonGroup struct {
	PromptID       string      `json:"prompt_id"`
	Layer          int         `json:"layer"`
	Mode           string      `json:"mode,omitempty"`
	FirstDivergent string      `json:"first_divergent,omitempty"`
	Stages         []jsonStage `json:"stages"`
}

type jsonStage struct {
	Stage         string       `json:"stage"`
	Heads         int          `json:"heads"`
	N             int          `json:"n"`
	MAE           trace.Float  `json:"mae"`
	MaxAbs        trace.Float  `json:"max_abs"`
	RelL2         trace.Float  `json:"rel_l2"`
	NonFinite     int          `json:"non_finite_mismatch"`
	ShapeMismatch int          `json:"shape_mismatch"`
	Diverges      bool         `json:"diverges"`
	JudgedBy      string       `json:"judged_by"` // "bounds" or "threshold"
	Margin        *trace.Float `json:"margin,omitempty"`
	OwnMargin     *trace.Float `json:"own_margin,omitempty"`
	Checks        []string     `json:"checks,omitempty"`
	Verdict       string       `json:"verdict"`
}

type jsonUnpair struct {
	Phase  string `json:"phase"`
	Record string `json:"record"`
	Source string `json:"source"`
}

func toJSON(rep *trace.Report) jsonReport {
	o := rep.Options
	j := jsonReport{BasePhase: o.Base, CandPhase: o.Cand, Metric: string(o.Metric), Threshold: o.Threshold,
		Bounded: rep.Bounded, Unbounded: rep.Unbounded,
		Diverges: rep.Diverges(), Groups: []jsonGroup{}, Warnings: rep.Warnings}
	if st, _, ok := rep.FirstDivergent(); ok {
		j.FirstDivergent = st.String()
	}
	for _, g := range rep.Groups {
		jg := jsonGroup{PromptID: g.PromptID, Layer: g.Layer, Mode: g.Mode, Stages: []jsonStage{}}
		if g.HasFirst {
			jg.FirstDivergent = g.First.String()
		}
		for _, s := range g.Stages {
			js := jsonStage{
				Stage: s.Stage.String(), Heads: s.Heads, N: s.N,
				MAE: trace.Float(s.MAE), MaxAbs: trace.Float(s.MaxAbs), RelL2: trace.Float(s.RelL2),
				NonFinite: s.NonFinite, ShapeMismatch: s.ShapeMismatch, Diverges: s.Diverges,
				JudgedBy: "threshold", Checks: s.Checks, Verdict: s.Verdict,
			}
			if s.Bounded {
				m, om := trace.Float(s.Margin), trace.Float(s.OwnMargin)
				js.JudgedBy, js.Margin, js.OwnMargin = "bounds", &m, &om
			}
			jg.Stages = append(jg.Stages, js)
		}
		j.Groups = append(j.Groups, jg)
	}
	for _, u := range rep.Unpaired {
		j.Unpaired = append(j.Unpaired, jsonUnpair{u.Phase, u.Key.String(), u.Source.String()})
	}
	return j
}

// stdin is where -pattern - reads (a variable for the tests).
var stdin io.Reader = os.Stdin

// explainPattern is -explain -pattern: the pattern (or stdin for "-")
// ranked against the fault signatures. -threshold, when given, replaces the
// relative rule (signature.RelativeFactor) that turns values into verdicts.
func explainPattern(fs *flag.FlagSet, pattern string, threshold float64, stdout, stderr io.Writer) int {
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "tracediff: -pattern takes no trace file")
		return exitUsage
	}
	if pattern == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			fmt.Fprintln(stderr, "tracediff:", err)
			return exitUsage
		}
		pattern = string(b)
	}
	opt := signature.PasteOptions{Threshold: threshold}
	fs.Visit(func(f *flag.Flag) { opt.HasThreshold = opt.HasThreshold || f.Name == "threshold" })
	text, diverges, err := signature.ExplainText(pattern, opt)
	if err != nil {
		fmt.Fprintln(stderr, "tracediff: -pattern:", err)
		return exitUsage
	}
	fmt.Fprint(stdout, text)
	if diverges {
		return exitDiverges
	}
	return exitOK
}
