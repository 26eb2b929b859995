package harness

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/softkernels"
	"github.com/gretacore/parity/internal/stage"
)

// TestSoftLayers runs the layers mode end to end on the pure-Go library:
// three layers and the head pass without a fault; rope_pos_prev armed at
// layer 1 only is blamed on layer 1, q_rope (layer 0 stays clean); the
// drift groups and the token verdict are reported.
func TestSoftLayers(t *testing.T) {
	lib := softkernels.New()
	c := Case{Model: softModel(t, "tiny-k90"), S: 9, Steps: 2, Dtype: dtype.F16, Route: gpapi.RouteAuto, Seed: 5, Layers: 3, Head: true}
	res, err := ExecuteLayers(lib, c, time.Minute, FaultArm{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pass() {
		t.Fatalf("3 layers + head fail without a fault:\n%s", res.Report())
	}
	if len(res.Layers) != 3 || len(res.Tokens) != 2 {
		t.Fatalf("got %d layers, %d token verdicts; want 3, 2", len(res.Layers), len(res.Tokens))
	}
	for l, r := range res.Layers {
		if r.Ran[stage.LMHead] != (l == 2) || r.Case.Layer != l {
			t.Errorf("layer %d: lm_head ran = %v, Case.Layer = %d (the head runs after the last layer only)", l, r.Ran[stage.LMHead], r.Case.Layer)
		}
	}
	names, first, margins := res.GroupMargins()
	if strings.Join(names, ",") != "attention,MLP,head" || first[2] != 2 || len(margins[0]) != 3 || len(margins[2]) != 1 {
		t.Errorf("groups %v from %v, margins %v: want attention, MLP over 3 layers and the head at layer 2", names, first, margins)
	}
	if rep := res.Report(); !strings.Contains(rep, "first divergence: none") || !strings.Contains(rep, "same argmax") {
		t.Errorf("report lacks the verdict or the tokens:\n%s", rep)
	}
	// Layer 1's weights differ from layer 0's; layer 0's are the one-layer case's.
	if LayerSeed(5, 0) != 5 || LayerSeed(5, 1) == LayerSeed(5, 2) || LayerSeed(5, 1) == 5 {
		t.Errorf("LayerSeed: %d %d %d", LayerSeed(5, 0), LayerSeed(5, 1), LayerSeed(5, 2))
	}

	bad, err := ExecuteLayers(lib, c, time.Minute, FaultArm{Fault: "rope_pos_prev", Layer: 1})
	if err != nil {
		t.Fatal(err)
	}
	l, f := bad.FirstDivergence()
	if f == nil || l != 1 || f.Stage != stage.QRope {
		t.Fatalf("rope_pos_prev at layer 1: first divergence layer %d %v, want layer 1, q_rope\n%s", l, f, bad.Report())
	}
	if !bad.Layers[0].Pass() {
		t.Errorf("layer 0 fails although the fault was armed at layer 1 only\n%s", bad.Report())
	}
	if lib.ActiveFault() != "none" {
		t.Errorf("fault left active after the run: %s", lib.ActiveFault())
	}
	if !strings.Contains(bad.Report(), "first divergence: layer 1, stage q_rope") {
		t.Errorf("report:\n%s", bad.Report())
	}
}

// TestCompareTokens: the argmax and the top-2 gap of each path, a flipped
// argmax reported as such, NaN logits give a NaN gap.
func TestCompareTokens(t *testing.T) {
	pre := []float64{0.5, 2.0, 1.75, -3}
	dec := append([]float64{}, pre...)
	v := CompareTokens(dec, pre)
	if !v.Same() || v.PrefillToken != 1 || v.PrefillGap != 0.25 {
		t.Fatalf("identical logits: %+v", v)
	}
	dec[2] = 2.0009765625 // one f16 ulp above token 1's logit: a near-tie flips
	v = CompareTokens(dec, pre)
	if v.Same() || v.DecodeToken != 2 || v.PrefillToken != 1 || math.Abs(v.DecodeGap-0.0009765625) > 1e-12 {
		t.Fatalf("perturbed logits: %+v, want decode 2, prefill 1, decode gap 2^-10", v)
	}
	if !strings.Contains(v.String(), "DIFFERENT argmax") {
		t.Errorf("String() = %q", v.String())
	}
	if _, g := top2([]float64{1, math.NaN()}); !math.IsNaN(g) {
		t.Errorf("NaN logit: gap %v, want NaN", g)
	}
	if i, g := top2([]float64{3}); i != 0 || !math.IsInf(g, 1) {
		t.Errorf("one logit: %d %v", i, g)
	}
}
