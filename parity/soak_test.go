package parity

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestSoak runs the property for -parity.soak (off by default): batches of
// rapid checks, each with a fresh seed, until the time is up. It reports
// the number of cases run and fails on the first failing batch (rapid
// shrinks it and prints the failfile).
func TestSoak(t *testing.T) {
	if *flagSoak <= 0 {
		t.Skip("soak mode is off: pass -parity.soak=10m to run it")
	}
	lib := openLib(t)
	maxHidden, maxS := 1024, 129
	if backendKind == "cpu" {
		maxHidden, maxS = 320, 65
	}
	gen := caseGen(maxHidden, maxS, libRoutes(lib))
	var cases, failures atomic.Int64
	deadline := time.Now().Add(*flagSoak)
	for batch := 0; time.Now().Before(deadline); batch++ {
		ok := t.Run(fmt.Sprintf("batch%d", batch), func(t *testing.T) {
			rapid.Check(t, func(rt *rapid.T) {
				cases.Add(1)
				c := gen.Draw(rt, "case")
				res, err := runCase(rt, lib, c)
				if err != nil {
					failures.Add(1)
					rt.Fatalf("%v", err)
				}
				if !res.Pass() {
					failures.Add(1)
					rt.Fatalf("decode diverges from prefill\n%s\n%s", res.Summary(), res.Table())
				}
			})
		})
		if !ok {
			break
		}
	}
	t.Logf("soak: %d cases in %v, %d failing draws (shrinking included)", cases.Load(), *flagSoak, failures.Load())
	fmt.Printf("parity soak: backend=%s cases=%d failures=%d duration=%v\n", backendKind, cases.Load(), failures.Load(), *flagSoak)
}
