package parity

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/heatmap"
	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/trace"
)

// artifactsDir is -parity.artifacts, or parity-artifacts under the system
// temp dir.
func artifactsDir() string {
	if *flagArtifacts != "" {
		return *flagArtifacts
	}
	return filepath.Join(os.TempDir(), "parity-artifacts")
}

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
	body := res.Summary() + "\n" + res.Table() + "\nrerun: " + rerunCommand(t) + "\n" + strings.Join(extra, "\n")
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
	rec := func(phase, mode string, st stage.Stage, vals []float64) error {
		d := harness.RowDtype(c, st).String()
		heads, slices, shapes := harness.HeadSlices(c, st, vals, r)
		for i := range heads {
			if err := w.Write(trace.Record{PromptID: prompt, Phase: phase, Layer: 0, Head: heads[i], Stage: st,
				PosID: c.PosOffset + r, SeqLenUsed: r + 1, DType: d, Shape: shapes[i], Values: slices[i],
				Mode: mode, Backend: res.Backend}); err != nil {
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
			if err := rec(trace.PhasePrefillLast, string(mode), st, pre.Out[st]); err != nil {
				return err
			}
			if err := rec(trace.DecodePhase(0), string(mode), st, dec.Out[st]); err != nil {
				return err
			}
			if err := rec(trace.PhaseReference, string(mode), st, res.Chain[step][st]); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeHeatmap draws |decode − prefill| of the first divergent stage over
// heads × positions-in-head.
func writeHeatmap(path string, res *harness.Result, f *harness.StageResult) error {
	pre, dec := res.Rows(f.Step, f.Mode)
	if pre == nil || dec == nil {
		return fmt.Errorf("no rows for step %d", f.Step)
	}
	r := res.Case.S - 1 + f.Step
	_, dSl, _ := harness.HeadSlices(res.Case, f.Stage, dec.Out[f.Stage], r)
	_, pSl, _ := harness.HeadSlices(res.Case, f.Stage, pre.Out[f.Stage], r)
	rows, cols := len(pSl), len(pSl[0])
	if rows == 1 && res.Case.Model.NHeads > 1 && cols%res.Case.Model.NHeads == 0 {
		rows, cols = res.Case.Model.NHeads, cols/res.Case.Model.NHeads
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
	return heatmap.WritePNG(path, title, rows, cols, vals, "head", "position in head")
}

// The run summary: one line per case, per-stage worst margins, failures.
var summary struct {
	sync.Mutex
	cases   []caseLine
	margins [stage.Count]float64
}

type caseLine struct {
	name, verdict, first string
}

func recordResult(t testing.TB, res *harness.Result) {
	summary.Lock()
	defer summary.Unlock()
	line := caseLine{name: t.Name(), verdict: "pass"}
	if !res.Pass() {
		line = failLine(t.Name(), res)
	}
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
	b.WriteString("| stage | worst margin of passing cases (share of the local error budget) |\n|---|---:|\n")
	for _, st := range stage.All() {
		fmt.Fprintf(&b, "| %s | %.3g |\n", st, margins[st])
	}
	if fail > 0 {
		b.WriteString("\n### Failing cases\n\n| case | first divergence |\n|---|---|\n")
		var lines []string
		for _, c := range cases {
			if c.verdict != "pass" {
				lines = append(lines, fmt.Sprintf("| %s | %s |", c.name, c.first))
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
	if err := os.WriteFile(filepath.Join(dir, "summary.md"), []byte(text), 0o644); err != nil {
		return err
	}
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
	return line
}
