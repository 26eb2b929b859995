package softkernels

import (
	"encoding/binary"

	"github.com/gretacore/parity/internal/dtype"
)

// int32s reads n int32 of a device buffer (the batched calls' per-sequence
// arrays).
func (b *backend) int32s(fn, arg string, p uintptr, n int32) ([]int32, int32) {
	r, st := b.region(fn, arg, p, 4*int64(n))
	if st != stOK {
		return nil, st
	}
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(r[4*i:]))
	}
	return out, stOK
}

// gp_kv_append_batched: row i of k and v copied to cache row slot[i].
// Fault kv_slot_off (B == 1): to slot+1 if it fits, else nowhere.
func (b *backend) kvAppendBatched(dt int32, k, v, kCache, vCache uintptr, nb, kvWidth int32, slot uintptr, capacity int32) int32 {
	const fn = "gp_kv_append_batched"
	return b.entry(fn, func() int32 {
		if st := b.checkKVAppendBatched(dt, k, v, kCache, vCache, nb, kvWidth, slot, capacity); st != stOK {
			return st
		}
		slots, st := b.int32s(fn, "slot", slot, nb)
		if st != stOK {
			return st
		}
		for i, s := range slots {
			if s < 0 || s >= capacity {
				return b.fail(stInvalidArg, "%s: slot[%d]=%d must be in [0, capacity=%d)", fn, i, s, capacity)
			}
		}
		rowBytes := int64(kvWidth) * int64(dtype.Dtype(dt).Size())
		ks, st := b.region(fn, "k", k, int64(nb)*rowBytes)
		if st != stOK {
			return st
		}
		vs, st := b.region(fn, "v", v, int64(nb)*rowBytes)
		if st != stOK {
			return st
		}
		kc, st := b.region(fn, "k_cache", kCache, int64(capacity)*rowBytes)
		if st != stOK {
			return st
		}
		vc, st := b.region(fn, "v_cache", vCache, int64(capacity)*rowBytes)
		if st != stOK {
			return st
		}
		for i, s := range slots {
			if b.faultOn("kv_slot_off", nb) {
				if s+1 >= capacity {
					continue
				}
				s++
			}
			src, dst := int64(i)*rowBytes, int64(s)*rowBytes
			copy(kc[dst:dst+rowBytes], ks[src:src+rowBytes])
			copy(vc[dst:dst+rowBytes], vs[src:src+rowBytes])
		}
		return b.attest(0, 0, 0, 0, 1, "go_kv_append_batched")
	})
}

// gp_attention_batched: row i attends to cache rows kv_start[i] ..
// kv_start[i]+kv_len[i]-1 with gp_attention's math (attend), one query at
// position kv_len[i]-1. Faults: attn_causal_prev (B == 1);
// batch_kv_start_off (B > 1) reads from kv_start[i]+1 when that fits.
func (b *backend) attentionBatched(dt int32, q, kCache, vCache, out, lse uintptr, nb int32, kvStart, kvLen uintptr, capacity, nHeads, nKVHeads, headDim int32, scale float32) int32 {
	const fn = "gp_attention_batched"
	return b.entry(fn, func() int32 {
		if st := b.checkAttentionBatched(dt, q, kCache, vCache, out, nb, kvStart, kvLen, capacity, nHeads, nKVHeads, headDim, scale); st != stOK {
			return st
		}
		starts, st := b.int32s(fn, "kv_start", kvStart, nb)
		if st != stOK {
			return st
		}
		lens, st := b.int32s(fn, "kv_len", kvLen, nb)
		if st != stOK {
			return st
		}
		for i := range starts {
			switch {
			case lens[i] < 1:
				return b.fail(stInvalidArg, "%s: kv_len[%d]=%d must be >= 1", fn, i, lens[i])
			case starts[i] < 0:
				return b.fail(stInvalidArg, "%s: kv_start[%d]=%d must be >= 0", fn, i, starts[i])
			case int64(starts[i])+int64(lens[i]) > int64(capacity):
				return b.fail(stInvalidArg, "%s: kv_start[%d]+kv_len[%d]=%d+%d must be <= capacity=%d", fn, i, i, starts[i], lens[i], capacity)
			}
		}
		d, n, nh, nkvh, hd := dtype.Dtype(dt), int(nb), int(nHeads), int(nKVHeads), int(headDim)
		qw, kw := nh*hd, nkvh*hd
		qs, ks, vs, or, lr, st := b.attnBufs(fn, d, q, kCache, vCache, out, lse, n, int(capacity), qw, kw, nh)
		if st != stOK {
			return st
		}
		prev := b.faultOn("attn_causal_prev", nb)
		off := nb > 1 && b.fault == "batch_kv_start_off"
		vals := make([]float64, n*qw)
		lses := make([]float64, nh*n)
		for i := 0; i < n; i++ {
			first, L := int(starts[i]), int(lens[i])
			if off && first+1+L <= int(capacity) {
				first++
			}
			o, l := attend(qs[i*qw:(i+1)*qw], ks[first*kw:(first+L)*kw], vs[first*kw:(first+L)*kw], 1, L, nh, nkvh, hd, L-1, float64(scale), true, prev)
			copy(vals[i*qw:], o)
			for h := 0; h < nh; h++ {
				lses[h*n+i] = l[h]
			}
		}
		copy(or, d.Encode(vals))
		if lr != nil {
			copy(lr, dtype.F32.Encode(lses))
		}
		return b.attest(0, 0, 0, 0, 1, "go_attention_batched")
	})
}

func (b *backend) checkKVAppendBatched(dt int32, k, v, kCache, vCache uintptr, nb, kvWidth int32, slot uintptr, capacity int32) int32 {
	const fn = "gp_kv_append_batched"
	return all(
		func() int32 { return b.checkDtype(fn, dt) },
		func() int32 { return b.checkRange(fn, "B", nb, maxSeq) },
		func() int32 { return b.checkRange(fn, "kv_width", kvWidth, maxDim) },
		func() int32 { return b.checkRange(fn, "capacity", capacity, maxSeq) },
		func() int32 {
			return b.checkPtrs(fn, "k", k, "v", v, "k_cache", kCache, "v_cache", vCache, "slot", slot)
		},
	)
}

func (b *backend) checkAttentionBatched(dt int32, q, kCache, vCache, out uintptr, nb int32, kvStart, kvLen uintptr, capacity, nHeads, nKVHeads, headDim int32, scale float32) int32 {
	const fn = "gp_attention_batched"
	return all(
		func() int32 { return b.checkDtype(fn, dt) },
		func() int32 { return b.checkRange(fn, "B", nb, maxSeq) },
		func() int32 { return b.checkRange(fn, "capacity", capacity, maxSeq) },
		func() int32 { return b.checkHeads(fn, nHeads, nKVHeads, headDim) },
		func() int32 {
			if !finite32(scale) {
				return b.fail(stInvalidArg, "%s: scale=%s must be finite", fn, cg(scale))
			}
			return stOK
		},
		func() int32 {
			return b.checkPtrs(fn, "q", q, "k_cache", kCache, "v_cache", vCache, "out", out, "kv_start", kvStart, "kv_len", kvLen)
		},
	)
}
