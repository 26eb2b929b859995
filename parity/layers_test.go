package parity

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/driftplot"
	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/model"
	"github.com/gretacore/parity/internal/stage"
)

// The layers mode's flags (README, "Layers and the head").
var (
	flagLayers = flag.String("parity.layers", "1",
		"layers each case chains (N, or all = the fixture's num_hidden_layers), each with its own weights and KV cache, then the head (final_norm, lm_head, the logits): TestParity's cases (1 = one layer, names unchanged) and TestLayers' depth (its default: 3 on the debug shapes)")
	flagHead = flag.Bool("parity.head", false,
		"run the head (final_norm, lm_head: the logits, N = vocab) after the last layer of every TestParity case (always on with -parity.layers > 1)")
	flagFaultLayer = flag.String("parity.fault-layer", "",
		"with GRETA_FAULT, TestLayers arms that fault only for layer L's calls (0-based), or only for the head's (head), and clears it elsewhere")
)

// tableLayersDefault is TestLayers' depth without -parity.layers: a few
// layers, enough for a difference to travel through the residual stream
// and for a fault at the middle layer to have clean layers on each side.
const tableLayersDefault = 3

// parseLayers is -parity.layers' depth for model m: a count in 1..m's
// num_hidden_layers, or all (= num_hidden_layers).
func parseLayers(v string, m model.Shape) (int, error) {
	if v == "all" {
		return m.NumLayers, nil
	}
	n, err := strconv.Atoi(v)
	switch {
	case err != nil:
		return 0, fmt.Errorf("-parity.layers=%s: not a layer count (a number >= 1, or all)", v)
	case n < 1:
		return 0, fmt.Errorf("-parity.layers=%d: must be >= 1 (1 = one layer)", n)
	case n > m.NumLayers:
		return 0, fmt.Errorf("-parity.layers=%d: %s has %d layers (num_hidden_layers); select models as deep with -parity.models, or use all", n, m.Name, m.NumLayers)
	}
	return n, nil
}

// parseFaultLayer is -parity.fault-layer: "" (off), head, or a layer L >=
// 0 (checked against each case's depth when it runs).
func parseFaultLayer(v string) (harness.FaultArm, error) {
	switch v {
	case "":
		return harness.FaultArm{}, nil
	case "head":
		return harness.FaultArm{Fault: os.Getenv("GRETA_FAULT"), Head: true}, checkFaultEnv(v)
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return harness.FaultArm{}, fmt.Errorf("-parity.fault-layer=%s: not a layer (0-based L >= 0) or head", v)
	}
	return harness.FaultArm{Fault: os.Getenv("GRETA_FAULT"), Layer: n}, checkFaultEnv(v)
}

func checkFaultEnv(v string) error {
	if os.Getenv("GRETA_FAULT") == "" {
		return fmt.Errorf("-parity.fault-layer=%s: says where to arm GRETA_FAULT, which is not set (GRETA_FAULT=rope_pos_prev go test ./parity -run '^TestLayers$' -parity.layers=4 -parity.fault-layer=2)", v)
	}
	return nil
}

// checkLayersConfig validates the layers flags against the selected
// models, before any test runs.
func checkLayersConfig() error {
	ms, err := selectedModels()
	if err != nil {
		return nil // reported by checkConfig
	}
	var errs []string
	for _, m := range ms {
		if _, err := parseLayers(*flagLayers, m); err != nil {
			errs = append(errs, err.Error())
			if !strings.Contains(err.Error(), "has ") {
				break // the same for every model
			}
		}
	}
	arm, err := parseFaultLayer(*flagFaultLayer)
	if err != nil {
		errs = append(errs, err.Error())
	} else if arm.Fault != "" && !arm.Head && *flagLayers != "1" {
		for _, m := range ms {
			if n, err := parseLayers(*flagLayers, m); err == nil && arm.Layer >= n {
				errs = append(errs, fmt.Sprintf("-parity.fault-layer=%d: %s runs %d layers (0..%d)", arm.Layer, m.Name, n, n-1))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// tableDepth is TestParity's depth for model m (-parity.layers; 1 by
// default: the one-layer table, names unchanged).
func tableDepth(m model.Shape) int {
	n, err := parseLayers(*flagLayers, m)
	if err != nil {
		return 1 // checkConfig has failed the run already
	}
	return n
}

// withLayers is TestParity's case c with -parity.layers and -parity.head:
// its depth and the head (the names gain layers=N or head; unchanged by
// default).
func withLayers(c harness.Case) harness.Case {
	if n := tableDepth(c.Model); n > 1 {
		c.Layers = n
	}
	c.Head = *flagHead || c.Layers > 1
	return c
}

// layersModeDepth is TestLayers' depth for m: -parity.layers if given,
// else tableLayersDefault (at most the fixture's depth).
func layersModeDepth(m model.Shape) int {
	if *flagLayers != "1" {
		return tableDepth(m)
	}
	return min(tableLayersDefault, m.NumLayers)
}

// layered reports whether a case runs through ExecuteLayers (several
// layers, or the head).
func layered(c harness.Case) bool { return c.Layers > 1 || c.Head }

// TestLayers is the layers mode: each model of modeModels chains
// layersModeDepth layers (independent weights, a KV cache each) and the
// head, decode and prefill each carrying their own residual stream, and
// must pass at every layer and stage; the report gives each layer's worst
// margin per stage, the first divergence (layer, stage) and decode's and
// prefill's tokens. With GRETA_FAULT and -parity.fault-layer, the fault is
// armed for that layer (or the head) only. Subtests read
// TestLayers/tiny-k90/fp16/layers=3/auto.
func TestLayers(t *testing.T) {
	lib := openLib(t)
	needCap(t, lib, gpapi.CapMLP) // without the MLP a layer has no output to chain
	arm, err := parseFaultLayer(*flagFaultLayer)
	if err != nil {
		t.Fatal(err)
	}
	if arm.Fault != "" {
		// GRETA_FAULT was set for the whole library when it loaded: clear
		// it, ExecuteLayers arms it where -parity.fault-layer says.
		mustSetFault(t, lib, "")
		fmt.Fprintf(os.Stderr, "parity: TestLayers arms GRETA_FAULT=%s at %s only\n", arm.Fault, *flagFaultLayer)
	}
	for _, m := range modeModels(t) {
		t.Run(m.Name, func(t *testing.T) {
			for _, dt := range modeDtypes(m) {
				t.Run(dtypeElem(dt), func(t *testing.T) {
					n := layersModeDepth(m)
					t.Run(fmt.Sprintf("layers=%d", n), func(t *testing.T) {
						for _, r := range modeRoutes(lib) {
							t.Run(r.String(), func(t *testing.T) {
								if arm.Fault == "" {
									t.Parallel() // a fault armed per layer is library-wide state
								}
								c := harness.Case{Model: m, S: 9, Steps: 2, Dtype: dt, Route: r, Dist: harness.DistNormal,
									Seed: *flagSeed, Bitwise: *flagBitwise, Contract: contract(t), Layers: n, Head: true}
								res := checkLayersArmed(t, lib, c, arm)
								if arm.Fault != "" && res != nil {
									if l, f := res.FirstDivergence(); f != nil {
										t.Logf("GRETA_FAULT=%s: first divergence layer %d, %s", arm, l, f.Stage)
									}
								}
							})
						}
					})
				})
			}
		})
	}
}

// checkLayers runs a TestParity case in the layers mode (-parity.layers,
// -parity.head) and returns its last layer's result (the head's routes
// included) for the attestation check.
func checkLayers(t *testing.T, lib *gpapi.Lib, c harness.Case) *harness.Result {
	t.Helper()
	res := checkLayersArmed(t, lib, c, harness.FaultArm{})
	if res == nil || len(res.Layers) == 0 {
		return &harness.Result{Case: c}
	}
	return res.Layers[len(res.Layers)-1]
}

// checkLayersArmed runs a layers-mode case that must pass (with arm's
// fault, it is expected to fail: the report says where). A failure prints
// the layers report, the first divergent layer's report and the rerun
// command, and writes artifacts: that layer's report, trace and heatmap,
// and the drift plot. A passing case writes the drift plot too when
// -parity.artifacts names a folder.
func checkLayersArmed(t *testing.T, lib *gpapi.Lib, c harness.Case, arm harness.FaultArm) *harness.LayersResult {
	t.Helper()
	if c.Layers > 1 && !c.RunsMLP() {
		msg := fmt.Sprintf("%s cannot chain layers: an attn-only case runs no mlp_res to feed the next layer (run it with -parity.full)", c.Name())
		recordSkip(t, msg)
		t.Skip(msg)
	}
	if c.Layers > 1 || c.Head {
		needCap(t, lib, gpapi.CapMLP)
	}
	res, err := runLayers(lib, c, arm)
	if err != nil {
		recordError(t, err)
		t.Fatalf("%v\nrerun: %s", err, rerunCommand(t))
	}
	l, _ := res.FirstDivergence()
	focus := res.Layers[len(res.Layers)-1]
	if l >= 0 {
		focus = res.Layers[l]
	}
	recordResult(t, focus)
	switch {
	case !res.Pass():
		causes := likelyCauses(focus) // signature_test.go
		where := writeArtifacts(t, focus, []string{res.Report(), causes})
		where += writeDrift(t, res)
		t.Errorf("decode diverges from prefill\n%s\n%s\n%s%s%s\nrerun: %s", res.Report(), focus.Summary(), failingTable(focus), causes, where, rerunCommand(t))
	case *flagArtifacts != "":
		t.Logf("%s%s", res.Report(), writeDrift(t, res))
	default:
		t.Log(res.Report())
	}
	return res
}

// runLayers executes and evaluates a layers-mode case.
func runLayers(lib *gpapi.Lib, c harness.Case, arm harness.FaultArm) (*harness.LayersResult, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid case %s: %w", c.Name(), err)
	}
	casesRun.Add(1)
	res, err := harness.ExecuteLayers(lib, c, *flagTimeout, arm)
	if err != nil {
		return res, fmt.Errorf("case %s on %s: %w", c.Name(), lib.Backend, err)
	}
	return res, nil
}

// layersFlags are the layers flags of this run, as rerunCommand repeats
// them.
func layersFlags() string {
	var s string
	if *flagLayers != "1" {
		s += " -parity.layers " + *flagLayers
		if *flagModels != "" { // the depth is checked against every selected model
			s += " -parity.models " + *flagModels
		}
	}
	if *flagHead {
		s += " -parity.head"
	}
	if *flagFaultLayer != "" {
		s += " -parity.fault-layer " + *flagFaultLayer
	}
	return s
}

// writeDrift writes the case's drift plot (driftplot.WritePNG: worst
// chained margin against layer, one line per stage group) into its
// artifacts folder and returns the line the message adds.
func writeDrift(t testing.TB, res *harness.LayersResult) string {
	dir := filepath.Join(artifactsDir(), unsafeChars.ReplaceAllString(t.Name(), "_"))
	png := filepath.Join(dir, "drift.png")
	if err := writeDriftPNG(png, res); err != nil {
		return "\n  drift plot: " + err.Error()
	}
	return "\n  " + png
}

// writeDriftPNG draws res's drift plot to path.
func writeDriftPNG(path string, res *harness.LayersResult) error {
	names, first, margins := res.GroupMargins()
	series := make([]driftplot.Series, len(names))
	for i := range names {
		series[i] = driftplot.Series{Name: names[i], Margins: margins[i], First: first[i]}
	}
	title := res.Case.Name()
	if l, f := res.FirstDivergence(); f != nil {
		title += fmt.Sprintf(": first divergence layer %d, %s", l, f.Stage)
	}
	if res.Arm.Fault != "" {
		title += " (fault " + res.Arm.String() + ")"
	}
	return driftplot.WritePNG(path, title, series)
}

// layerFault is a fault armed for one layer (or the head) of a layers-mode
// case, and the layer and stage it must be blamed on.
type layerFault struct {
	name   string
	fault  string
	model  model.Shape
	layers int
	arm    harness.FaultArm
	layer  int
	first  stage.Stage
	why    string
}

// lmHeadShape is a generated shape whose hidden size (the LM head's K)
// exceeds gemv_skip_last_k_tile's 256-element tile, unlike the debug
// fixtures', so that the LM head's GEMV can drop its last K tile on the
// CPU default run.
var lmHeadShape = model.Shape{Name: "k320-vocab1000", Hidden: 320, NHeads: 4, NKVHeads: 2, HeadDim: 16, RopeTheta: 10000,
	RopeLayout: "neox", RMSEps: 1e-5, MaxPosition: 4096, IntermediateSize: 192, Activation: model.ActSwiGLU, NumLayers: 2, VocabSize: 1000}

// TestLayerFaults proves the layers mode blames a decode-only fault on the
// layer and stage where it lives: with it armed at one layer only, that
// layer is the first divergence, at the expected stage, which also fails
// in isolation, every earlier layer passes, and the drift plot is
// written; without it (negative control) the case passes.
func TestLayerFaults(t *testing.T) {
	lib := openLib(t)
	needCap(t, lib, gpapi.CapFaults)
	needCap(t, lib, gpapi.CapMLP)
	if f := os.Getenv("GRETA_FAULT"); f != "" {
		t.Skipf("GRETA_FAULT=%s is set for the whole run; TestLayerFaults arms faults itself", f)
	}
	faults := []layerFault{
		{"rope_pos_prev@layer2", "rope_pos_prev", modelByName(t, "tiny-k90"), 4, harness.FaultArm{Fault: "rope_pos_prev", Layer: 2}, 2, stage.QRope,
			"decode RoPE one position early at layer 2 of 4 only: layers 0 and 1 clean, layer 3 carries it"},
		{"gemv_skip_last_k_tile@head", "gemv_skip_last_k_tile", lmHeadShape, 2, harness.FaultArm{Fault: "gemv_skip_last_k_tile", Head: true}, 1, stage.LMHead,
			"the LM head's decode GEMV drops its last K tile (K = hidden = 320 > 256), armed for the head's calls only"},
		{"gemv_skip_last_k_tile@layer1", "gemv_skip_last_k_tile", lmHeadShape, 2, harness.FaultArm{Fault: "gemv_skip_last_k_tile", Layer: 1}, 1, stage.QProj,
			"the same fault armed for the whole last layer: the first GEMV with K > 256 it hits is q_proj (K = hidden), not the LM head"},
	}
	for _, lf := range faults {
		t.Run(lf.name, func(t *testing.T) {
			needFault(t, lib, lib.Faults(), lf.fault)
			c := harness.Case{Model: lf.model, S: 9, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, Dist: harness.DistNormal,
				Seed: 7, Contract: contract(t), Layers: lf.layers, Head: true}
			mustSetFault(t, lib, "")
			ctrl, err := runLayers(lib, c, harness.FaultArm{})
			if err != nil {
				t.Fatalf("negative control: %v\nrerun: %s", err, rerunCommand(t))
			}
			if !ctrl.Pass() {
				t.Fatalf("negative control (no fault) fails:\n%s\nrerun: %s", ctrl.Report(), rerunCommand(t))
			}
			res, err := runLayers(lib, c, lf.arm)
			if err != nil {
				t.Fatalf("fault %s: %v\nrerun: %s", lf.arm, err, rerunCommand(t))
			}
			if lib.ActiveFault() != "none" {
				t.Errorf("fault %s left active after the run (%s)", lf.arm, lib.ActiveFault())
			}
			l, first := res.FirstDivergence()
			png := filepath.Join(t.TempDir(), "drift.png")
			perr := writeDriftPNG(png, res)
			switch {
			case first == nil:
				t.Errorf("fault %s (%s) was NOT caught\n%s\nrerun: %s", lf.arm, lf.why, res.Report(), rerunCommand(t))
			case l != lf.layer || first.Stage != lf.first:
				t.Errorf("fault %s: first divergence layer %d, %s; want layer %d, %s (%s)\n%s\nrerun: %s", lf.arm, l, first.Stage, lf.layer, lf.first, lf.why, res.Report(), rerunCommand(t))
			case !slices.Contains(res.Layers[l].IsolatedFailures(), lf.first):
				t.Errorf("fault %s: %s does not fail in isolation at layer %d (%v)\n%s", lf.arm, lf.first, l, res.Layers[l].IsolatedFailures(), res.Report())
			case !strings.Contains(res.Report(), fmt.Sprintf("first divergence: layer %d, stage %s", lf.layer, lf.first)):
				t.Errorf("the report does not name layer %d, %s:\n%s", lf.layer, lf.first, res.Report())
			case perr != nil:
				t.Errorf("drift plot: %v", perr)
			default:
				t.Logf("caught %s: first divergence layer %d, %s (%v), isolated %v; drift plot %s", lf.arm, l, first.Stage, first.Fails, res.Layers[l].IsolatedFailures(), png)
			}
			for e := 0; e < lf.layer && e < len(res.Layers); e++ {
				if !res.Layers[e].Pass() {
					t.Errorf("fault %s: layer %d (before the armed one) fails\n%s", lf.arm, e, res.Report())
				}
			}
		})
	}
}

// TestLayersFlags: bad -parity.layers and -parity.fault-layer values are
// rejected with a message naming the flag and the valid values.
func TestLayersFlags(t *testing.T) {
	m := model.Shape{Name: "llama3-8b", NumLayers: 32}
	for _, tc := range []struct{ v, want string }{
		{"0", "-parity.layers=0: must be >= 1"},
		{"-3", "-parity.layers=-3: must be >= 1"},
		{"x", "-parity.layers=x: not a layer count (a number >= 1, or all)"},
		{"33", "-parity.layers=33: llama3-8b has 32 layers (num_hidden_layers)"},
	} {
		if _, err := parseLayers(tc.v, m); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseLayers(%q) = %v, want an error containing %q", tc.v, err, tc.want)
		}
	}
	for v, want := range map[string]int{"all": 32, "1": 1, "32": 32} {
		if n, err := parseLayers(v, m); err != nil || n != want {
			t.Errorf("parseLayers(%q) = %d, %v; want %d", v, n, err, want)
		}
	}
	t.Setenv("GRETA_FAULT", "")
	for _, tc := range []struct{ v, want string }{
		{"-1", "-parity.fault-layer=-1: not a layer (0-based L >= 0) or head"},
		{"top", "-parity.fault-layer=top: not a layer"},
		{"2", "-parity.fault-layer=2: says where to arm GRETA_FAULT, which is not set"},
	} {
		if _, err := parseFaultLayer(tc.v); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseFaultLayer(%q) = %v, want an error containing %q", tc.v, err, tc.want)
		}
	}
	t.Setenv("GRETA_FAULT", "rope_pos_prev")
	if a, err := parseFaultLayer("head"); err != nil || !a.Head || a.Fault != "rope_pos_prev" {
		t.Errorf("parseFaultLayer(head) = %+v, %v", a, err)
	}
	// A fault layer past the case's depth is refused by the harness.
	lib := openLib(t)
	c := harness.Case{Model: modelByName(t, "tiny-k90"), S: 9, Steps: 1, Dtype: dtype.F16, Seed: 1, Layers: 2, Head: true}
	if _, err := harness.ExecuteLayers(lib, c, *flagTimeout, harness.FaultArm{Fault: "rope_pos_prev", Layer: 2}); err == nil || !strings.Contains(err.Error(), "layer 2 is not a layer of the case (0..1)") {
		t.Errorf("fault layer 2 of 2: %v", err)
	}
}
