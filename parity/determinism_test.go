package parity

import (
	"fmt"
	"slices"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/stage"
)

// TestDeterminism runs the same cases twice in one process and requires
// bit-identical inputs, outputs of every stage and path, and identical
// reports: the same seed must give the same verdict every time, or a
// developer learns to rerun until green.
func TestDeterminism(t *testing.T) {
	lib := openLib(t)
	for _, name := range []string{"tiny-k90", "tiny-qwen"} {
		m := modelByName(t, name)
		for _, dt := range dtype.All {
			c := harness.Case{Model: m, S: 17, Steps: 2, Dtype: dt, Route: gpapi.RouteAuto, Dist: harness.DistOutliers, Seed: 11}
			t.Run(fmt.Sprintf("%s/%s", name, dt), func(t *testing.T) {
				a, err := runCase(t, lib, c)
				if err != nil {
					t.Fatal(err)
				}
				in1 := harness.NewInputs(c)
				b, err := runCase(t, lib, c)
				if err != nil {
					t.Fatal(err)
				}
				if in2 := harness.NewInputs(c); !slices.Equal(in1.X, in2.X) || !slices.Equal(in1.W.Wq, in2.W.Wq) {
					t.Errorf("inputs differ between two draws of the same seed")
				}
				for step := 0; step < c.Steps; step++ {
					for _, mode := range []harness.Path{harness.Chained, harness.Isolated} {
						pa, da := a.Rows(step, mode)
						pb, db := b.Rows(step, mode)
						for _, st := range stage.All() {
							if !slices.Equal(pa.Bits[st], pb.Bits[st]) {
								t.Errorf("prefill %s differs between runs (step %d)", st, step)
							}
							if !slices.Equal(da.Bits[st], db.Bits[st]) {
								t.Errorf("decode %s %s differs between runs (step %d)", mode, st, step)
							}
						}
					}
				}
				if a.Table() != b.Table() || a.Summary() != b.Summary() {
					t.Errorf("reports differ between runs:\n%s\n---\n%s", a.Table(), b.Table())
				}
				if t.Failed() {
					t.Logf("rerun: %s", rerunCommand(t))
				}
			})
		}
	}
}
