package harness

import (
	"math"
	"slices"
	"testing"

	"github.com/gretacore/parity/internal/tolerance"
)

// loc is a local bound with the same tolerance under both contracts.
func loc(ref, tol []float64) local { return local{ref: ref, strict: tol, engine: tol} }

// TestCompareStageChecksCanFail feeds compareStage synthetic rows: every
// check passes on equal data and fails on the perturbation it exists for.
func TestCompareStageChecksCanFail(t *testing.T) {
	p := []float64{1, -2, 3, math.Inf(-1)}
	bits := []uint32{1, 2, 3, 4}
	// Each path's local bound is half the pair tolerance 0.01.
	half := []float64{0.005, 0.005, 0.005, 0}
	run := func(d []float64, dBits []uint32, bitwise bool) StageResult {
		var sr StageResult
		compareStage(&sr, d, p, dBits, bits, loc(p, half), loc(p, half), nil, p, tolerance.Strict, bitwise)
		return sr
	}
	if sr := run(p, bits, true); !sr.OK() || !sr.Bitwise || sr.Margin != 0 {
		t.Errorf("equal rows: %+v, want ok and bitwise", sr)
	}
	within := []float64{1.005, -2, 3, math.Inf(-1)}
	if sr := run(within, []uint32{9, 2, 3, 4}, false); !sr.OK() || sr.Bitwise || math.Abs(sr.Margin-0.5) > 1e-9 {
		t.Errorf("half the tolerance: %+v, want ok with margin 0.5", sr)
	}
	if sr := run(within, []uint32{9, 2, 3, 4}, true); !slices.Contains(sr.Fails, CheckBitwise) {
		t.Errorf("bitwise required and one element differs: fails %v, want bitwise", sr.Fails)
	}
	beyond := []float64{1.02, -2, 3, math.Inf(-1)}
	if sr := run(beyond, []uint32{9, 2, 3, 4}, false); !slices.Contains(sr.Fails, CheckPair) || !slices.Contains(sr.Fails, CheckRefDecode) || sr.WorstIndex != 0 {
		t.Errorf("twice the tolerance: %+v, want pair and ref-decode failures at index 0", sr)
	}
	nan := []float64{math.NaN(), -2, 3, math.Inf(-1)}
	if sr := run(nan, []uint32{9, 2, 3, 4}, false); !slices.Contains(sr.Fails, CheckNonFinite) {
		t.Errorf("NaN in decode: fails %v, want non-finite", sr.Fails)
	}
	unmasked := []float64{1, -2, 3, 0}
	if sr := run(unmasked, []uint32{1, 2, 3, 9}, false); sr.OK() {
		t.Errorf("a masked -Inf replaced by 0 passes: %+v", sr)
	}
	short := []float64{1, -2}
	if sr := run(short, []uint32{1, 2}, false); sr.OK() {
		t.Errorf("a short decode row passes: %+v", sr)
	}
}

// TestFACheck: decode's error against the chain reference may be at most
// FAFactor × prefill's plus the tolerance.
func TestFACheck(t *testing.T) {
	chain := []float64{1, 1}
	p := []float64{1.001, 1}
	var ok, bad StageResult
	// ok: bounds so loose that only the FA check could fail; bad: tight.
	pair := loc(chain, []float64{0.5e-4, 0.5e-4})
	compareStage(&ok, []float64{1.0015, 1}, p, []uint32{1, 0}, []uint32{2, 0}, loc(chain, []float64{0.5, 0.5}), loc(chain, []float64{0.5, 0.5}), nil, chain, tolerance.Strict, false)
	compareStage(&bad, []float64{1.005, 1}, p, []uint32{1, 0}, []uint32{2, 0}, pair, pair, nil, chain, tolerance.Strict, false)
	if slices.Contains(ok.Fails, CheckFA) {
		t.Errorf("decode error 1.5e-3 vs prefill 1e-3 fails FA: %+v", ok)
	}
	if !slices.Contains(bad.Fails, CheckFA) {
		t.Errorf("decode error 5e-3 vs prefill 1e-3 passes FA: %+v", bad)
	}
}

// TestCarriedDifference: a chained difference explained by the propagated
// bound passes with margin 0; beyond prop + local it fails.
func TestCarriedDifference(t *testing.T) {
	p := []float64{1, 2}
	half := []float64{0.005, 0.005}
	prop := []float64{0.5, 0}
	var ok, bad StageResult
	compareStage(&ok, []float64{1.5, 2}, p, []uint32{1, 0}, []uint32{2, 0}, loc([]float64{1.5, 2}, half), loc(p, half), prop, []float64{1.5, 2}, tolerance.Strict, false)
	if !ok.OK() || ok.Margin != 0 {
		t.Errorf("carried difference: %+v, want ok with margin 0", ok)
	}
	compareStage(&bad, []float64{1.52, 2}, p, []uint32{1, 0}, []uint32{2, 0}, loc([]float64{1.52, 2}, half), loc(p, half), prop, []float64{1.52, 2}, tolerance.Strict, false)
	if !slices.Contains(bad.Fails, CheckPair) || math.Abs(bad.Margin-2) > 1e-6 {
		t.Errorf("0.02 beyond the carried 0.5 with local 0.01: %+v, want pair failure, margin 2", bad)
	}
}

// TestContracts: a difference beyond the strict bound but within strict +
// the engine term fails under strict, passes under engine, and both say
// "within engine, beyond strict"; beyond the engine bound it fails both.
func TestContracts(t *testing.T) {
	p := []float64{1, 2}
	l := local{ref: p, strict: []float64{0.005, 0.005}, engine: []float64{0.05, 0.05}}
	run := func(d []float64, c tolerance.Contract) StageResult {
		var sr StageResult
		compareStage(&sr, d, p, []uint32{1, 0}, []uint32{2, 0}, local{ref: d, strict: l.strict, engine: l.engine}, l, nil, p, c, false)
		return sr
	}
	rounding := []float64{1.03, 2}
	if sr := run(rounding, tolerance.Strict); sr.OK() || sr.Within() != "engine" {
		t.Errorf("0.03 off with strict 0.01, engine 0.1: %+v, want a strict failure within engine", sr)
	}
	if sr := run(rounding, tolerance.Engine); !sr.OK() || sr.Within() != "engine" {
		t.Errorf("0.03 off under engine (bound 0.1): %+v, want ok, within engine", sr)
	}
	bug := []float64{1.3, 2}
	for _, c := range []tolerance.Contract{tolerance.Strict, tolerance.Engine} {
		if sr := run(bug, c); sr.OK() || sr.Within() != "" {
			t.Errorf("0.3 off under %v: %+v, want a failure beyond both contracts", c, sr)
		}
	}
}
