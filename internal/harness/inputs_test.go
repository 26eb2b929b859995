package harness

import (
	"math"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
)

// TestWeightCacheKeepsLayers: a layers-mode case's routes walk the same
// layers side by side, so the set of an earlier layer must still be there
// when the second route reaches it (the same *Weights, not drawn again),
// every distribution of the key used last is kept, and two layers never
// share a set.
func TestWeightCacheKeepsLayers(t *testing.T) {
	c := Case{Model: softModel(t, "tiny-k90"), S: 3, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, Seed: 11, Layers: 3}
	var first []*Weights
	for l := 0; l < 3; l++ {
		c.Layer = l
		first = append(first, NewInputs(c).W)
	}
	if first[0] == first[1] || first[1] == first[2] || first[0].Wq[0] == first[1].Wq[0] && first[0].Wq[1] == first[1].Wq[1] {
		t.Fatal("layers 0 and 1 (or 1 and 2) got the same weights")
	}
	for l := 0; l < 3; l++ {
		c.Layer = l
		if w := NewInputs(c).W; w != first[l] {
			t.Errorf("layer %d drawn again on the second route: the cache kept only the last layer", l)
		}
	}
	c.Layer = 2
	byDist := map[Dist]*Weights{}
	for _, d := range []Dist{DistNormal, DistPositive, DistOutliers} {
		c.Dist = d
		byDist[d] = NewInputs(c).W
	}
	for d, w := range byDist {
		c.Dist = d
		if NewInputs(c).W != w {
			t.Errorf("distribution %v of the last key dropped", d)
		}
	}
}

// TestSameInputs: Evaluate reuses prefill's local reference for decode
// only when decode read bit-identical values; one ulp, a swapped zero sign,
// a NaN or a different cache row count is a difference.
func TestSameInputs(t *testing.T) {
	mk := func() stageIn {
		return stageIn{x: [][]float64{{1, 0, -2.5}}, kRows: [][]float64{{3}, {4}}, vRows: [][]float64{{5}, {6}}}
	}
	if a, b := mk(), mk(); !sameInputs(a, b) {
		t.Fatal("equal inputs reported different")
	}
	for name, edit := range map[string]func(*stageIn){
		"one ulp":    func(s *stageIn) { s.x[0][2] = math.Nextafter(s.x[0][2], 0) },
		"-0 for +0":  func(s *stageIn) { s.x[0][1] = math.Copysign(0, -1) },
		"NaN":        func(s *stageIn) { s.x[0][0] = math.NaN() },
		"cache rows": func(s *stageIn) { s.kRows = s.kRows[:1]; s.vRows = s.vRows[:1] },
		"v row":      func(s *stageIn) { s.vRows[1][0] = 7 },
	} {
		a, b := mk(), mk()
		edit(&b)
		if sameInputs(a, b) {
			t.Errorf("%s: reported the same", name)
		}
	}
	nan := stageIn{x: [][]float64{{math.NaN()}}}
	if sameInputs(nan, nan) {
		t.Error("NaN inputs reported the same: their bounds must be computed, not reused")
	}
}
