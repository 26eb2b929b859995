package harness

import (
	"math"
	"slices"
	"testing"
)

// TestCompareStageChecksCanFail feeds compareStage synthetic rows: every
// check passes on equal data and fails on the perturbation it exists for.
func TestCompareStageChecksCanFail(t *testing.T) {
	p := []float64{1, -2, 3, math.Inf(-1)}
	bits := []uint32{1, 2, 3, 4}
	tol := []float64{0.01, 0.01, 0.01, 0}
	run := func(d []float64, dBits []uint32, bitwise bool) StageResult {
		var sr StageResult
		compareStage(&sr, d, p, dBits, bits, tol, nil, p, tol, p, tol, p, bitwise)
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
	tol := []float64{1e-4, 1e-4}
	var ok, bad StageResult
	compareStage(&ok, []float64{1.0015, 1}, p, []uint32{1, 0}, []uint32{2, 0}, []float64{1, 1}, nil, chain, []float64{1, 1}, chain, []float64{1, 1}, chain, false)
	compareStage(&bad, []float64{1.005, 1}, p, []uint32{1, 0}, []uint32{2, 0}, tol, nil, chain, []float64{1, 1}, chain, []float64{1, 1}, chain, false)
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
	local := []float64{0.01, 0.01}
	prop := []float64{0.5, 0}
	var ok, bad StageResult
	compareStage(&ok, []float64{1.5, 2}, p, []uint32{1, 0}, []uint32{2, 0}, local, prop, []float64{1.5, 2}, local, p, local, []float64{1.5, 2}, false)
	if !ok.OK() || ok.Margin != 0 {
		t.Errorf("carried difference: %+v, want ok with margin 0", ok)
	}
	compareStage(&bad, []float64{1.52, 2}, p, []uint32{1, 0}, []uint32{2, 0}, local, prop, []float64{1.52, 2}, local, p, local, []float64{1.52, 2}, false)
	if !slices.Contains(bad.Fails, CheckPair) || math.Abs(bad.Margin-2) > 1e-6 {
		t.Errorf("0.02 beyond the carried 0.5 with local 0.01: %+v, want pair failure, margin 2", bad)
	}
}
