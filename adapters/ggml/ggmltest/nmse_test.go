//go:build ggmladapter

package ggml_test

import (
	"math"
	"testing"

	"github.com/gretacore/parity/internal/stage"
)

// nmse is llama.cpp's test-backend-ops error measure (tests/test-backend-ops.cpp,
// nmse() at the pinned ggml commit): sum((a_i - b_i)^2) / sum(a_i^2), a the
// CPU backend's output and b the tested backend's, accumulated in double
// from float operands. Here a is the path taken as the baseline (prefill,
// or the float64 reference) and b the other. Elements where either side is
// not finite are counted in nonFinite and left out of the sums, which
// test-backend-ops does not do (it would return NaN or Inf); a case with
// such elements is beyond every threshold anyway.
func nmse(a, b []float64) (v float64, nonFinite int) {
	var num, den float64
	for i := range a {
		if i >= len(b) {
			break
		}
		ai, bi := float64(float32(a[i])), float64(float32(b[i]))
		if math.IsNaN(ai) || math.IsInf(ai, 0) || math.IsNaN(bi) || math.IsInf(bi, 0) {
			nonFinite++
			continue
		}
		num += (ai - bi) * (ai - bi)
		den += ai * ai
	}
	if den == 0 {
		if num == 0 {
			return 0, nonFinite
		}
		return math.Inf(1), nonFinite
	}
	return num / den, nonFinite
}

// backendOpsThreshold is test-backend-ops' max_nmse_err for the ggml op a
// stage runs, at the pinned commit: 1e-7 by default (test_case::max_nmse_err:
// rms_norm, rope), 5e-4 for test_mul_mat and test_flash_attn_ext, 1e-6 for
// test_soft_max, 0 (exact) for test_cpy. The stages that are no single op
// (x_norm is rms_norm then mul) take their first op's threshold.
func backendOpsThreshold(st stage.Stage) (op string, threshold float64) {
	switch st {
	case stage.XNorm:
		return "RMS_NORM", 1e-7
	case stage.QProj, stage.KProj, stage.VProj, stage.AttnOut, stage.QK, stage.PV:
		return "MUL_MAT", 5e-4
	case stage.QRope, stage.KRope:
		return "ROPE", 1e-7
	case stage.KVCache:
		return "CPY", 0
	case stage.Softmax:
		return "SOFT_MAX", 1e-6
	case stage.Attn:
		return "FLASH_ATTN_EXT", 5e-4
	default:
		return "-", 1e-7
	}
}

// TestNMSEHelper pins nmse to hand-computed values, so a broken helper
// cannot make every finding look invisible to test-backend-ops.
func TestNMSEHelper(t *testing.T) {
	cases := []struct {
		a, b      []float64
		want      float64
		nonFinite int
	}{
		{[]float64{1, 2}, []float64{1, 2}, 0, 0},
		{[]float64{3, 4}, []float64{3, 3}, 1.0 / 25, 0},
		{[]float64{1, 0}, []float64{0, 0}, 1, 0},
		{[]float64{0, 0}, []float64{1, 0}, math.Inf(1), 0},
		{[]float64{2, math.NaN()}, []float64{1, 1}, 0.25, 1},
	}
	for _, c := range cases {
		got, nf := nmse(c.a, c.b)
		if got != c.want || nf != c.nonFinite {
			t.Errorf("nmse(%v, %v) = %v (%d non-finite), want %v (%d)", c.a, c.b, got, nf, c.want, c.nonFinite)
		}
	}
	if op, th := backendOpsThreshold(stage.Attn); op != "FLASH_ATTN_EXT" || th != 5e-4 {
		t.Errorf("threshold of attn = %s %v, want FLASH_ATTN_EXT 5e-4", op, th)
	}
}
