package softkernels

import (
	"encoding/binary"
	"math"

	"github.com/gretacore/parity/internal/dtype"
)

// Every kernel validates its arguments (checks.go), then maps every device
// pointer to its region (all of them before anything is written, so a
// failing call writes nothing), computes in float64 on the decoded inputs
// and stores each output element rounded once (dtype.Encode: through f32,
// like a GPU store of an f32 value).

// in decodes n elements of dt at device pointer p.
func (b *backend) in(fn, arg string, dt dtype.Dtype, p uintptr, n int64) ([]float64, int32) {
	r, st := b.region(fn, arg, p, n*int64(dt.Size()))
	if st != stOK {
		return nil, st
	}
	return dt.Decode(r), stOK
}

// out returns the region of n elements of dt at device pointer p.
func (b *backend) out(fn, arg string, dt dtype.Dtype, p uintptr, n int64) ([]byte, int32) {
	return b.region(fn, arg, p, n*int64(dt.Size()))
}

// kvHead maps query head h to its KV head; with the gqa_modulo fault (at
// n_q == 1) it is h % n_kv_heads instead of h / group.
func (b *backend) kvHead(h, nHeads, nKVHeads int, nQ int32) int {
	if b.faultOn("gqa_modulo", nQ) {
		return h % nKVHeads
	}
	return h / (nHeads / nKVHeads)
}

func dot(a, c []float64) float64 {
	var s float64
	for i, v := range a {
		s += v * c[i]
	}
	return s
}

// gp_rmsnorm: y = x·r·w, r = 1/sqrt(mean(x²) + eps), per row.
func (b *backend) rmsnorm(dt int32, x, w, y uintptr, rows, dim int32, eps float32) int32 {
	const fn = "gp_rmsnorm"
	return b.entry(fn, func() int32 {
		if st := b.checkRMSNorm(dt, x, w, y, rows, dim, eps); st != stOK {
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
		vals := make([]float64, len(xs))
		for r := 0; r < int(rows); r++ {
			xr := xs[r*n : (r+1)*n]
			inv := 1 / math.Sqrt(dot(xr, xr)/float64(n)+float64(eps))
			for i, v := range xr {
				vals[r*n+i] = v * inv * ws[i]
			}
		}
		copy(yr, d.Encode(vals))
		return b.attest(0, 0, 0, 0, 1, "go_rmsnorm")
	})
}

// gp_linear: y[M,N] = x[M,K]·W[N,K]ᵀ (+ bias). Every route runs the same
// math; the attestation says which route ran (AUTO: MFMA for M > 1, VALU
// for M == 1). Fault bias_skipped (M == 1): the bias is ignored.
func (b *backend) linear(dt, route int32, x, w, bias, y uintptr, m, n, k int32) int32 {
	const fn = "gp_linear"
	return b.entry(fn, func() int32 {
		if st := b.checkLinear(dt, route, x, w, y, m, n, k); st != stOK {
			return st
		}
		ran := route
		if ran == 0 {
			ran = 2
			if m > 1 {
				ran = 1
			}
		}
		if ran == 3 {
			return b.fail(stUnsupported, "gp_linear: route=3 (blas): the %s backend has no vendor BLAS library; use route 1 (mfma) or 2 (valu)", Name)
		}
		d, M, N, K := dtype.Dtype(dt), int(m), int(n), int(k)
		xs, st := b.in(fn, "x", d, x, int64(m)*int64(k))
		if st != stOK {
			return st
		}
		ws, st := b.in(fn, "w", d, w, int64(n)*int64(k))
		if st != stOK {
			return st
		}
		var bs []float64
		if bias != 0 && !b.faultOn("bias_skipped", m) {
			if bs, st = b.in(fn, "bias", d, bias, int64(n)); st != stOK {
				return st
			}
		}
		yr, st := b.out(fn, "y", d, y, int64(m)*int64(n))
		if st != stOK {
			return st
		}
		vals := make([]float64, M*N)
		for r := 0; r < M; r++ {
			xr := xs[r*K : (r+1)*K]
			for j := 0; j < N; j++ {
				s := dot(xr, ws[j*K:(j+1)*K])
				if bs != nil {
					s += bs[j]
				}
				vals[r*N+j] = s
			}
		}
		copy(yr, d.Encode(vals))
		if ran == 1 {
			return b.attest(1, 0, 0, 0, 1, "go_linear_mfma")
		}
		return b.attest(2, 0, 0, 0, 1, "go_linear_valu")
	})
}

// gp_rope: pair i of each head rotates by pos·theta^(-2i/head_dim) (in
// float64). Fault rope_pos_prev (rows == 1): position pos-1, floored at 0.
func (b *backend) rope(dt, layout int32, x, y, pos uintptr, rows, nHeads, headDim int32, theta float32) int32 {
	const fn = "gp_rope"
	return b.entry(fn, func() int32 {
		if st := b.checkRope(dt, layout, x, y, pos, rows, nHeads, headDim, theta); st != stOK {
			return st
		}
		d, hd := dtype.Dtype(dt), int(headDim)
		width := int(nHeads) * hd
		pr, st := b.region(fn, "pos", pos, 4*int64(rows))
		if st != stOK {
			return st
		}
		ps := make([]int, rows)
		for r := range ps {
			p := int32(binary.LittleEndian.Uint32(pr[4*r:]))
			if p < 0 || p >= maxSeq {
				return b.fail(stInvalidArg, "gp_rope: pos[%d]=%d must be in [0, %d)", r, p, maxSeq)
			}
			if b.faultOn("rope_pos_prev", rows) && p > 0 {
				p--
			}
			ps[r] = int(p)
		}
		xs, st := b.in(fn, "x", d, x, int64(rows)*int64(width))
		if st != stOK {
			return st
		}
		yr, st := b.out(fn, "y", d, y, int64(rows)*int64(width))
		if st != stOK {
			return st
		}
		vals := make([]float64, len(xs))
		for r, p := range ps {
			for i := 0; i < hd/2; i++ {
				a, c := i, i+hd/2
				if layout == 1 {
					a, c = 2*i, 2*i+1
				}
				angle := float64(p) * math.Pow(float64(theta), -2*float64(i)/float64(hd))
				sn, cs := math.Sincos(angle)
				for h := 0; h < int(nHeads); h++ {
					base := r*width + h*hd
					x0, x1 := xs[base+a], xs[base+c]
					vals[base+a] = x0*cs - x1*sn
					vals[base+c] = x0*sn + x1*cs
				}
			}
		}
		copy(yr, d.Encode(vals))
		return b.attest(0, 0, 0, 0, 1, "go_rope")
	})
}

// gp_kv_append: exact copies into rows slot..slot+rows-1 of the caches.
// Fault kv_slot_off (rows == 1): to slot+1 if it fits, else nowhere.
func (b *backend) kvAppend(dt int32, k, v, kCache, vCache uintptr, rows, kvWidth, slot, capacity int32) int32 {
	const fn = "gp_kv_append"
	return b.entry(fn, func() int32 {
		if st := b.checkKVAppend(dt, k, v, kCache, vCache, rows, kvWidth, slot, capacity); st != stOK {
			return st
		}
		d := dtype.Dtype(dt)
		rowBytes := int64(kvWidth) * int64(d.Size())
		n := int64(rows) * rowBytes
		ks, st := b.region(fn, "k", k, n)
		if st != stOK {
			return st
		}
		vs, st := b.region(fn, "v", v, n)
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
		if b.faultOn("kv_slot_off", rows) {
			slot++
			if int64(slot)+int64(rows) > int64(capacity) {
				return b.attest(0, 0, 0, 0, 1, "go_kv_append")
			}
		}
		off := int64(slot) * rowBytes
		copy(kc[off:off+n], ks)
		copy(vc[off:off+n], vs)
		return b.attest(0, 0, 0, 0, 1, "go_kv_append")
	})
}

// gp_attn_scores: scores[h, i, j] = scale·q[i, h]·k[j, g], -Inf for keys
// after the query when causal. Faults (n_q == 1): scale_missing (no
// scale), gqa_modulo (g = h % n_kv_heads).
func (b *backend) attnScores(dt int32, q, kCache, scores uintptr, nQ, nKV, nHeads, nKVHeads, headDim, qPos0 int32, scale float32, causal int32) int32 {
	const fn = "gp_attn_scores"
	return b.entry(fn, func() int32 {
		if st := b.checkAttnScores(dt, q, kCache, scores, nQ, nKV, nHeads, nKVHeads, headDim, qPos0, scale); st != stOK {
			return st
		}
		d, nq, nkv, nh, hd := dtype.Dtype(dt), int(nQ), int(nKV), int(nHeads), int(headDim)
		qw, kw := nh*hd, int(nKVHeads)*hd
		qs, st := b.in(fn, "q", d, q, int64(nq)*int64(qw))
		if st != stOK {
			return st
		}
		ks, st := b.in(fn, "k_cache", d, kCache, int64(nkv)*int64(kw))
		if st != stOK {
			return st
		}
		sr, st := b.out(fn, "scores", dtype.F32, scores, int64(nh)*int64(nq)*int64(nkv))
		if st != stOK {
			return st
		}
		sc := float64(scale)
		if b.faultOn("scale_missing", nQ) {
			sc = 1
		}
		vals := make([]float64, nh*nq*nkv)
		for h := 0; h < nh; h++ {
			g := b.kvHead(h, nh, int(nKVHeads), nQ)
			for i := 0; i < nq; i++ {
				qh := qs[i*qw+h*hd : i*qw+(h+1)*hd]
				o := vals[(h*nq+i)*nkv : (h*nq+i+1)*nkv]
				last := int(qPos0) + i
				if b.chunkFaultOn(qPos0, nQ) {
					last--
				}
				for j := range o {
					if causal != 0 && j > last {
						o[j] = math.Inf(-1)
						continue
					}
					o[j] = sc * dot(qh, ks[j*kw+g*hd:j*kw+(g+1)*hd])
				}
			}
		}
		copy(sr, dtype.F32.Encode(vals))
		return b.attest(0, 0, 0, 0, 1, "go_attn_scores")
	})
}

// gp_softmax: max-subtracted softmax of each f32 row; -Inf maps to 0 (a
// row of only -Inf gives 0/0 = NaN, as the header says).
func (b *backend) softmax(scores, probs uintptr, nHeads, nQ, nKV int32) int32 {
	const fn = "gp_softmax"
	return b.entry(fn, func() int32 {
		if st := b.checkSoftmax(scores, probs, nHeads, nQ, nKV); st != stOK {
			return st
		}
		n := int64(nHeads) * int64(nQ) * int64(nKV)
		ss, st := b.in(fn, "scores", dtype.F32, scores, n)
		if st != stOK {
			return st
		}
		pr, st := b.out(fn, "probs", dtype.F32, probs, n)
		if st != stOK {
			return st
		}
		nkv := int(nKV)
		vals := make([]float64, len(ss))
		for r := 0; r < len(ss)/nkv; r++ {
			row, p := ss[r*nkv:(r+1)*nkv], vals[r*nkv:(r+1)*nkv]
			m := math.Inf(-1)
			for _, v := range row {
				m = math.Max(m, v)
			}
			var sum float64
			for j, v := range row {
				if math.IsInf(v, -1) {
					continue
				}
				p[j] = math.Exp(v - m)
				sum += p[j]
			}
			for j := range p {
				p[j] /= sum
			}
		}
		copy(pr, dtype.F32.Encode(vals))
		return b.attest(0, 0, 0, 0, 1, "go_softmax")
	})
}

// gp_attn_pv: out[i, h·hd + c] = Σ_j probs[h, i, j]·v[j, g·hd + c]. Fault
// gqa_modulo (n_q == 1): g = h % n_kv_heads.
func (b *backend) attnPV(dt int32, probs, vCache, out uintptr, nQ, nKV, nHeads, nKVHeads, headDim int32) int32 {
	const fn = "gp_attn_pv"
	return b.entry(fn, func() int32 {
		if st := b.checkAttnPV(dt, probs, vCache, out, nQ, nKV, nHeads, nKVHeads, headDim); st != stOK {
			return st
		}
		d, nq, nkv, nh, hd := dtype.Dtype(dt), int(nQ), int(nKV), int(nHeads), int(headDim)
		qw, kw := nh*hd, int(nKVHeads)*hd
		ps, st := b.in(fn, "probs", dtype.F32, probs, int64(nh)*int64(nq)*int64(nkv))
		if st != stOK {
			return st
		}
		vs, st := b.in(fn, "v_cache", d, vCache, int64(nkv)*int64(kw))
		if st != stOK {
			return st
		}
		or, st := b.out(fn, "out", d, out, int64(nq)*int64(qw))
		if st != stOK {
			return st
		}
		vals := make([]float64, nq*qw)
		for h := 0; h < nh; h++ {
			g := b.kvHead(h, nh, int(nKVHeads), nQ)
			for i := 0; i < nq; i++ {
				p := ps[(h*nq+i)*nkv : (h*nq+i+1)*nkv]
				o := vals[i*qw+h*hd : i*qw+(h+1)*hd]
				for j, pj := range p {
					if pj == 0 {
						continue // as the reference: masked keys add nothing
					}
					vh := vs[j*kw+g*hd : j*kw+(g+1)*hd]
					for c, v := range vh {
						o[c] += pj * v
					}
				}
			}
		}
		copy(or, d.Encode(vals))
		return b.attest(0, 0, 0, 0, 1, "go_attn_pv")
	})
}

// attend is gp_attention's math on decoded inputs: out [nq, nh·hd] and
// lse [nh, nq] of query i at position qPos0 + i over the visible keys
// (causal: qPos0 + i + 1 of them, one fewer with prev; else all nkv).
func attend(qs, ks, vs []float64, nq, nkv, nh, nkvh, hd, qPos0 int, scale float64, causal, prev bool) (vals, lses []float64) {
	qw, kw := nh*hd, nkvh*hd
	vals = make([]float64, nq*qw)
	lses = make([]float64, nh*nq)
	s := make([]float64, nkv)
	for i := 0; i < nq; i++ {
		n := nkv
		if causal {
			n = qPos0 + i + 1
			if prev {
				n--
			}
		}
		for h := 0; h < nh; h++ {
			g := h / (nh / nkvh)
			qh := qs[i*qw+h*hd : i*qw+(h+1)*hd]
			if n <= 0 {
				lses[h*nq+i] = math.Inf(-1)
				continue
			}
			m := math.Inf(-1)
			for j := 0; j < n; j++ {
				s[j] = scale * dot(qh, ks[j*kw+g*hd:j*kw+(g+1)*hd])
				m = math.Max(m, s[j])
			}
			var l float64
			o := vals[i*qw+h*hd : i*qw+(h+1)*hd]
			for j := 0; j < n; j++ {
				e := math.Exp(s[j] - m)
				l += e
				for c, v := range vs[j*kw+g*hd : j*kw+(g+1)*hd] {
					o[c] += e * v
				}
			}
			for c := range o {
				o[c] /= l
			}
			lses[h*nq+i] = m + math.Log(l)
		}
	}
	return vals, lses
}

// gp_attention: fused causal attention in one pass over the visible keys
// (no key splits): s_j = scale·q·k_j, m = max s_j, l = Σ exp(s_j − m),
// out = Σ exp(s_j − m)·v_j / l, lse = m + ln l. It attests route 0, no
// tiles, one split. Fault attn_causal_prev (n_q == 1): the causal limit is
// q_pos0 + i - 1; a row left with no visible key gives out 0, lse -Inf.
// attnBufs resolves the buffers of a fused attention call (gp_attention,
// gp_attention_batched): q and out of rows query rows of width qw, the
// caches of kvRows rows of width kw, and lse (0: none) of nh·rows f32.
func (b *backend) attnBufs(fn string, d dtype.Dtype, q, kCache, vCache, out, lse uintptr, rows, kvRows, qw, kw, nh int) (qs, ks, vs []float64, or, lr []byte, st int32) {
	if qs, st = b.in(fn, "q", d, q, int64(rows)*int64(qw)); st != stOK {
		return
	}
	if ks, st = b.in(fn, "k_cache", d, kCache, int64(kvRows)*int64(kw)); st != stOK {
		return
	}
	if vs, st = b.in(fn, "v_cache", d, vCache, int64(kvRows)*int64(kw)); st != stOK {
		return
	}
	if or, st = b.out(fn, "out", d, out, int64(rows)*int64(qw)); st != stOK {
		return
	}
	if lse != 0 {
		lr, st = b.out(fn, "lse", dtype.F32, lse, int64(nh)*int64(rows))
	}
	return
}

func (b *backend) attention(dt int32, q, kCache, vCache, out, lse uintptr, nQ, nKV, nHeads, nKVHeads, headDim, qPos0 int32, scale float32, causal int32) int32 {
	const fn = "gp_attention"
	return b.entry(fn, func() int32 {
		if st := b.checkAttention(dt, q, kCache, vCache, out, nQ, nKV, nHeads, nKVHeads, headDim, qPos0, scale); st != stOK {
			return st
		}
		d, nq, nkv, nh, nkvh, hd := dtype.Dtype(dt), int(nQ), int(nKV), int(nHeads), int(nKVHeads), int(headDim)
		qw, kw := nh*hd, nkvh*hd
		qs, ks, vs, or, lr, st := b.attnBufs(fn, d, q, kCache, vCache, out, lse, nq, nkv, qw, kw, nh)
		if st != stOK {
			return st
		}
		prev := b.faultOn("attn_causal_prev", nQ) || b.chunkFaultOn(qPos0, nQ)
		vals, lses := attend(qs, ks, vs, nq, nkv, nh, nkvh, hd, int(qPos0), float64(scale), causal != 0, prev)
		copy(or, d.Encode(vals))
		if lr != nil {
			copy(lr, dtype.F32.Encode(lses))
		}
		return b.attest(0, 0, 0, 0, 1, "go_attention")
	})
}
