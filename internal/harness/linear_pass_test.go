package harness

import (
	"math"
	"testing"
	"time"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/softkernels"
	"github.com/gretacore/parity/internal/stage"
)

// TestLinearPassesMatchLocal: Evaluate's one pass over each projection's
// weights (linearPasses) gives bit for bit the local checks and the
// propagation bound of the per-row functions (local, the stage's prop),
// both where decode read exactly prefill's values (step 0: no decode
// check of its own, a zero bound) and where it did not (step 1, whose
// decode rows are nudged by an ulp before every projection).
func TestLinearPassesMatchLocal(t *testing.T) {
	lib := softkernels.New()
	c := Case{Model: softModel(t, "tiny-qwen"), S: 9, Steps: 2, Dtype: dtype.F16, Route: gpapi.RouteAuto, Seed: 3, Layers: 2}
	in := NewInputs(c)
	tr, err := Execute(lib, c, in, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range []stage.Stage{stage.XNorm, stage.Attn, stage.PV, stage.PostNorm, stage.Act} {
		if v := tr.Chained[1].Out[st]; len(v) > 0 {
			v[0] = math.Nextafter(v[0], math.Inf(1))
		}
	}
	k := &ctx{c: c, dm: caseDims(c), in: in}
	p := tr.plan()
	lin := k.linearPasses(p, tr)
	if len(lin) < 7 { // q, k, v, o, gate, up, down
		t.Fatalf("one pass over %d projections, want the attention's four and the MLP's three", len(lin))
	}
	same := func(what string, st stage.Stage, step int, got, want []float64) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s %s step %d: %d values, want %d", st, what, step, len(got), len(want))
		}
		for i := range got {
			if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
				t.Fatalf("%s %s step %d [%d]: one pass %v, per row %v", st, what, step, i, got[i], want[i])
			}
		}
	}
	var reused, own int
	for st, passes := range lin {
		def := defOf(st)
		for step, ps := range passes {
			pre, dec := &tr.Prefill[step], &tr.Chained[step]
			inP, inD := k.inputsOf(p, def, pre), k.inputsOf(p, def, dec)
			want := k.local(def, inP, pre.R, pre.Pos)
			same("prefill ref", st, step, ps.pre.ref, want.ref)
			same("prefill strict", st, step, ps.pre.strict, want.strict)
			same("prefill engine", st, step, ps.pre.engine, want.engine)
			wantD := k.local(def, inD, pre.R, pre.Pos)
			if sameInputs(inD, inP) != (ps.dec == nil) {
				t.Fatalf("%s step %d: decode's own check computed = %v, decode read prefill's values = %v", st, step, ps.dec != nil, sameInputs(inD, inP))
			}
			if ps.dec == nil {
				reused++
				same("decode ref (prefill's)", st, step, ps.pre.ref, wantD.ref)
			} else {
				own++
				same("decode ref", st, step, ps.dec.ref, wantD.ref)
				same("decode strict", st, step, ps.dec.strict, wantD.strict)
				same("decode engine", st, step, ps.dec.engine, wantD.engine)
			}
			same("prop", st, step, ps.prop, def.prop(k, inD, inP, wantD.ref, want.ref, pre.R, pre.Pos))
		}
	}
	if reused == 0 || own == 0 {
		t.Errorf("%d projection steps reused prefill's check, %d had their own: the test must see both", reused, own)
	}
}
