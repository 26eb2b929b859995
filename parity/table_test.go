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
	for _, c := range cases {
		if forced != gpapi.RouteAuto {
			if c.Route != gpapi.RouteAuto {
				continue // the forced run replaces the route column
			}
			c.Route = forced
		}
		c.Bitwise = *flagBitwise
		name := []string{c.Model.Name, c.Dtype.String(), fmt.Sprintf("S=%d", c.S), c.Route.String()}
		if c.Steps > 1 {
			name[3] += fmt.Sprintf("/steps=%d", c.Steps)
		}
		runNested(t, name, func(t *testing.T) {
			res := checkCase(t, lib, c)
			if t.Failed() {
				return
			}
			checkAttestation(t, c, res)
		})
	}
}

// runNested runs f as nested subtests named by parts, so -run can select
// any level (TestParity/llama3-8b/f16/S=129/auto).
func runNested(t *testing.T, parts []string, f func(t *testing.T)) {
	if len(parts) == 0 {
		f(t)
		return
	}
	t.Run(parts[0], func(t *testing.T) { runNested(t, parts[1:], f) })
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
