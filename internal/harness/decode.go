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
// In isolated mode every stage first gets prefill's row of each stage it
// reads, and attention reads prefill's cache.
func runDecode(d *device, alloc func(string, dtype.Dtype, int) *tensor, c Case, dm dims, w *weightBufs, in *Inputs, pre *prefillState, mode Path, p *plan) ([]Row, error) {
	dt := c.Dtype
	name := func(s string) string { return fmt.Sprintf("decode %s %s", mode, s) }
	x := alloc(name("x"), dt, dm.h)
	kd := alloc(name("K cache"), dt, dm.C*dm.kvd)
	vd := alloc(name("V cache"), dt, dm.C*dm.kvd)
	var outs [stage.Count][]*tensor
	for _, def := range p.defs {
		if def.kind == outCache {
			outs[def.st] = []*tensor{kd, vd}
			continue
		}
		outs[def.st] = outTensors(def, alloc, name(def.st.String()), dt, dm, 1, dm.P)
	}
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
	a := c.args(dm, w, &outs, p)
	a.x, a.pos, a.kcWrite, a.vcWrite = x.buf.Ptr, posBuf.Ptr, kd.buf.Ptr, vd.buf.Ptr
	var decoded []Row
	for t := 0; t < c.Steps; t++ {
		r := c.S - 1 + t
		pp := pre.rows[t]
		row := Row{R: r, Pos: c.PosOffset + r}
		if err := posBuf.Write(int32Bytes(int32(c.PosOffset + r))); err != nil {
			return nil, err
		}
		xr := in.X[r*dm.h : (r+1)*dm.h]
		if !iso && in.DecodeX != nil {
			xr = in.DecodeX[t]
			row.X = xr
		}
		if err := x.upload(xr); err != nil {
			return nil, err
		}
		a.rows, a.nkv, a.qPos0, a.slot = 1, r+1, r, r
		a.kc, a.vc = kd.buf.Ptr, vd.buf.Ptr
		if iso {
			if err := initCache(r); err != nil {
				return nil, err
			}
			a.kc, a.vc = pre.kc.buf.Ptr, pre.vc.buf.Ptr
		}
		for _, def := range p.defs {
			if iso {
				for _, s := range p.readsOf(def) {
					v := pp.Out[s]
					if err := outs[s][0].upload(v[:primaryLen(defOf(s), dm, v)]); err != nil {
						return nil, err
					}
				}
			}
			o, extra, before, err := launchTargets(def, &outs)
			if err != nil {
				return nil, err
			}
			if err := d.armFor(def.st); err != nil {
				return nil, err
			}
			l, raw, err := d.launch(fmt.Sprintf("%s (decode %s, step %d)", def.st, mode, t), o, extra, func() (gpapi.Launch, error) { return def.launch(d.lib, a) })
			row.Launch[def.st] = l
			if err != nil {
				return nil, err
			}
			var un int
			row.Out[def.st], row.Bits[def.st], un = cutRow(def, dt, dm, raw, 1, r+1, 0, r)
			if def.kind == outCache {
				row.Issues = append(row.Issues, cacheIntegrity(dt, before, [2][]byte{raw[0], raw[1]}, r, dm.kvd, mode, t)...)
				if !iso {
					row.KRows, row.VRows = cacheRows(dt.Decode(raw[0]), dt.Decode(raw[1]), r+1, dm.kvd)
				} else {
					row.KRows, row.VRows = pp.KRows, pp.VRows
				}
			} else if un > 0 {
				row.Issues = append(row.Issues, Issue{def.st, mode, t, fmt.Sprintf("%d of %d output elements never written", un, len(row.Out[def.st]))})
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
	return cacheWrites(dt, before, after, []int{r}, kvd, mode, step)
}

// cacheWrites is cacheIntegrity for an append that owns the cache rows
// slots (a chunk's rows, a batch's one row per sequence): every other row
// must be unchanged, every slot row written.
func cacheWrites(dt dtype.Dtype, before, after [2][]byte, slots []int, kvd int, mode Path, step int) []Issue {
	var out []Issue
	rb := kvd * dt.Size()
	own := map[int]bool{}
	for _, s := range slots {
		own[s] = true
	}
	slotDesc := fmt.Sprintf("the step's slot is row %d", slots[0])
	if len(slots) > 1 {
		slotDesc = fmt.Sprintf("the call's slots are rows %v", slots)
	}
	for i, name := range []string{"K", "V"} {
		b, a := before[i], after[i]
		for row := 0; row*rb < len(a); row++ {
			seg := a[row*rb : (row+1)*rb]
			if own[row] {
				if _, _, un := rowsOf(dt, seg, 0, kvd); un > 0 {
					out = append(out, Issue{cacheStage, mode, step, fmt.Sprintf("%s cache row %d (a slot of the call): %d of %d elements never written", name, row, un, kvd)})
				}
				continue
			}
			if !bytes.Equal(seg, b[row*rb:(row+1)*rb]) {
				out = append(out, Issue{cacheStage, mode, step, fmt.Sprintf("%s cache row %d changed, but %s", name, row, slotDesc)})
			}
		}
	}
	return out
}
