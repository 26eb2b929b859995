package parity

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/tolerance"
)

// required returns the capabilities -parity.require names.
func required(t testing.TB) []gpapi.Capability {
	t.Helper()
	cs, err := gpapi.ParseCapabilities(*flagRequire)
	if err != nil {
		t.Fatalf("-parity.require: %v", err)
	}
	return cs
}

// needCap skips t when the library lacks capability c, with a reason that
// names the missing symbols; under -parity.require=c it fails instead.
func needCap(t testing.TB, lib *gpapi.Lib, c gpapi.Capability) {
	t.Helper()
	err := lib.Need(c)
	if err == nil {
		return
	}
	if slices.Contains(required(t), c) {
		t.Fatalf("-parity.require=%s: %v", c, err)
	}
	recordSkip(t, err.Error()) // the run's account groups skips by reason
	t.Skip(err)
}

// contract returns the -parity.contract flag's contract.
func contract(t testing.TB) tolerance.Contract {
	t.Helper()
	c, err := tolerance.ParseContract(*flagContract)
	if err != nil {
		t.Fatalf("-parity.contract: %v", err)
	}
	return c
}

// TestCapabilities reports which optional parts of ABI 3 the library
// implements: one subtest per capability, skipped with the missing symbols
// when absent (failed under -parity.require). It also checks the
// declarations are well formed: forced routes are real routes, and every
// declared batch-invariant stage is a known stage.
func TestCapabilities(t *testing.T) {
	lib := openLib(t)
	for _, c := range gpapi.Capabilities {
		t.Run(string(c), func(t *testing.T) {
			needCap(t, lib, c)
			switch c {
			case gpapi.CapRoutes:
				rs := lib.ForcedRoutes()
				if len(rs) == 0 {
					t.Errorf("gp_forced_routes() declares no route; a library without forced routes leaves the symbol out")
				}
				t.Logf("forced routes: %v", rs)
			case gpapi.CapInvariance:
				names := lib.BatchInvariantStages()
				if err := checkStageNames(names); err != nil {
					t.Errorf("gp_batch_invariant_stages(): %v", err)
				}
				t.Logf("declared batch invariant: %s", strings.Join(names, ","))
			case gpapi.CapFaults:
				t.Logf("faults: %v", lib.Faults())
			}
		})
	}
}

func checkStageNames(names []string) error {
	var bad []string
	for _, n := range names {
		if _, err := stage.Parse(n); err != nil {
			bad = append(bad, n)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("unknown stage names %q", bad)
	}
	return nil
}
