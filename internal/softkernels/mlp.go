package softkernels

import (
	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/reference"
)

// The "mlp" capability: gp_residual_add, gp_rmsnorm_offset, gp_gated_act,
// in float64 rounded once per element, as every kernel of this backend.
// Faults (rows == 1): residual_twice, post_norm_no_offset, act_wrong_half.

// checkElementwise checks an elementwise "mlp" call: dtype, rows, its
// width argument and the pointers, in gp_common.c's order and words.
func (b *backend) checkElementwise(fn, widthName string, dt, rows, width int32, ptrs ...any) int32 {
	return all(
		func() int32 { return b.checkDtype(fn, dt) },
		func() int32 { return b.checkRange(fn, "rows", rows, maxSeq) },
		func() int32 { return b.checkRange(fn, widthName, width, maxDim) },
		func() int32 { return b.checkPtrs(fn, ptrs...) },
	)
}

// gp_residual_add: y = a + b.
func (b *backend) residualAdd(dt int32, a, bb, y uintptr, rows, width int32) int32 {
	const fn = "gp_residual_add"
	return b.entry(fn, func() int32 {
		if st := b.checkElementwise(fn, "width", dt, rows, width, "a", a, "b", bb, "y", y); st != stOK {
			return st
		}
		d, n := dtype.Dtype(dt), int64(rows)*int64(width)
		as, st := b.in(fn, "a", d, a, n)
		if st != stOK {
			return st
		}
		bs, st := b.in(fn, "b", d, bb, n)
		if st != stOK {
			return st
		}
		yr, st := b.out(fn, "y", d, y, n)
		if st != stOK {
			return st
		}
		if b.faultOn("residual_twice", rows) {
			as = reference.ResidualAdd(as, bs)
		}
		copy(yr, d.Encode(reference.ResidualAdd(as, bs)))
		return b.attest(0, 0, 0, 0, 1, "go_residual_add")
	})
}

// gp_rmsnorm_offset: y = x·r·(w_offset + w).
func (b *backend) rmsnormOffset(dt int32, x, w, y uintptr, rows, dim int32, eps, wOffset float32) int32 {
	const fn = "gp_rmsnorm_offset"
	return b.entry(fn, func() int32 {
		st := all(
			func() int32 { return b.checkDtype(fn, dt) },
			func() int32 { return b.checkRange(fn, "rows", rows, maxSeq) },
			func() int32 { return b.checkRange(fn, "dim", dim, maxDim) },
			func() int32 {
				if !finite32(eps) || eps < 0 {
					return b.fail(stInvalidArg, "%s: eps=%s must be finite and >= 0", fn, cg(eps))
				}
				return stOK
			},
			func() int32 {
				if !finite32(wOffset) {
					return b.fail(stInvalidArg, "%s: w_offset=%s must be finite", fn, cg(wOffset))
				}
				return stOK
			},
			func() int32 { return b.checkPtrs(fn, "x", x, "w", w, "y", y) },
		)
		if st != stOK {
			return st
		}
		d, n := dtype.Dtype(dt), int(dim)
		xs, st := b.in(fn, "x", d, x, int64(rows)*int64(dim))
		if st != stOK {
			return st
		}
		ws, st := b.in(fn, "w", d, w, int64(dim))
		if st != stOK {
			return st
		}
		yr, st := b.out(fn, "y", d, y, int64(rows)*int64(dim))
		if st != stOK {
			return st
		}
		off := float64(wOffset)
		if b.faultOn("post_norm_no_offset", rows) {
			off = 0
		}
		vals := make([]float64, 0, len(xs))
		for r := 0; r < int(rows); r++ {
			yv, _ := reference.RMSNormOffset(xs[r*n:(r+1)*n], ws, off, float64(eps))
			vals = append(vals, yv...)
		}
		copy(yr, d.Encode(vals))
		return b.attest(0, 0, 0, 0, 1, "go_rmsnorm_offset")
	})
}

// gp_gated_act: y = act(gate)·up.
func (b *backend) gatedAct(dt, kind int32, gate, up, y uintptr, rows, width int32) int32 {
	const fn = "gp_gated_act"
	return b.entry(fn, func() int32 {
		st := all(
			func() int32 { return b.checkDtype(fn, dt) },
			func() int32 {
				if kind != reference.ActSwiGLU && kind != reference.ActGeluTanh {
					return b.fail(stInvalidArg, "%s: kind=%d is not a gp_act (0=swiglu, 1=gelu_tanh)", fn, kind)
				}
				return stOK
			},
			func() int32 { return b.checkElementwise(fn, "width", dt, rows, width, "gate", gate, "up", up, "y", y) },
		)
		if st != stOK {
			return st
		}
		d, n := dtype.Dtype(dt), int64(rows)*int64(width)
		gs, st := b.in(fn, "gate", d, gate, n)
		if st != stOK {
			return st
		}
		us, st := b.in(fn, "up", d, up, n)
		if st != stOK {
			return st
		}
		yr, st := b.out(fn, "y", d, y, n)
		if st != stOK {
			return st
		}
		if b.faultOn("act_wrong_half", rows) {
			gs, us = us, gs
		}
		copy(yr, d.Encode(reference.GatedAct(int(kind), gs, us)))
		return b.attest(0, 0, 0, 0, 1, "go_gated_act")
	})
}
