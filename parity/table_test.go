package parity

import (
	"fmt"
	"testing"

	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/stage"
)

// TestParity is the table-driven suite: model fixtures × S at route and tile
// boundaries × dtype × route (harness.Matrix). Subtests read
// TestParity/llama3-8b/f16/S=129/auto. GRETA_GEMM_FORCE=MFMA|VALU runs every
// case with both paths forced onto that route (the field report's B3.31
// experiment), which requires bitwise equality.
func TestParity(t *testing.T) {
	lib := openLib(t)
	forced, err := harness.ForcedRoute()
	if err != nil {
		t.Fatal(err)
	}
	cases := harness.Matrix(loadModels(t), *flagFull, *flagSeed)
	if len(cases) == 0 {
		t.Fatal("the matrix is empty: check -parity.models")
	}
	var named []namedCase
	for _, c := range cases {
		if forced != gpapi.RouteAuto {
			if c.Route != gpapi.RouteAuto {
				continue // the forced run replaces the route column
			}
			c.Route = forced
		}
		c.Bitwise = *flagBitwise
		leaf := c.Route.String()
		if c.Steps > 1 {
			leaf += fmt.Sprintf("_steps=%d", c.Steps)
		}
		named = append(named, namedCase{[]string{c.Model.Name, c.Dtype.String(), fmt.Sprintf("S=%d", c.S), leaf}, c})
	}
	// Levels 0 and 1 (model, dtype) run in order, so one set of weights is
	// on the device at a time; S and route run in parallel within them (the
	// library serializes kernel calls; references and checks overlap).
	runTree(t, named, 2, func(t *testing.T, c harness.Case) {
		res := checkCase(t, lib, c)
		if !t.Failed() {
			checkAttestation(t, c, res)
		}
	})
}

type namedCase struct {
	path []string
	c    harness.Case
}

// runTree runs cases as nested subtests, one level per path element,
// grouping consecutive cases that share a prefix, so -run can select any
// level: TestParity/llama3-8b/f16/S=129/auto.
// Levels from parallelFrom down run with t.Parallel.
func runTree(t *testing.T, cases []namedCase, parallelFrom int, f func(*testing.T, harness.Case)) {
	for i := 0; i < len(cases); {
		j := i + 1
		if len(cases[i].path) > 1 {
			for j < len(cases) && len(cases[j].path) > 1 && cases[j].path[0] == cases[i].path[0] {
				j++
			}
		}
		group := cases[i:j]
		t.Run(group[0].path[0], func(t *testing.T) {
			if parallelFrom <= 0 {
				t.Parallel()
			}
			if len(group[0].path) == 1 {
				f(t, group[0].c)
				return
			}
			sub := make([]namedCase, len(group))
			for k, g := range group {
				sub[k] = namedCase{g.path[1:], g.c}
			}
			runTree(t, sub, parallelFrom-1, f)
		})
		i = j
	}
}

// checkAttestation proves which kernels were compared: on AUTO, prefill
// (M > 1) must have run the MFMA route and decode (M = 1) the VALU route;
// forced, both ran the forced route.
func checkAttestation(t *testing.T, c harness.Case, res *harness.Result) {
	t.Helper()
	wantPre, wantDec := gpapi.RouteMFMA, gpapi.RouteVALU
	if c.Route != gpapi.RouteAuto {
		wantPre, wantDec = c.Route, c.Route
	}
	for _, st := range []stage.Stage{stage.QProj, stage.KProj, stage.VProj, stage.AttnOut} {
		if got := res.Prefill[st].Route; got != wantPre {
			t.Errorf("attestation: prefill %v ran route %v (%s), want %v\nrerun: %s", st, got, res.Prefill[st], wantPre, rerunCommand(t))
		}
		if got := res.Decode[st].Route; got != wantDec {
			t.Errorf("attestation: decode %v ran route %v (%s), want %v\nrerun: %s", st, got, res.Decode[st], wantDec, rerunCommand(t))
		}
	}
}
