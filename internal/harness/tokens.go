package harness

import (
	"fmt"
	"math"
)

// TokenVerdict is what the head's logits say about the next token on each
// path: decode's and prefill's argmax, and the gap between each one's top
// two logits.
//
// A different argmax is reported, always, but it is not a check of its
// own: the case fails on it only when the logits themselves fail the pair
// check (lm_head's stage result). Two logits within the pair tolerance of
// each other are a near-tie: the rounding differences that tolerance
// allows (decode's GEMV against prefill's GEMM) legitimately flip which of
// them is larger, and failing on that would fail correct kernels on every
// near-tie. The gaps say how close the call was: a flip with a gap far
// above lm_head's local tolerance comes with a failing lm_head.
type TokenVerdict struct {
	DecodeToken, PrefillToken int     // argmax of each path's logits (the first of equal maxima)
	DecodeGap, PrefillGap     float64 // top-1 minus top-2 logit of each path (+Inf with one logit; NaN with a non-finite one)
}

// Same reports whether decode and prefill pick the same token.
func (v TokenVerdict) Same() bool { return v.DecodeToken == v.PrefillToken }

func (v TokenVerdict) String() string {
	same := "same argmax"
	if !v.Same() {
		same = "DIFFERENT argmax (a failure only if lm_head fails the pair check: near-ties flip within tolerance)"
	}
	return fmt.Sprintf("token decode=%d prefill=%d: %s; top-2 logit gap decode=%s prefill=%s",
		v.DecodeToken, v.PrefillToken, same, num(v.DecodeGap), num(v.PrefillGap))
}

// CompareTokens is the token verdict of one step's logits.
func CompareTokens(decode, prefill []float64) TokenVerdict {
	var v TokenVerdict
	v.DecodeToken, v.DecodeGap = top2(decode)
	v.PrefillToken, v.PrefillGap = top2(prefill)
	return v
}

// top2 returns the argmax of x (the first of equal maxima; -1 for an empty
// x) and the gap to the second largest. A NaN logit makes the gap NaN: no
// token is reliably picked.
func top2(x []float64) (int, float64) {
	best, first, second := -1, math.Inf(-1), math.Inf(-1)
	nan := false
	for i, v := range x {
		switch {
		case math.IsNaN(v):
			nan = true
		case best < 0 || v > first:
			best, first, second = i, v, first
		case v > second:
			second = v
		}
	}
	switch {
	case nan:
		return best, math.NaN()
	case len(x) < 2:
		return best, math.Inf(1)
	}
	return best, first - second
}
