package softkernels

import (
	"math"
	"strconv"

	"github.com/gretacore/parity/internal/dtype"
)

// Argument checks, in the order and with the messages of
// kernels/common/gp_common.c, so that this backend rejects the same calls
// with the same status and message as the C backends. Each returns stOK or
// the failing status (the message is in b.err).

func (b *backend) checkDtype(fn string, dt int32) int32 {
	if dt != int32(dtype.F32) && dt != int32(dtype.F16) && dt != int32(dtype.BF16) {
		return b.fail(stInvalidArg, "%s: dtype=%d is not a gp_dtype (0=f32, 1=f16, 2=bf16)", fn, dt)
	}
	return stOK
}

// checkRange: 1 <= value <= max.
func (b *backend) checkRange(fn, arg string, value int32, max int) int32 {
	if value <= 0 {
		return b.fail(stInvalidArg, "%s: %s=%d must be > 0", fn, arg, value)
	}
	if int(value) > max {
		return b.fail(stInvalidArg, "%s: %s=%d must be <= %d", fn, arg, value, max)
	}
	return stOK
}

// checkProduct: a*b <= max for a width made of two factors.
func (b *backend) checkProduct(fn, aName string, a int32, bName string, bv int32, max int) int32 {
	if p := int64(a) * int64(bv); p > int64(max) {
		return b.fail(stInvalidArg, "%s: %s*%s=%d*%d=%d must be <= %d", fn, aName, bName, a, bv, p, max)
	}
	return stOK
}

func (b *backend) checkPtr(fn, arg string, p uintptr) int32 {
	if p == 0 {
		return b.fail(stNull, "%s: %s is NULL", fn, arg)
	}
	return stOK
}

func (b *backend) checkPtrs(fn string, ptrs ...any) int32 {
	for i := 0; i < len(ptrs); i += 2 {
		if st := b.checkPtr(fn, ptrs[i].(string), ptrs[i+1].(uintptr)); st != stOK {
			return st
		}
	}
	return stOK
}

func (b *backend) checkHeads(fn string, nHeads, nKVHeads, headDim int32) int32 {
	if st := b.checkRange(fn, "n_heads", nHeads, maxDim); st != stOK {
		return st
	}
	if st := b.checkRange(fn, "n_kv_heads", nKVHeads, maxDim); st != stOK {
		return st
	}
	if st := b.checkRange(fn, "head_dim", headDim, maxHeadDim); st != stOK {
		return st
	}
	if headDim%8 != 0 {
		return b.fail(stInvalidArg, "%s: head_dim=%d must be a multiple of 8", fn, headDim)
	}
	if nHeads%nKVHeads != 0 {
		return b.fail(stInvalidArg, "%s: n_heads=%d must be a multiple of n_kv_heads=%d", fn, nHeads, nKVHeads)
	}
	return b.checkProduct(fn, "n_heads", nHeads, "head_dim", headDim, maxDim)
}

func finite32(f float32) bool { return !math.IsInf(float64(f), 0) && !math.IsNaN(float64(f)) }

// cg formats f as C's printf("%g", (double)f) does, so that messages
// match the C backends' ("inf", "-nan", "1e-05").
func cg(f float32) string {
	v := float64(f)
	sign := ""
	if math.Signbit(v) {
		sign = "-"
	}
	switch {
	case math.IsNaN(v):
		return sign + "nan"
	case math.IsInf(v, 0):
		return sign + "inf"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// all returns the first non-OK status of checks run in order.
func all(checks ...func() int32) int32 {
	for _, c := range checks {
		if st := c(); st != stOK {
			return st
		}
	}
	return stOK
}

func (b *backend) checkRMSNorm(dt int32, x, w, y uintptr, rows, dim int32, eps float32) int32 {
	const fn = "gp_rmsnorm"
	return all(
		func() int32 { return b.checkDtype(fn, dt) },
		func() int32 { return b.checkRange(fn, "rows", rows, maxSeq) },
		func() int32 { return b.checkRange(fn, "dim", dim, maxDim) },
		func() int32 {
			if !finite32(eps) || eps < 0 {
				return b.fail(stInvalidArg, "%s: eps=%s must be finite and >= 0", fn, cg(eps))
			}
			return stOK
		},
		func() int32 { return b.checkPtrs(fn, "x", x, "w", w, "y", y) },
	)
}

func (b *backend) checkLinear(dt, route int32, x, w, y uintptr, m, n, k int32) int32 {
	const fn = "gp_linear"
	return all(
		func() int32 { return b.checkDtype(fn, dt) },
		func() int32 {
			if route < 0 || route > 3 {
				return b.fail(stInvalidArg, "%s: route=%d is not a gp_route (0=auto, 1=mfma, 2=valu, 3=blas)", fn, route)
			}
			return stOK
		},
		func() int32 { return b.checkRange(fn, "M", m, maxSeq) },
		func() int32 { return b.checkRange(fn, "N", n, maxLinearN) },
		func() int32 { return b.checkRange(fn, "K", k, maxDim) },
		func() int32 { return b.checkPtrs(fn, "x", x, "w", w, "y", y) },
	)
}

func (b *backend) checkRope(dt, layout int32, x, y, pos uintptr, rows, nHeads, headDim int32, theta float32) int32 {
	const fn = "gp_rope"
	return all(
		func() int32 { return b.checkDtype(fn, dt) },
		func() int32 {
			if layout != 0 && layout != 1 {
				return b.fail(stInvalidArg, "%s: layout=%d is not a gp_rope_layout (0=neox, 1=interleaved)", fn, layout)
			}
			return stOK
		},
		func() int32 { return b.checkRange(fn, "rows", rows, maxSeq) },
		func() int32 { return b.checkRange(fn, "n_heads", nHeads, maxDim) },
		func() int32 { return b.checkRange(fn, "head_dim", headDim, maxHeadDim) },
		func() int32 {
			if headDim%2 != 0 {
				return b.fail(stInvalidArg, "%s: head_dim=%d must be even", fn, headDim)
			}
			return stOK
		},
		func() int32 { return b.checkProduct(fn, "n_heads", nHeads, "head_dim", headDim, maxDim) },
		func() int32 {
			if !finite32(theta) || !(theta > 0) {
				return b.fail(stInvalidArg, "%s: theta=%s must be finite and > 0", fn, cg(theta))
			}
			return stOK
		},
		func() int32 { return b.checkPtrs(fn, "x", x, "y", y, "pos", pos) },
	)
}

func (b *backend) checkKVAppend(dt int32, k, v, kCache, vCache uintptr, rows, kvWidth, slot, capacity int32) int32 {
	const fn = "gp_kv_append"
	return all(
		func() int32 { return b.checkDtype(fn, dt) },
		func() int32 { return b.checkRange(fn, "rows", rows, maxSeq) },
		func() int32 { return b.checkRange(fn, "kv_width", kvWidth, maxDim) },
		func() int32 { return b.checkRange(fn, "capacity", capacity, maxSeq) },
		func() int32 {
			if slot < 0 {
				return b.fail(stInvalidArg, "%s: slot=%d must be >= 0", fn, slot)
			}
			if s := int64(slot) + int64(rows); s > int64(capacity) {
				return b.fail(stInvalidArg, "%s: slot+rows=%d+%d=%d must be <= capacity=%d", fn, slot, rows, s, capacity)
			}
			return stOK
		},
		func() int32 { return b.checkPtrs(fn, "k", k, "v", v, "k_cache", kCache, "v_cache", vCache) },
	)
}

// checkQuery is the part of gp_attn_scores' and gp_attention's checks
// after the heads: q_pos0, the causal window and scale.
func (b *backend) checkQuery(fn string, nQ, nKV, qPos0 int32, scale float32) int32 {
	if qPos0 < 0 {
		return b.fail(stInvalidArg, "%s: q_pos0=%d must be >= 0", fn, qPos0)
	}
	if s := int64(qPos0) + int64(nQ); s > int64(nKV) {
		return b.fail(stInvalidArg, "%s: q_pos0+n_q=%d+%d=%d must be <= n_kv=%d", fn, qPos0, nQ, s, nKV)
	}
	if !finite32(scale) {
		return b.fail(stInvalidArg, "%s: scale=%s must be finite", fn, cg(scale))
	}
	return stOK
}

func (b *backend) checkAttnScores(dt int32, q, kCache, scores uintptr, nQ, nKV, nHeads, nKVHeads, headDim, qPos0 int32, scale float32) int32 {
	const fn = "gp_attn_scores"
	return all(
		func() int32 { return b.checkDtype(fn, dt) },
		func() int32 { return b.checkRange(fn, "n_q", nQ, maxSeq) },
		func() int32 { return b.checkRange(fn, "n_kv", nKV, maxSeq) },
		func() int32 { return b.checkHeads(fn, nHeads, nKVHeads, headDim) },
		func() int32 { return b.checkQuery(fn, nQ, nKV, qPos0, scale) },
		func() int32 { return b.checkPtrs(fn, "q", q, "k_cache", kCache, "scores", scores) },
	)
}

func (b *backend) checkSoftmax(scores, probs uintptr, nHeads, nQ, nKV int32) int32 {
	const fn = "gp_softmax"
	return all(
		func() int32 { return b.checkRange(fn, "n_heads", nHeads, maxDim) },
		func() int32 { return b.checkRange(fn, "n_q", nQ, maxSeq) },
		func() int32 { return b.checkRange(fn, "n_kv", nKV, maxSeq) },
		func() int32 { return b.checkPtrs(fn, "scores", scores, "probs", probs) },
	)
}

func (b *backend) checkAttnPV(dt int32, probs, vCache, out uintptr, nQ, nKV, nHeads, nKVHeads, headDim int32) int32 {
	const fn = "gp_attn_pv"
	return all(
		func() int32 { return b.checkDtype(fn, dt) },
		func() int32 { return b.checkRange(fn, "n_q", nQ, maxSeq) },
		func() int32 { return b.checkRange(fn, "n_kv", nKV, maxSeq) },
		func() int32 { return b.checkHeads(fn, nHeads, nKVHeads, headDim) },
		func() int32 { return b.checkPtrs(fn, "probs", probs, "v_cache", vCache, "out", out) },
	)
}

func (b *backend) checkAttention(dt int32, q, kCache, vCache, out uintptr, nQ, nKV, nHeads, nKVHeads, headDim, qPos0 int32, scale float32) int32 {
	const fn = "gp_attention"
	return all(
		func() int32 { return b.checkDtype(fn, dt) },
		func() int32 { return b.checkRange(fn, "n_q", nQ, maxSeq) },
		func() int32 { return b.checkRange(fn, "n_kv", nKV, maxSeq) },
		func() int32 { return b.checkHeads(fn, nHeads, nKVHeads, headDim) },
		func() int32 { return b.checkQuery(fn, nQ, nKV, qPos0, scale) },
		func() int32 { return b.checkPtrs(fn, "q", q, "k_cache", kCache, "v_cache", vCache, "out", out) },
	)
}
