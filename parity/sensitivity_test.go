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
	"github.com/gretacore/parity/internal/tolerance"
)

// TestSensitivityFloor measures, per dtype, accuracy contract and stage,
// the smallest relative error ε on one decode output element that the
// tolerance mode detects (isolated mode, tiny-k90 model, S=17, AUTO). It prints
// the table README.md shows next to the tolerance model. The check that
// makes it a test: every stage must detect a perturbation of 100% (ε=1) of
// its largest element under both contracts, and kv_cache any change.
func TestSensitivityFloor(t *testing.T) {
	lib := openLib(t)
	m := modelByName(t, "tiny-k90")
	contracts := []tolerance.Contract{tolerance.Strict, tolerance.Engine}
	var b strings.Builder
	b.WriteString("| stage |")
	for _, dt := range dtype.All {
		for _, ct := range contracts {
			fmt.Fprintf(&b, " %s %s |", dt, ct)
		}
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(dtype.All)*len(contracts)) + "\n")
	type key struct {
		dt dtype.Dtype
		ct tolerance.Contract
	}
	floors := map[key][stage.Count]float64{}
	unmeasured := map[key]bool{}
	var ran [stage.Count]bool
	for _, dt := range dtype.All {
		for _, ct := range contracts {
			c := harness.Case{Model: m, S: 17, Steps: 1, Dtype: dt, Route: gpapi.RouteAuto, Dist: harness.DistNormal, Seed: 3, Contract: ct}
			in := harness.NewInputs(c)
			tr, err := harness.Execute(lib, c, in, *flagTimeout)
			if err != nil {
				t.Fatal(err)
			}
			res := harness.Evaluate(c, in, tr)
			ran = res.Ran
			if !res.Pass() {
				// No floor without a passing baseline. Under the contract
				// the run selects that is a failure; under the other one (an
				// engine that needs -parity.contract=engine, measured under
				// strict) the column says so.
				unmeasured[key{dt, ct}] = true
				if ct == contract(t) {
					t.Errorf("%s/%s: the unperturbed case fails:\n%s\n%s\nrerun: %s", dt, ct, res.Summary(), res.Table(), rerunCommand(t))
				}
				continue
			}
			var f [stage.Count]float64
			for _, st := range stage.All() {
				if !ran[st] {
					continue
				}
				f[st] = harness.Sensitivity(c, in, tr, st, harness.Isolated)
				if !(f[st] <= 1) {
					t.Errorf("%s/%s/%s: a 100%% error on one element is not detected (floor %v)\nrerun: %s", dt, ct, st, f[st], rerunCommand(t))
				}
				if st == stage.KVCache && f[st] > 0x1p-39 {
					t.Errorf("%s/%s: kv_cache is a copy, any change must be detected (floor %v)\nrerun: %s", dt, ct, f[st], rerunCommand(t))
				}
			}
			floors[key{dt, ct}] = f
		}
	}
	for _, st := range stage.All() {
		if !ran[st] {
			continue
		}
		fmt.Fprintf(&b, "| %s |", st)
		for _, dt := range dtype.All {
			for _, ct := range contracts {
				v := floors[key{dt, ct}][st]
				switch {
				case unmeasured[key{dt, ct}]:
					fmt.Fprintf(&b, " fails unperturbed |")
				case math.IsInf(v, 1):
					fmt.Fprintf(&b, " not detected |")
				case v <= 0x1p-39:
					fmt.Fprintf(&b, " any change |")
				default:
					fmt.Fprintf(&b, " %.2g |", v)
				}
			}
		}
		b.WriteString("\n")
	}
	t.Logf("sensitivity floor (smallest relative error on one decode element that fails, isolated mode):\n%s", b.String())
}
