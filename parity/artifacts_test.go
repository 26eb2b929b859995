package parity

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/heatmap"
	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/trace"
)

// artifactsDir is -parity.artifacts, or a folder of this run's own under
// the system temp dir: parity-artifacts/run-<time>-<pid>, so that runs —
// one after the other or side by side — never mix their reports, traces
// and summary.md. The account prints it.
func artifactsDir() string {
	if *flagArtifacts != "" {
		return *flagArtifacts
	}
	return runArtifactsDir()
}

var runArtifactsDir = sync.OnceValue(func() string {
	return filepath.Join(os.TempDir(), "parity-artifacts",
		fmt.Sprintf("run-%s-%d", time.Now().Format("20060102-150405"), os.Getpid()))
})

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._=-]+`)

// writeArtifacts writes a failing case's report, its trace (JSONL, the
// field report's format: prefill_last vs decodeN per stage and head, both
// modes, plus the float64 reference) and a heatmap of |Δ| over heads ×
// positions-in-head for the first divergent stage. It returns the lines
// the failure message adds.
func writeArtifacts(t testing.TB, res *harness.Result, extra []string) string {
	dir := filepath.Join(artifactsDir(), unsafeChars.ReplaceAllString(t.Name(), "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Sprintf("\nartifacts: cannot create %s: %v", dir, err)
	}
	report := filepath.Join(dir, "report.md")
	body := res.Markdown(rerunCommand(t), extra...)
	var files []string
	if err := os.WriteFile(report, []byte(body), 0o644); err == nil {
		files = append(files, report)
	}
	tracePath := filepath.Join(dir, "trace.jsonl")
	os.Remove(tracePath)
	if err := writeTrace(tracePath, res); err == nil {
		files = append(files, tracePath)
	} else {
		files = append(files, "trace: "+err.Error())
	}
	if p := os.Getenv("GRETA_TRACE_ATTN_L0_PIPE_OUT"); p != "" {
		if err := writeTrace(p, res); err == nil {
			files = append(files, p+" (GRETA_TRACE_ATTN_L0_PIPE_OUT, appended)")
		}
	}
	if f := res.FirstDivergence(); f != nil {
		png := filepath.Join(dir, "heatmap_"+f.Stage.String()+".png")
		if err := writeHeatmap(png, res, f); err == nil {
			files = append(files, png)
		} else {
			files = append(files, "heatmap: "+err.Error())
		}
	}
	return "\nartifacts:\n  " + strings.Join(files, "\n  ")
}

// writeTrace appends the trace of the first divergent step (step 0 if
// none): prefill_last and decode records in both modes, and the reference.
func writeTrace(path string, res *harness.Result) error {
	w, err := trace.Append(path)
	if err != nil {
		return err
	}
	defer w.Close()
	step := 0
	if f := res.FirstDivergence(); f != nil {
		step = f.Step
	}
	c := res.Case
	r := c.S - 1 + step
	prompt := c.Name()
	if step > 0 {
		prompt += fmt.Sprintf("#decode%d", step)
	}
	// sr is the harness's comparison the decode records carry: the bounds
	// of its pair check and its verdict, so tracediff judges as it did.
	rec := func(phase, mode string, st stage.Stage, vals []float64, sr *harness.StageResult) error {
		d := harness.RowDtype(c, st).String()
		heads, slices, shapes := harness.HeadSlices(c, st, vals, r)
		var local, prop [][]float64
		var checks []string
		verdict := ""
		if sr != nil && len(sr.Local) == len(vals) {
			_, local, _ = harness.HeadSlices(c, st, sr.Local, r)
			if sr.Prop != nil {
				_, prop, _ = harness.HeadSlices(c, st, sr.Prop, r)
			}
			for _, f := range sr.Fails {
				checks = append(checks, string(f))
			}
			verdict = res.Verdict(sr)
		}
		for i := range heads {
			rc := trace.Record{PromptID: prompt, Phase: phase, Layer: c.Layer, Head: heads[i], Stage: st,
				PosID: c.PosOffset + r, SeqLenUsed: r + 1, DType: d, Shape: shapes[i], Values: slices[i],
				Mode: mode, Backend: res.Backend, Checks: checks, Verdict: verdict}
			if local != nil {
				rc.TolLocal = local[i]
			}
			if prop != nil {
				rc.TolProp = prop[i]
			}
			if err := w.Write(rc); err != nil {
				return err
			}
		}
		return nil
	}
	for _, mode := range []harness.Path{harness.Chained, harness.Isolated} {
		for _, st := range stage.All() {
			pre, dec := res.Rows(step, mode)
			if pre == nil || dec == nil || !res.Ran[st] {
				continue
			}
			if err := rec(trace.PhasePrefillLast, string(mode), st, pre.Out[st], nil); err != nil {
				return err
			}
			if err := rec(trace.DecodePhase(0), string(mode), st, dec.Out[st], stageResult(res, step, mode, st)); err != nil {
				return err
			}
			if err := rec(trace.PhaseReference, string(mode), st, res.Chain[step][st], nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// stageResult is the comparison of one stage of one step in one mode.
func stageResult(res *harness.Result, step int, mode harness.Path, st stage.Stage) *harness.StageResult {
	for i := range res.Stages {
		if s := &res.Stages[i]; s.Step == step && s.Mode == mode && s.Stage == st {
			return s
		}
	}
	return nil
}

// writeHeatmap draws |decode − prefill| of the first divergent stage over
// heads × positions-in-head, with axes labelled by their real extents
// (heatmapAxes).
func writeHeatmap(path string, res *harness.Result, f *harness.StageResult) error {
	pre, dec := res.Rows(f.Step, f.Mode)
	if pre == nil || dec == nil {
		return fmt.Errorf("no rows for step %d", f.Step)
	}
	r := res.Case.S - 1 + f.Step
	_, dSl, _ := harness.HeadSlices(res.Case, f.Stage, dec.Out[f.Stage], r)
	_, pSl, _ := harness.HeadSlices(res.Case, f.Stage, pre.Out[f.Stage], r)
	rows, cols := len(pSl), len(pSl[0])
	rowAx, colAx := heatmapAxes(res.Case, f.Stage, rows, cols)
	if rows == 1 && res.Case.Model.NHeads > 1 && cols%res.Case.Model.NHeads == 0 {
		rows, cols = res.Case.Model.NHeads, cols/res.Case.Model.NHeads
		rowAx = heatmap.Axis{Label: fmt.Sprintf("block of %d (hidden index = block·%d + index)", cols, cols)}
		colAx = heatmap.Axis{Label: "index in block"}
	}
	vals := make([]float64, 0, rows*cols)
	for h := range pSl {
		for i := range pSl[h] {
			d := 0.0
			if i < len(dSl[h]) && dSl[h][i] != pSl[h][i] {
				d = math.Abs(dSl[h][i] - pSl[h][i])
			}
			vals = append(vals, d)
		}
	}
	title := fmt.Sprintf("|decode%d - prefill| %s (%s) %s", f.Step, f.Stage, f.Mode, res.Case.Name())
	return heatmap.WritePNGAxes(path, title, rows, cols, vals, rowAx, colAx)
}

// heatmapAxes labels a stage's heatmap (rows × cols as HeadSlices splits
// it): the KV cache's columns are K then V of one KV head, each numbered
// 0…head_dim-1; fused attention's are a head's output then its LSE; the
// scores' are key positions.
func heatmapAxes(c harness.Case, st stage.Stage, rows, cols int) (row, col heatmap.Axis) {
	row = heatmap.Axis{Label: "head"}
	if st.KVHeads() {
		row.Label = "KV head"
	}
	if !st.PerHead() {
		row.Label = "row"
	}
	col = heatmap.Axis{Label: "position in head"}
	hd := c.Model.HeadDim
	switch {
	case st == stage.KVCache && cols == 2*hd:
		col.Segments = []heatmap.Segment{{Name: "K", N: hd}, {Name: "V", N: hd}}
	case st == stage.Attn && cols == hd+1:
		col.Label = "output position, then LSE"
		col.Segments = []heatmap.Segment{{Name: "o", N: hd}, {Name: "lse", N: 1}}
	case st == stage.QK || st == stage.Softmax:
		col.Label = "key position"
	case !st.PerHead():
		col.Label = "index"
	}
	return row, col
}

// The run summary: one line per case, per-stage worst margins, failures.
var summary struct {
	sync.Mutex
	cases   []caseLine
	margins [stage.Count]float64
	written string // the summary.md written, if any
}

type caseLine struct {
	name, verdict, first string
	detail               string  // an execution error's message
	margin               float64 // the largest margin of a failing stage (+Inf: non-finite or error)
	rerun                string
}

// stage is the first-divergence stage of a failing case ("error" for an
// execution error, "isolated only" when no chained stage fails).
func (c caseLine) stage() string {
	if c.verdict == "ERROR" {
		return "error"
	}
	if f := strings.Fields(c.first); len(f) > 0 {
		return f[0]
	}
	return "isolated only"
}

// describe is a failing case's one-line description in the account.
func (c caseLine) describe() string {
	if c.verdict == "ERROR" {
		return "error: " + c.detail
	}
	first := c.first
	if first == "" {
		first = "fails in isolation only"
	}
	return fmt.Sprintf("%s (margin %.3g)", first, c.margin)
}

func recordResult(t testing.TB, res *harness.Result) {
	line := caseLine{name: t.Name(), verdict: "pass"}
	if !res.Pass() {
		line = failLine(t.Name(), res)
		line.rerun = rerunCommand(t)
	}
	summary.Lock()
	defer summary.Unlock()
	summary.cases = append(summary.cases, line)
	if res.Pass() {
		for st, m := range res.WorstMargins() {
			summary.margins[st] = math.Max(summary.margins[st], m)
		}
	}
}

// summaryText renders the run summary: counts, per-stage worst margins of
// passing cases, and the failing cases with their first divergence.
func summaryText(cases []caseLine, margins [stage.Count]float64) string {
	var pass, fail int
	var b strings.Builder
	for _, c := range cases {
		if c.verdict == "pass" {
			pass++
		} else {
			fail++
		}
	}
	fmt.Fprintf(&b, "## Parity run (%s backend)\n\n%d cases: %d pass, %d fail\n\n", backendKind, len(cases), pass, fail)
	if fail > 0 {
		fmt.Fprintf(&b, "Artifacts: %s\n\n", artifactsDir())
	}
	b.WriteString("| stage | worst margin of passing cases (share of the local error budget) |\n|---|---:|\n")
	for _, st := range stage.All() {
		fmt.Fprintf(&b, "| %s | %.3g |\n", st, margins[st])
	}
	if fail > 0 {
		b.WriteString("\n### Failing cases\n\n| case | first divergence | margin | rerun |\n|---|---|---:|---|\n")
		var lines []string
		for _, c := range cases {
			if c.verdict != "pass" {
				first := c.first
				if c.verdict == "ERROR" {
					first = "error: " + c.detail
				}
				lines = append(lines, fmt.Sprintf("| %s | %s | %.3g | `%s` |", harness.Cell(c.name), harness.Cell(first), c.margin, harness.Cell(c.rerun)))
			}
		}
		sort.Strings(lines)
		b.WriteString(strings.Join(lines, "\n") + "\n")
	}
	return b.String()
}

// writeRunSummary writes summary.md into the artifacts folder and appends
// it to $GITHUB_STEP_SUMMARY when set. Nothing is written if no case ran.
func writeRunSummary() error {
	summary.Lock()
	defer summary.Unlock()
	if len(summary.cases) == 0 {
		return nil
	}
	text := summaryText(summary.cases, summary.margins)
	dir := artifactsDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := filepath.Join(dir, "summary.md")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		return err
	}
	summary.written = path
	if p := os.Getenv("GITHUB_STEP_SUMMARY"); p != "" {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		defer f.Close()
		if _, err := f.WriteString(text); err != nil {
			return err
		}
	}
	return nil
}

// failLine is the summary line of a failing result.
func failLine(name string, res *harness.Result) caseLine {
	line := caseLine{name: name, verdict: "FAIL"}
	if f := res.FirstDivergence(); f != nil {
		line.first = fmt.Sprintf("%s at decode%d", f.Stage, f.Step)
	}
	for i := range res.Stages {
		if s := &res.Stages[i]; !s.OK() {
			m := s.Margin
			if slices.Contains(s.Fails, harness.CheckNonFinite) || math.IsNaN(m) {
				m = math.Inf(1)
			}
			line.margin = math.Max(line.margin, m)
		}
	}
	return line
}
