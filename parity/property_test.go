package parity

import (
	"testing"

	"pgregory.net/rapid"
)

// TestPropertyParity draws random cases (caseGen) and requires each to
// pass. A failure is shrunk by rapid to a minimal case; rapid prints the
// -rapid.failfile that replays it, and we print the case's report.
func TestPropertyParity(t *testing.T) {
	lib := openLib(t)
	maxHidden, maxS := 1024, 129
	if backendKind == "cpu" && !*flagFull {
		maxHidden, maxS = 320, 65 // a CPU GEMM costs M·N·K: keep the default run short
	}
	gen := caseGen(maxHidden, maxS)
	rapid.Check(t, func(rt *rapid.T) {
		c := gen.Draw(rt, "case")
		res, err := runCase(rt, lib, c)
		if err != nil {
			rt.Fatalf("%v", err)
		}
		if !res.Pass() {
			rt.Fatalf("decode diverges from prefill\n%s\n%s\nreplay: %s (with rapid's -rapid.failfile below)", res.Summary(), res.Table(), rerunCommand(t))
		}
	})
}
