package trace

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/stage"
)

// TestDiffRelL2Denominator: rel L2 divides by the whole baseline's norm,
// equal elements included. The harness once summed the baseline only over
// the elements that differ, and reported 1.102 for a kv_cache where
// tracediff said 0.838; both now call Diff.
func TestDiffRelL2Denominator(t *testing.T) {
	m := Diff([]float64{1, 1, 1, 1}, []float64{1, 1, 1, 3}, nil, nil)
	if m.RelL2 != 1 || m.MAE != 0.5 || m.MaxAbs != 2 || m.N != 4 || m.Bounded {
		t.Errorf("Diff = %+v, want rel L2 1 (‖(0,0,0,2)‖/‖(1,1,1,1)‖), MAE 0.5, max 2", m)
	}
	if m := Diff([]float64{0, 0}, []float64{0, 1}, nil, nil); !math.IsInf(m.RelL2, 1) {
		t.Errorf("all-zero baseline, nonzero candidate: rel L2 %v, want +Inf", m.RelL2)
	}
	nan := Diff([]float64{1, math.Inf(-1)}, []float64{math.NaN(), math.Inf(-1)}, []float64{1, 1}, nil)
	if nan.NonFinite != 1 || !math.IsNaN(nan.MAE) || !math.IsInf(nan.Margin, 1) || nan.Pass() {
		t.Errorf("NaN candidate: %+v, want one non-finite mismatch, NaN MAE, +Inf margin", nan)
	}
	masked := Diff([]float64{math.Inf(-1)}, []float64{math.Inf(-1)}, []float64{0}, nil)
	if masked.NonFinite != 0 || masked.Margin != 0 || !masked.Pass() {
		t.Errorf("matching -Inf (a masked score): %+v, want equal", masked)
	}
}

// TestDiffMargins: the pair margin subtracts the carried allowance
// (prop); OwnMargin does not, so a difference carried from upstream shows
// as OwnMargin > 1 ≥ Margin. A NaN allowance excuses nothing.
func TestDiffMargins(t *testing.T) {
	base := []float64{1, 2, 3}
	cand := []float64{1.5, 2, 3.001}
	local := []float64{0.01, 0.01, 0.01}
	prop := []float64{0.5, 0, 0}
	m := Diff(base, cand, local, prop)
	if !m.Bounded || math.Abs(m.Margin-0.1) > 1e-9 || math.Abs(m.OwnMargin-50) > 1e-9 || !m.Pass() {
		t.Errorf("carried: %+v, want margin 0.1 (index 2), own margin 50 (index 0)", m)
	}
	if m.Worst != 2 || math.Abs(m.WorstDelta-0.001) > 1e-12 || m.WorstLocal != 0.01 || m.WorstProp != 0 {
		t.Errorf("worst element: %+v, want index 2 with |Δ| 0.001, local 0.01, prop 0", m)
	}
	if m := Diff(base, cand, local, []float64{math.NaN(), 0, 0}); m.Pass() {
		t.Errorf("a NaN allowance excused a difference: %+v", m)
	}
	// Unbounded slices make the whole accumulation unbounded.
	a := NewAcc()
	a.Add(base, cand, local, prop)
	a.Add(base, base, nil, nil)
	if a.Metrics().Bounded {
		t.Errorf("partly bounded accumulation reports bounds")
	}
}

// TestAccOrderIndependent: pooling a row head by head, in any order and
// split, gives bit for bit the numbers of Diff over the whole row — the
// harness (one row) and tracediff (one record per head, the KV cache's K
// and V interleaved per head) print the same MAE, max|Δ| and rel L2.
func TestAccOrderIndependent(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 50; trial++ {
		n := 64 + r.IntN(4000)
		base, cand, local := make([]float64, n), make([]float64, n), make([]float64, n)
		for i := range base {
			base[i] = r.NormFloat64() * math.Pow(10, float64(r.IntN(6)-3))
			cand[i] = base[i]
			if r.IntN(3) > 0 {
				cand[i] += r.NormFloat64() * 1e-3 * math.Abs(base[i])
			}
			local[i] = 1e-3
		}
		whole := Diff(base, cand, local, nil)
		// Split into "heads" and add them in a shuffled order.
		heads := 1 + r.IntN(16)
		cut := n / heads
		var order []int
		for h := 0; h*cut < n; h++ {
			order = append(order, h)
		}
		r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		a := NewAcc()
		for _, h := range order {
			lo, hi := h*cut, min(n, (h+1)*cut)
			a.Add(base[lo:hi], cand[lo:hi], local[lo:hi], nil)
		}
		got := a.Metrics()
		if got.MAE != whole.MAE || got.RelL2 != whole.RelL2 || got.MaxAbs != whole.MaxAbs || got.Margin != whole.Margin || got.N != whole.N {
			t.Fatalf("trial %d (n=%d, %d heads): pooled %+v, whole %+v", trial, n, len(order), got, whole)
		}
	}
}

// TestCompareJudgesByRecordedBounds: a decode record that carries the
// harness's bounds is judged by them — a difference of rel L2 1e-4, far
// below tracediff's 1e-2 threshold, diverges when it exceeds the bound —
// and the checks a trace cannot recompute (bitwise here) are taken as
// recorded. Without bounds (older traces, -bounds=false) the threshold
// rule applies and says nothing diverges.
func TestCompareJudgesByRecordedBounds(t *testing.T) {
	base := rec(PhasePrefillLast, stage.QProj, 0, 1, 2, 3, 4)
	cand := rec(DecodePhase(0), stage.QProj, 0, 1, 2, 3, 4.001)
	cand.TolLocal = []float64{1e-4, 1e-4, 1e-4, 1e-4}
	cand.Checks, cand.Verdict = []string{"pair"}, VerdictDiverges
	for _, r := range []*Record{&base, &cand} {
		r.Mode = ModeIsolated
	}
	rep, err := Compare([]Record{base, cand}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Groups[0].Stages[0]
	if !s.Bounded || !s.Diverges || s.Verdict != VerdictDiverges || rep.Bounded != 1 || rep.Unbounded != 0 || s.RelL2 > 1e-3 {
		t.Errorf("bounded: %+v (report bounded %d/unbounded %d), want divergence by the bounds at rel L2 %.1e", s, rep.Bounded, rep.Unbounded, s.RelL2)
	}
	opts := DefaultOptions()
	opts.IgnoreBounds = true
	rep, err = Compare([]Record{base, cand}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Groups[0].Stages[0]; s.Bounded || s.Diverges || rep.Unbounded != 1 {
		t.Errorf("-bounds=false: %+v, want the threshold rule (no divergence)", s)
	}
	// Within the bound, but a recorded bitwise failure still diverges.
	cand.Values[3], cand.Checks = 4.00001, []string{"bitwise"}
	rep, err = Compare([]Record{base, cand}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.Groups[0].Stages[0]; !s.Diverges || strings.Join(s.Checks, ",") != "bitwise" {
		t.Errorf("recorded bitwise failure: %+v, want divergence on bitwise only", s)
	}
	// The bounds belong to prefill_last vs decodeN only.
	ref := base
	ref.Phase = PhaseReference
	opts = DefaultOptions()
	opts.Base = PhaseReference
	rep, err = Compare([]Record{ref, cand}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Groups[0].Stages[0].Bounded {
		t.Errorf("reference vs decode0 used the pair bounds")
	}
}

// TestCompareCarriedVerdict: a chained stage that passes only because of
// its carried allowance reads "carried"; one that fails chained but passes
// in the isolated group reads "carried" too; isolated failures DIVERGE.
func TestCompareCarriedVerdict(t *testing.T) {
	var recs []Record
	add := func(mode string, st stage.Stage, d float64, local, prop float64) {
		b := rec(PhasePrefillLast, st, 0, 1, 2)
		c := rec(DecodePhase(0), st, 0, 1, 2+d)
		b.Mode, c.Mode = mode, mode
		c.TolLocal = []float64{local, local}
		if mode == ModeChained {
			c.TolProp = []float64{prop, prop}
		}
		recs = append(recs, b, c)
	}
	add(ModeChained, stage.QRope, 1, 1e-3, 0)  // diverges
	add(ModeChained, stage.QK, 0.5, 1e-3, 0.6) // passes thanks to prop: carried
	add(ModeChained, stage.PV, 0.5, 1e-3, 0.1) // fails chained ...
	add(ModeIsolated, stage.QRope, 1, 1e-3, 0) // diverges in isolation
	add(ModeIsolated, stage.QK, 0, 1e-3, 0)    // clean
	add(ModeIsolated, stage.PV, 0, 1e-3, 0)    // ... but passes isolated: carried
	rep, err := Compare(recs, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, g := range rep.Groups {
		for _, s := range g.Stages {
			got[g.Mode+"/"+s.Stage.String()] = s.Verdict
		}
	}
	for k, want := range map[string]string{
		"chained/q_rope": VerdictDiverges, "chained/qk": VerdictCarried, "chained/pv": VerdictCarried,
		"isolated/q_rope": VerdictDiverges, "isolated/qk": VerdictOK, "isolated/pv": VerdictOK,
	} {
		if got[k] != want {
			t.Errorf("%s: verdict %q, want %q", k, got[k], want)
		}
	}
}

// TestBoundsFieldsRoundTripAndValidate: the optional fields survive a
// write/read, records without them still parse (older traces), and
// inconsistent ones are rejected.
func TestBoundsFieldsRoundTripAndValidate(t *testing.T) {
	r := rec(DecodePhase(0), stage.KVCache, 1, 1, 2, 3, math.NaN())
	r.Mode = ModeChained
	r.TolLocal = []float64{0, 1e-3, math.Inf(1), 2}
	r.TolProp = []float64{0.5, 0, 0, 0}
	r.Checks, r.Verdict = []string{"pair", "fa"}, VerdictCarried
	b, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRecord(b)
	if err != nil {
		t.Fatalf("ParseRecord(%s): %v", b, err)
	}
	if !sameFloats(got.TolLocal, r.TolLocal) || !sameFloats(got.TolProp, r.TolProp) || strings.Join(got.Checks, ",") != "pair,fa" || got.Verdict != VerdictCarried {
		t.Errorf("round trip = %+v, want %+v", got, r)
	}
	if _, err := ParseRecord([]byte(good)); err != nil {
		t.Errorf("a record without bounds: %v", err)
	}
	repl := func(old, new string) string { return strings.Replace(good, old, new, 1) }
	for _, tc := range []struct{ line, want string }{
		{repl(`"values":[1,2]`, `"values":[1,2],"tol_local":[1]`), "len(tol_local) = 1"},
		{repl(`"values":[1,2]`, `"values":[1,2],"tol_prop":[1,1]`), "tol_prop without tol_local"},
		{repl(`"values":[1,2]`, `"values":[1,2],"tol_local":[1,1],"tol_prop":[1]`), "len(tol_prop) = 1"},
		{repl(`"values":[1,2]`, `"values":[1,2],"verdict":"fine"`), `verdict "fine"`},
		{repl(`"values":[1,2]`, `"values":[1,2],"checks":[""]`), "empty name"},
	} {
		if _, err := ParseRecord([]byte(tc.line)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseRecord(%s) = %v, want an error containing %q", tc.line, err, tc.want)
		}
	}
}
