package parity

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/trace"
)

var flagWriteSamples = flag.Bool("parity.write-samples", false,
	"rewrite fixtures/traces/{clean,faulty}.jsonl from the harness (then: go test ./cmd/tracediff -update)")

// faultyCase runs tiny-k90/f16/S=9/auto with a fault active (restored after).
func faultyCase(t *testing.T, lib *gpapi.Lib, fault string) *harness.Result {
	t.Helper()
	c := harness.Case{Model: modelByName(t, "tiny-k90"), S: 9, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, Seed: 5, Contract: contract(t)}
	mustSetFault(t, lib, fault)
	defer mustSetFault(t, lib, "")
	res, err := runCase(t, lib, c)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestArtifactsOnFailure proves a failing case leaves what a developer
// needs: a report, a trace that tracediff reads and blames on the right
// stage, a heatmap PNG, a summary entry — and that the failure message
// names them.
func TestArtifactsOnFailure(t *testing.T) {
	lib := openLib(t)
	if os.Getenv("GRETA_FAULT") != "" {
		t.Skip("GRETA_FAULT is set for the whole run")
	}
	res := faultyCase(t, lib, "rope_wrong_layout")
	if res.Pass() {
		t.Fatal("the faulty case passes: the fault is not active")
	}
	old := *flagArtifacts
	*flagArtifacts = t.TempDir()
	defer func() { *flagArtifacts = old }()
	msg := writeArtifacts(t, res, nil)
	dir := filepath.Join(*flagArtifacts, unsafeChars.ReplaceAllString(t.Name(), "_"))
	for _, f := range []string{"report.md", "trace.jsonl", "heatmap_q_rope.png"} {
		p := filepath.Join(dir, f)
		st, err := os.Stat(p)
		if err != nil || st.Size() < 100 {
			t.Errorf("artifact %s: %v (size %v)", p, err, st)
		}
		if !strings.Contains(msg, p) {
			t.Errorf("the failure message does not name %s:\n%s", p, msg)
		}
	}
	md, err := os.ReadFile(filepath.Join(dir, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	if tables := gfmTables(t, string(md)); len(tables) != 1 || len(tables[0]) != 1+len(res.Stages) {
		t.Errorf("report.md: want one GFM table of %d stage rows, got %d tables", len(res.Stages), len(tables))
	}
	recs, err := trace.ReadFile(filepath.Join(dir, "trace.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := trace.Compare(recs, trace.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if st, _, ok := rep.FirstDivergent(); !ok || st != stage.QRope {
		t.Errorf("tracediff on the written trace names %v (ok=%v), want q_rope", st, ok)
	}
	sum := summaryText([]caseLine{failLine(t.Name(), res)}, [stage.Count]float64{})
	if !strings.Contains(sum, t.Name()) || !strings.Contains(sum, "q_rope at decode0") || !strings.Contains(sum, "1 fail") {
		t.Errorf("summary entry missing:\n%s", sum)
	}
}

// TestWriteSampleTraces rewrites fixtures/traces from the harness when
// -parity.write-samples is given: clean (no fault) and faulty
// (rope_wrong_layout: q and k far off, v clean, as in the field report).
func TestWriteSampleTraces(t *testing.T) {
	if !*flagWriteSamples {
		t.Skip("pass -parity.write-samples to rewrite fixtures/traces")
	}
	lib := openLib(t)
	dir := filepath.Join(moduleRoot(), "fixtures", "traces")
	for name, fault := range map[string]string{"clean": "", "faulty": "rope_wrong_layout"} {
		res := faultyCase(t, lib, fault)
		if (fault == "") != res.Pass() {
			t.Fatalf("%s sample: pass=%v", name, res.Pass())
		}
		p := filepath.Join(dir, name+".jsonl")
		os.Remove(p)
		if err := writeTrace(p, res); err != nil {
			t.Fatal(err)
		}
	}
}
