package harness

import (
	"bytes"
	"fmt"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/stage"
)

// runDecode runs every decode step in one mode (Chained or Isolated). Each
// step is one token: M = rows = n_q = 1, the shape the engine's decode runs.
func runDecode(d *device, alloc func(string, dtype.Dtype, int) *tensor, c Case, dm dims, w *weightBufs, in *Inputs, pre *prefillState, mode Path) ([]Row, error) {
	dt, dti, lib := c.Dtype, int32(c.Dtype), d.lib
	name := func(s string) string { return fmt.Sprintf("decode %s %s", mode, s) }
	x := alloc(name("x"), dt, dm.h)
	xn := alloc(name("x_norm"), dt, dm.h)
	q := alloc(name("q_proj"), dt, dm.qd)
	k := alloc(name("k_proj"), dt, dm.kvd)
	v := alloc(name("v_proj"), dt, dm.kvd)
	qr := alloc(name("q_rope"), dt, dm.qd)
	kr := alloc(name("k_rope"), dt, dm.kvd)
	kd := alloc(name("K cache"), dt, dm.C*dm.kvd)
	vd := alloc(name("V cache"), dt, dm.C*dm.kvd)
	sc := alloc(name("qk"), dtype.F32, dm.nh*dm.P)
	pr := alloc(name("softmax"), dtype.F32, dm.nh*dm.P)
	pv := alloc(name("pv"), dt, dm.qd)
	out := alloc(name("attn_out"), dt, dm.h)
	posBuf, err := d.allocPos(name("position"), []int32{0})
	if err != nil {
		return nil, err
	}
	iso := mode == Isolated
	// The decode cache starts as prefill's rows 0..S-2, the rest poison.
	initCache := func(rowsKept int) error {
		for _, p := range []struct {
			t   *tensor
			raw []byte
		}{{kd, pre.kcRaw}, {vd, pre.vcRaw}} {
			b := dt.PoisonBytes(dm.C * dm.kvd)
			copy(b, p.raw[:rowsKept*dm.kvd*dt.Size()])
			if err := p.t.buf.Write(b); err != nil {
				return err
			}
		}
		return nil
	}
	if !iso {
		if err := initCache(c.S - 1); err != nil {
			return nil, err
		}
	}
	var decoded []Row
	for t := 0; t < c.Steps; t++ {
		r := c.S - 1 + t
		pp := pre.rows[t]
		row := Row{R: r, Pos: c.PosOffset + r}
		if err := posBuf.Write(int32Bytes(int32(c.PosOffset + r))); err != nil {
			return nil, err
		}
		if err := x.upload(in.X[r*dm.h : (r+1)*dm.h]); err != nil {
			return nil, err
		}
		if iso {
			if err := initCache(r); err != nil {
				return nil, err
			}
		}
		// feed uploads prefill's row of a stage into a decode input buffer
		// (isolated mode only).
		feed := func(t *tensor, vals []float64) error {
			if !iso {
				return nil
			}
			return t.upload(vals)
		}
		run := func(st stage.Stage, outs, extra []*tensor, f func() (gpapi.Launch, error)) error {
			l, err := d.launch(fmt.Sprintf("%s (decode %s, step %d)", st, mode, t), outs, extra, f)
			row.Launch[st] = l
			return err
		}
		read := func(st stage.Stage, buf *tensor, n int) error {
			raw, err := buf.download()
			if err != nil {
				return err
			}
			var un int
			row.Out[st], row.Bits[st], un = rows(buf.dt, raw, 0, n)
			if un > 0 {
				row.Issues = append(row.Issues, Issue{st, mode, t, fmt.Sprintf("%d of %d output elements never written", un, n)})
			}
			return nil
		}
		nkv := r + 1
		kcPtr, vcPtr := kd.buf.Ptr, vd.buf.Ptr
		if iso {
			kcPtr, vcPtr = pre.kc.buf.Ptr, pre.vc.buf.Ptr
		}
		var before [2][]byte
		ops := []func() error{
			func() error {
				if err := run(stage.XNorm, []*tensor{xn}, nil, func() (gpapi.Launch, error) {
					return lib.RMSNorm(dti, x.buf.Ptr, w.norm.buf.Ptr, xn.buf.Ptr, 1, dm.h, dm.eps)
				}); err != nil {
					return err
				}
				return read(stage.XNorm, xn, dm.h)
			},
			func() error {
				if err := feed(xn, pp.Out[stage.XNorm]); err != nil {
					return err
				}
				for _, p := range []struct {
					st   stage.Stage
					o    *tensor
					w, b *tensor
					n    int
				}{{stage.QProj, q, w.wq, w.bq, dm.qd}, {stage.KProj, k, w.wk, w.bk, dm.kvd}, {stage.VProj, v, w.wv, w.bv, dm.kvd}} {
					if err := run(p.st, []*tensor{p.o}, nil, func() (gpapi.Launch, error) {
						return lib.Linear(dti, c.Route, xn.buf.Ptr, p.w.buf.Ptr, w.bias(p.b), p.o.buf.Ptr, 1, p.n, dm.h)
					}); err != nil {
						return err
					}
					if err := read(p.st, p.o, p.n); err != nil {
						return err
					}
				}
				return nil
			},
			func() error {
				if err := feed(q, pp.Out[stage.QProj]); err != nil {
					return err
				}
				if err := run(stage.QRope, []*tensor{qr}, nil, func() (gpapi.Launch, error) {
					return lib.Rope(dti, c.Model.Layout(), q.buf.Ptr, qr.buf.Ptr, posBuf.Ptr, 1, dm.nh, dm.hd, dm.theta)
				}); err != nil {
					return err
				}
				if err := read(stage.QRope, qr, dm.qd); err != nil {
					return err
				}
				if err := feed(k, pp.Out[stage.KProj]); err != nil {
					return err
				}
				if err := run(stage.KRope, []*tensor{kr}, nil, func() (gpapi.Launch, error) {
					return lib.Rope(dti, c.Model.Layout(), k.buf.Ptr, kr.buf.Ptr, posBuf.Ptr, 1, dm.nkv, dm.hd, dm.theta)
				}); err != nil {
					return err
				}
				return read(stage.KRope, kr, dm.kvd)
			},
			func() error {
				if err := feed(kr, pp.Out[stage.KRope]); err != nil {
					return err
				}
				if err := feed(v, pp.Out[stage.VProj]); err != nil {
					return err
				}
				var err error
				if before[0], err = kd.download(); err != nil {
					return err
				}
				if before[1], err = vd.download(); err != nil {
					return err
				}
				if err := run(stage.KVCache, nil, []*tensor{kd, vd}, func() (gpapi.Launch, error) {
					return lib.KVAppend(dti, kr.buf.Ptr, v.buf.Ptr, kd.buf.Ptr, vd.buf.Ptr, 1, dm.kvd, r, dm.C)
				}); err != nil {
					return err
				}
				kRaw, err := kd.download()
				if err != nil {
					return err
				}
				vRaw, err := vd.download()
				if err != nil {
					return err
				}
				row.Out[stage.KVCache], row.Bits[stage.KVCache] = cacheRow(dt, kRaw, vRaw, r, dm.kvd)
				row.Issues = append(row.Issues, cacheIntegrity(dt, before, [2][]byte{kRaw, vRaw}, r, dm.kvd, mode, t)...)
				if !iso {
					row.KRows, row.VRows = cacheRows(dt.Decode(kRaw), dt.Decode(vRaw), nkv, dm.kvd)
				} else {
					row.KRows, row.VRows = pp.KRows, pp.VRows
				}
				return nil
			},
			func() error {
				if err := feed(qr, pp.Out[stage.QRope]); err != nil {
					return err
				}
				if err := run(stage.QK, []*tensor{sc}, nil, func() (gpapi.Launch, error) {
					return lib.AttnScores(dti, qr.buf.Ptr, kcPtr, sc.buf.Ptr, 1, nkv, dm.nh, dm.nkv, dm.hd, r, dm.scale, true)
				}); err != nil {
					return err
				}
				return read(stage.QK, sc, dm.nh*nkv)
			},
			func() error {
				if err := feed(sc, pp.Out[stage.QK]); err != nil {
					return err
				}
				if err := run(stage.Softmax, []*tensor{pr}, nil, func() (gpapi.Launch, error) {
					return lib.Softmax(sc.buf.Ptr, pr.buf.Ptr, dm.nh, 1, nkv)
				}); err != nil {
					return err
				}
				return read(stage.Softmax, pr, dm.nh*nkv)
			},
			func() error {
				if err := feed(pr, pp.Out[stage.Softmax]); err != nil {
					return err
				}
				if err := run(stage.PV, []*tensor{pv}, nil, func() (gpapi.Launch, error) {
					return lib.AttnPV(dti, pr.buf.Ptr, vcPtr, pv.buf.Ptr, 1, nkv, dm.nh, dm.nkv, dm.hd)
				}); err != nil {
					return err
				}
				return read(stage.PV, pv, dm.qd)
			},
			func() error {
				if err := feed(pv, pp.Out[stage.PV]); err != nil {
					return err
				}
				if err := run(stage.AttnOut, []*tensor{out}, nil, func() (gpapi.Launch, error) {
					return lib.Linear(dti, c.Route, pv.buf.Ptr, w.wo.buf.Ptr, 0, out.buf.Ptr, 1, dm.h, dm.qd)
				}); err != nil {
					return err
				}
				return read(stage.AttnOut, out, dm.h)
			},
		}
		for _, op := range ops {
			if err := op(); err != nil {
				return nil, err
			}
		}
		decoded = append(decoded, row)
	}
	return decoded, nil
}

func int32Bytes(v int32) []byte {
	return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// cacheIntegrity reports cache rows other than r that the append changed,
// and row r if it still holds poison (never written).
func cacheIntegrity(dt dtype.Dtype, before, after [2][]byte, r, kvd int, mode Path, step int) []Issue {
	var out []Issue
	rb := kvd * dt.Size()
	for i, name := range []string{"K", "V"} {
		b, a := before[i], after[i]
		for row := 0; row*rb < len(a); row++ {
			seg := a[row*rb : (row+1)*rb]
			if row == r {
				if _, _, un := rows(dt, seg, 0, kvd); un > 0 {
					out = append(out, Issue{stage.KVCache, mode, step, fmt.Sprintf("%s cache row %d (the step's slot): %d of %d elements never written", name, r, un, kvd)})
				}
				continue
			}
			if !bytes.Equal(seg, b[row*rb:(row+1)*rb]) {
				out = append(out, Issue{stage.KVCache, mode, step, fmt.Sprintf("%s cache row %d changed, but the step's slot is row %d", name, row, r)})
			}
		}
	}
	return out
}
