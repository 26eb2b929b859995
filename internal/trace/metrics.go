package trace

import "math"

// Metrics compares a candidate output (decode) with a baseline (prefill's
// row), element by element. It is the one definition of the numbers the
// harness's report and tracediff both print: the harness computes them over
// a stage's whole row with [Diff], tracediff over the records of the stage
// (one per head) with an [Acc], and both get the same MAE, max|Δ| and rel L2
// for the same elements, whatever the order they are added in (the sums are
// compensated, see [Acc]).
//
// With bounds (the per-element pair tolerance the harness used: local, and
// prop, the part of it that carried input differences explain; see
// [Record.TolLocal]) it also gives the pair check's margin.
type Metrics struct {
	N int // elements compared

	// MAE is mean |cand − base|, MaxAbs max |cand − base|, RelL2
	// ‖cand − base‖₂ / ‖base‖₂ over the finite baseline values (0 when
	// both are all zero, +Inf when only the baseline is). A NaN difference
	// makes all three NaN; equal infinities (masked scores) differ by 0.
	MAE, MaxAbs, RelL2 float64
	// NonFinite counts the elements where either side is NaN, or one side is
	// ±Inf and the other is not the same Inf, or the difference overflows.
	NonFinite int

	// Bounded reports whether every element came with a bound; the fields
	// below are meaningful only then.
	Bounded bool
	// Margin is the pair check's number: max over elements of
	// max(0, |Δ| − prop) / local (≤ 1 passes; +Inf on a non-finite
	// mismatch): the share of the local error budget used once the carried
	// input difference is subtracted.
	Margin float64
	// OwnMargin is max |Δ| / local, the margin without the carried
	// allowance. A chained stage with Margin ≤ 1 < OwnMargin differs beyond
	// its own budget only because its inputs did: the difference is
	// carried from upstream.
	OwnMargin float64
	// Worst is the index (in the order added) of the element that sets
	// Margin, -1 if no element differs; WorstDelta, WorstLocal and
	// WorstProp are its |Δ| and bounds.
	Worst                             int
	WorstDelta, WorstLocal, WorstProp float64
}

// Pass reports whether the pair check passes: no non-finite mismatch and,
// with bounds, Margin ≤ 1. Without bounds it says nothing about size.
func (m Metrics) Pass() bool { return m.NonFinite == 0 && (!m.Bounded || m.Margin <= 1) }

// Acc accumulates [Metrics] over several slices of one stage (the heads of
// a trace, or one whole row). Its sums are compensated (Neumaier): every
// term is non-negative, so the result is the correctly rounded sum in all
// but astronomically rare cases, whatever the order the elements come in —
// which is what lets tracediff, adding one head at a time, print the very
// number the harness computed over the row.
type Acc struct {
	n, nonFinite             int
	sumAbs, sumSq, sumBaseSq ksum
	maxAbs                   float64
	hasNaN                   bool
	bounded, unbounded       bool
	margin, own              float64
	worst                    int
	worstD, worstL, worstP   float64
}

// NewAcc returns an empty accumulator.
func NewAcc() *Acc { return &Acc{worst: -1} }

// Diff is the metrics of one pair of slices; local and prop may be nil (no
// bounds; prop nil = nothing carried).
func Diff(base, cand, local, prop []float64) Metrics {
	a := NewAcc()
	a.Add(base, cand, local, prop)
	return a.Metrics()
}

// Add accumulates base against cand, which must have the same length (the
// caller checks shapes). local and prop, when not nil, have that length too;
// local nil marks these elements as unbounded.
func (a *Acc) Add(base, cand, local, prop []float64) {
	if local != nil {
		a.bounded = true
	} else {
		a.unbounded = true
	}
	off := a.n
	for i, x := range base {
		y := cand[i]
		if isFinite(x) {
			a.sumBaseSq.add(float64(x * x)) // float64(): no FMA fusion, so goldens match on arm64
		}
		if x == y { // equal, including matching infinities (masked keys)
			continue
		}
		d := math.Abs(y - x)
		nonFinite := !isFinite(x) || !isFinite(y) || math.IsInf(d, 0)
		if nonFinite {
			a.nonFinite++
		}
		a.sumAbs.add(d)
		a.sumSq.add(float64(d * d))
		switch {
		case math.IsNaN(d):
			a.hasNaN = true
		case d > a.maxAbs:
			a.maxAbs = d
		}
		if local == nil {
			continue
		}
		carried := 0.0
		if prop != nil && !math.IsNaN(prop[i]) { // a NaN allowance excuses nothing
			carried = prop[i]
		}
		m := math.Inf(1)
		if !nonFinite {
			m = Ratio(math.Max(0, d-carried), local[i])
			a.own = math.Max(a.own, Ratio(d, local[i]))
		} else {
			a.own = math.Inf(1)
		}
		if m > a.margin || a.worst < 0 {
			a.margin, a.worst = math.Max(a.margin, m), off+i
			a.worstD, a.worstL, a.worstP = d, local[i], carried
		}
	}
	a.n += len(base)
}

// Metrics returns what has been accumulated.
func (a *Acc) Metrics() Metrics {
	m := Metrics{N: a.n, NonFinite: a.nonFinite, MaxAbs: a.maxAbs, Worst: -1}
	if a.n > 0 {
		m.MAE = a.sumAbs.value() / float64(a.n)
	}
	m.RelL2 = relL2(a.sumSq.value(), a.sumBaseSq.value())
	if a.hasNaN {
		m.MAE, m.MaxAbs, m.RelL2 = math.NaN(), math.NaN(), math.NaN()
	}
	if a.bounded && !a.unbounded {
		m.Bounded = true
		m.Margin, m.OwnMargin, m.Worst = a.margin, a.own, a.worst
		m.WorstDelta, m.WorstLocal, m.WorstProp = a.worstD, a.worstL, a.worstP
	}
	return m
}

// ksum is a Neumaier-compensated sum.
type ksum struct {
	hi, lo    float64
	nonFinite bool
}

func (s *ksum) add(x float64) {
	if s.nonFinite || !isFinite(x) {
		s.nonFinite = true
		s.hi += x
		return
	}
	t := s.hi + x
	if math.Abs(s.hi) >= math.Abs(x) {
		s.lo += (s.hi - t) + x
	} else {
		s.lo += (x - t) + s.hi
	}
	s.hi = t
}

func (s ksum) value() float64 {
	if s.nonFinite {
		return s.hi
	}
	return s.hi + s.lo
}

// Ratio is a/b with 0/0 = 0 and x/0 = +Inf: a margin (difference over its
// bound), shared by the harness and tracediff.
func Ratio(a, b float64) float64 {
	if a == 0 {
		return 0
	}
	if b == 0 {
		return math.Inf(1)
	}
	return a / b
}
