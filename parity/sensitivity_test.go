package parity

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/stage"
)

// TestSensitivityFloor measures, per dtype and stage, the smallest relative
// error ε on one decode output element that the tolerance mode detects
// (isolated mode, tiny model, S=17, AUTO). It prints the table README.md
// shows next to the tolerance model. The check that makes it a test: every
// stage must detect a perturbation of 100% (ε=1) of its largest element,
// except kv_cache and the exact stages, which must detect any change.
func TestSensitivityFloor(t *testing.T) {
	lib := openLib(t)
	m := modelByName(t, "tiny")
	var b strings.Builder
	b.WriteString("| stage |")
	for _, dt := range dtype.All {
		fmt.Fprintf(&b, " %s |", dt)
	}
	b.WriteString("\n|---|---:|---:|---:|\n")
	floors := map[dtype.Dtype][stage.Count]float64{}
	for _, dt := range dtype.All {
		c := harness.Case{Model: m, S: 17, Steps: 1, Dtype: dt, Route: gpapi.RouteAuto, Dist: harness.DistNormal, Seed: 3}
		in := harness.NewInputs(c)
		tr, err := harness.Execute(lib, c, in, *flagTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if res := harness.Evaluate(c, in, tr); !res.Pass() {
			t.Fatalf("the unperturbed case fails:\n%s\n%s\nrerun: %s", res.Summary(), res.Table(), rerunCommand(t))
		}
		var f [stage.Count]float64
		for _, st := range stage.All() {
			f[st] = harness.Sensitivity(c, in, tr, st, harness.Isolated)
			if !(f[st] <= 1) {
				t.Errorf("%s/%s: a 100%% error on one element is not detected (floor %v)\nrerun: %s", dt, st, f[st], rerunCommand(t))
			}
		}
		floors[dt] = f
	}
	for _, st := range stage.All() {
		fmt.Fprintf(&b, "| %s |", st)
		for _, dt := range dtype.All {
			v := floors[dt][st]
			switch {
			case math.IsInf(v, 1):
				fmt.Fprintf(&b, " not detected |")
			case v <= 0x1p-39:
				fmt.Fprintf(&b, " any change |")
			default:
				fmt.Fprintf(&b, " %.2g |", v)
			}
		}
		b.WriteString("\n")
	}
	t.Logf("sensitivity floor (smallest relative error on one decode element that fails, isolated mode):\n%s", b.String())
}
