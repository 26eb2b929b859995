package harness

import (
	"testing"
	"unsafe"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
)

// TestWeightSetsShareEqualTensors: a (model, dtype)'s sets share every
// tensor whose values are the same (internSet): outliers is the normal set's
// weights throughout, large_qk shares all but Wq and Wk, positive shares
// none of the projections; and each set still holds its own values.
func TestWeightSetsShareEqualTensors(t *testing.T) {
	m := softModel(t, "tiny-gqa3")
	sets := map[Dist]*Weights{}
	for _, d := range Dists {
		c := Case{Model: m, S: 3, Steps: 1, Dtype: dtype.BF16, Route: gpapi.RouteAuto, Dist: d, Seed: 77}
		sets[d] = NewInputs(c).W
	}
	same := func(a, b []float64) bool { return len(a) > 0 && unsafe.SliceData(a) == unsafe.SliceData(b) }
	n, o, q, p := sets[DistNormal], sets[DistOutliers], sets[DistLargeQK], sets[DistPositive]
	for i, f := range n.tensors() {
		if len(*f) == 0 {
			continue
		}
		if !same(*f, *o.tensors()[i]) {
			t.Errorf("tensor %d: the outliers set does not share the normal set's slice", i)
		}
	}
	for name, pair := range map[string][2][]float64{"Wv": {n.Wv, q.Wv}, "Wo": {n.Wo, q.Wo}, "Wg": {n.Wg, q.Wg}, "Wu": {n.Wu, q.Wu}, "Wd": {n.Wd, q.Wd}} {
		if !same(pair[0], pair[1]) {
			t.Errorf("large_qk's %s is not the normal set's slice", name)
		}
	}
	if same(n.Wq, q.Wq) || same(n.Wk, q.Wk) || sameBits(n.Wq, q.Wq) {
		t.Error("large_qk shares Wq or Wk with the normal set; its are 128x larger")
	}
	if same(n.Wg, p.Wg) || same(n.Wq, p.Wq) || sameBits(n.Wg, p.Wg) {
		t.Error("the positive set shares a projection with the normal set")
	}
}
