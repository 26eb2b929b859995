package harness

import (
	"math"

	"github.com/gretacore/parity/internal/stage"
)

// Sensitivity returns the smallest relative perturbation ε that the
// tolerance mode detects when added to one element of one stage's decode
// output (step 0, in the given mode): the element of largest magnitude
// becomes v·(1+ε). It bisects ε over [2^-40, 2^4] in log2 steps of 1/4 and
// returns +Inf if even 16·|v| passes. The trace must pass unperturbed.
//
// It answers "what can a green run not see": a decode kernel whose error
// stays under the floor of its stage passes.
func Sensitivity(c Case, in *Inputs, tr *Trace, st stage.Stage, mode Path) float64 {
	rows := tr.Chained
	if mode == Isolated {
		rows = tr.Isolated
	}
	orig := rows[0].Out[st]
	idx := 0
	for i, v := range orig {
		if !math.IsInf(v, 0) && math.Abs(v) > math.Abs(orig[idx]) {
			idx = i
		}
	}
	detected := func(eps float64) bool {
		pert := append([]float64(nil), orig...)
		pert[idx] = orig[idx] * (1 + eps)
		rows[0].Out[st] = pert
		defer func() { rows[0].Out[st] = orig }()
		// Evaluate only looks at values for the tolerance checks; the bits
		// stay the original ones, so the bitwise check does not fire.
		res := Evaluate(Case{Model: c.Model, S: c.S, Steps: 1, Dtype: c.Dtype, Route: c.Route, Dist: c.Dist,
			Seed: c.Seed, PosOffset: c.PosOffset, FusedOnly: c.FusedOnly, AttnOnly: c.AttnOnly, Contract: c.Contract}, in, tr)
		for _, s := range res.Stages {
			if s.Stage == st && s.Mode == mode && s.Step == 0 {
				return !s.OK()
			}
		}
		return false
	}
	lo, hi := -40.0, 4.0 // log2 ε
	if !detected(math.Exp2(hi)) {
		return math.Inf(1)
	}
	for hi-lo > 0.25 {
		mid := (lo + hi) / 2
		if detected(math.Exp2(mid)) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return math.Exp2(hi)
}
