package harness

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/stage"
)

// Batched decode: B sequences of different lengths S_b, each decoding its
// token S_b-1, in one call per stage (M = rows = B; row b is sequence b),
// as a serving engine batches its running requests. Row b of every stage
// must equal sequence b decoded alone (the chained decode of the case with
// S = S_b, Steps = 1): bit for bit where the library declares the stage
// batch invariant and the route is forced, within the tolerance model on
// AUTO (which picks another kernel for M = B than for M = 1).
//
// Row-wise stages (every outRows stage that reads no cache) run through
// their table launch with rows = B and per-row positions. The KV append
// and fused attention run through the "batched" capability over one shared
// cache: sequence b owns rows [kv_start[b], kv_start[b] + S_b] (its S_b
// keys and one spare row, so an append or a read one row off stays inside
// the guarded buffer and lands on poison). Stages with no batched form (the
// unfused attention stages; the cache and attention without "batched") are
// not run batched: their row b is the alone row, so the stages after them
// are still checked, and Batched.Skipped says why.

// Batched is what ExecuteBatched ran: per sequence its case, inputs and a
// trace whose Prefill row is the sequence decoded alone and whose Chained
// and Isolated rows are its row of the batched calls (chained: fed by the
// batched stages; isolated: fed the alone rows, attention reading the alone
// caches).
type Batched struct {
	Lens    []int
	Cases   []Case
	Inputs  []*Inputs
	Traces  []*Trace
	Skipped [stage.Count]string // why a stage of the plan did not run batched ("" = it did)
}

// ParseLens parses sequence lengths written as FormatLens writes them.
func ParseLens(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			return nil, fmt.Errorf("sequence length %q is not an integer >= 2", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// FormatLens writes sequence lengths as "9,17,65".
func FormatLens(lens []int) string {
	s := make([]string, len(lens))
	for i, n := range lens {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// BatchLens are the table's sequence lengths: a short one, each side of the
// 64-key split (the batch mixes one, two and three splits), and one past
// two splits with a ragged last one.
var BatchLens = []int{9, 64, 65, 150}

// SequenceCase is sequence b's case: c with S = length, one decode step.
func SequenceCase(c Case, length int) Case {
	c.S, c.Steps = length, 1
	return c
}

// batchForm is how a stage runs in a batched call.
type batchForm int

const (
	batchRowwise batchForm = iota // the table's launch with rows = B
	batchCache                    // gp_kv_append_batched
	batchAttn                     // gp_attention_batched
	batchNone                     // not run batched
)

// batchFormOf derives a stage's batched form from its table entry: row
// outputs that read no cache are row-wise; the cache append and the fused
// attention need "batched"; the unfused attention stages have no batched
// entry point.
func batchFormOf(lib *gpapi.Lib, d *stageDef) (batchForm, string) {
	switch {
	case d.kind == outRows && d.cache == cacheNone:
		return batchRowwise, ""
	case d.kind == outCache || d.kind == outAttn:
		if err := lib.Need(gpapi.CapBatched); err != nil {
			return batchNone, err.Error()
		}
		if d.kind == outCache {
			return batchCache, ""
		}
		return batchAttn, ""
	}
	return batchNone, "the batched capability has no unfused attention (only gp_attention_batched)"
}

// ExecuteBatched decodes each sequence alone (Execute of SequenceCase),
// then all of them in batched calls, chained and isolated.
func ExecuteBatched(lib *gpapi.Lib, c Case, lens []int, timeout time.Duration) (*Batched, error) {
	if len(lens) == 0 {
		return nil, fmt.Errorf("case %s: a batch needs at least one sequence", c.Name())
	}
	bt := &Batched{Lens: lens}
	alone := make([]*Trace, len(lens))
	for b, n := range lens {
		cb := SequenceCase(c, n)
		if err := cb.Validate(); err != nil {
			return nil, fmt.Errorf("sequence %d: %w", b, err)
		}
		in := NewInputs(cb)
		tr, err := Execute(lib, cb, in, timeout)
		if err != nil {
			return nil, fmt.Errorf("sequence %d decoded alone: %w", b, err)
		}
		bt.Cases, bt.Inputs, alone[b] = append(bt.Cases, cb), append(bt.Inputs, in), tr
	}
	err := onDevice(lib, bt.Cases[0], bt.Inputs[0], timeout, nil, func(d *device, alloc allocFunc, w *weightBufs, p *plan, tr *Trace) error {
		for _, def := range p.defs {
			if f, why := batchFormOf(lib, def); f == batchNone {
				bt.Skipped[def.st] = why
			}
		}
		rows := [2][]Row{}
		for i, mode := range []Path{Chained, Isolated} {
			var err error
			if rows[i], err = runBatch(d, c, bt, alone, mode, p, w); err != nil {
				return err
			}
		}
		for b := range lens {
			t := *tr
			t.Prefill = []Row{alone[b].Chained[0]}
			t.Chained, t.Isolated = []Row{rows[0][b]}, []Row{rows[1][b]}
			bt.Traces = append(bt.Traces, &t)
		}
		return nil
	})
	return bt, err
}

// runBatch runs every stage of the plan once for all sequences, in one
// mode; row b of the result is sequence b's.
func runBatch(d *device, c Case, bt *Batched, alone []*Trace, mode Path, p *plan, w *weightBufs) ([]Row, error) {
	alloc := panickingAlloc(d)
	dt, dm, iso, nb := c.Dtype, caseDims(c), mode == Isolated, len(bt.Lens)
	name := func(what string) string { return fmt.Sprintf("batched %s %s", mode, what) }
	starts, lens, slots, pos := make([]int32, nb), make([]int32, nb), make([]int32, nb), make([]int32, nb)
	capacity := 0
	for b, n := range bt.Lens {
		starts[b], lens[b], slots[b], pos[b] = int32(capacity), int32(n), int32(capacity+n-1), int32(c.PosOffset+n-1)
		capacity += n + 1 // the sequence's keys and one spare row
	}
	x := alloc(name("x"), dt, nb*dm.h)
	var xs []float64
	for b, n := range bt.Lens {
		xs = append(xs, bt.Inputs[b].X[(n-1)*dm.h:n*dm.h]...)
	}
	if err := x.upload(xs); err != nil {
		return nil, err
	}
	var bufs [4]*gpapi.Buffer
	for i, v := range [][]int32{pos, slots, starts, lens} {
		var err error
		if bufs[i], err = d.allocPos(name([]string{"positions", "slots", "kv_start", "kv_len"}[i]), v); err != nil {
			return nil, err
		}
	}
	posBuf, slotBuf, startBuf, lenBuf := bufs[0], bufs[1], bufs[2], bufs[3]
	// cache fills each sequence's span with the rows rowsOf(b) gives, the
	// rest (the decode slots, the spare rows) with poison.
	cache := func(what string, rowsOf func(b int) (k, v [][]float64)) (kc, vc *tensor, err error) {
		kc, vc = alloc(name(what+" K cache"), dt, capacity*dm.kvd), alloc(name(what+" V cache"), dt, capacity*dm.kvd)
		kb, vb := dt.PoisonBytes(capacity*dm.kvd), dt.PoisonBytes(capacity*dm.kvd)
		rb := dm.kvd * dt.Size()
		for b := range bt.Lens {
			k, v := rowsOf(b)
			for j := range k {
				at := (int(starts[b]) + j) * rb
				copy(kb[at:at+rb], dt.Encode(k[j]))
				copy(vb[at:at+rb], dt.Encode(v[j]))
			}
		}
		if err := kc.buf.Write(kb); err != nil {
			return nil, nil, err
		}
		return kc, vc, vc.buf.Write(vb)
	}
	// The append's cache holds each sequence's prefill rows before its
	// token; isolated attention reads the alone decode's cache instead.
	kw, vw, err := cache("append", func(b int) (k, v [][]float64) {
		pr := alone[b].Prefill[0]
		return pr.KRows[:bt.Lens[b]-1], pr.VRows[:bt.Lens[b]-1]
	})
	if err != nil {
		return nil, err
	}
	kr, vr := kw, vw
	if iso {
		if kr, vr, err = cache("alone", func(b int) (k, v [][]float64) {
			r := alone[b].Chained[0]
			return r.KRows, r.VRows
		}); err != nil {
			return nil, err
		}
	}
	var outs [stage.Count][]*tensor
	for _, def := range p.defs {
		if def.kind == outCache {
			outs[def.st] = []*tensor{kw, vw}
			continue
		}
		outs[def.st] = outTensors(def, alloc, name(def.st.String()), dt, dm, nb, capacity)
	}
	a := c.args(dm, w, &outs, p)
	a.rows, a.x, a.pos = nb, x.buf.Ptr, posBuf.Ptr
	aloneRows := func() []Row {
		out := make([]Row, nb)
		for b := range out {
			out[b] = alone[b].Chained[0]
		}
		return out
	}()
	rows := make([]Row, nb)
	for b, n := range bt.Lens {
		rows[b] = Row{R: n - 1, Pos: c.PosOffset + n - 1}
	}
	for _, def := range p.defs {
		form, _ := batchFormOf(d.lib, def)
		reads := p.readsOf(def)
		if form == batchNone {
			// Not run batched: the alone rows stand in for it, in the
			// tensor the stages after it read and in the rows.
			if len(outs[def.st]) > 0 && def.kind != outCache && def.kind != outScores {
				if err := outs[def.st][0].upload(chunkInput(def, dm, aloneRows, def.st, 0, nb)); err != nil {
					return nil, err
				}
			}
			for b := range rows {
				ar := &aloneRows[b]
				rows[b].Out[def.st], rows[b].Bits[def.st], rows[b].Launch[def.st] = ar.Out[def.st], ar.Bits[def.st], ar.Launch[def.st]
				if def.kind == outCache {
					rows[b].KRows, rows[b].VRows = ar.KRows, ar.VRows
				}
			}
			continue
		}
		if iso {
			for _, st := range reads {
				if err := outs[st][0].upload(chunkInput(defOf(st), dm, aloneRows, st, 0, nb)); err != nil {
					return nil, err
				}
			}
		}
		o, extra, before, err := launchTargets(def, &outs)
		if err != nil {
			return nil, err
		}
		l, raw, err := d.launch(fmt.Sprintf("%s (batched %s, B=%d, lengths %s)", def.st, mode, nb, FormatLens(bt.Lens)), o, extra, func() (gpapi.Launch, error) {
			switch form {
			case batchCache:
				return d.lib.KVAppendBatched(a.dt, a.in(reads[0]), a.in(reads[1]), kw.buf.Ptr, vw.buf.Ptr, nb, dm.kvd, slotBuf.Ptr, capacity)
			case batchAttn:
				o := outs[def.st]
				return d.lib.AttentionBatched(a.dt, a.in(reads[0]), kr.buf.Ptr, vr.buf.Ptr, o[0].buf.Ptr, o[1].buf.Ptr, nb, startBuf.Ptr, lenBuf.Ptr, capacity, dm.nh, dm.nkv, dm.hd, dm.scale)
			}
			return def.launch(d.lib, a)
		})
		if err != nil {
			return nil, err
		}
		for b := range rows {
			row, r := &rows[b], bt.Lens[b]-1
			row.Launch[def.st] = l
			if def.kind == outCache {
				// Sequence b's span of the cache: its own rows, its slot.
				lo, hi := int(starts[b])*dm.kvd*dt.Size(), (int(starts[b])+bt.Lens[b]+1)*dm.kvd*dt.Size()
				after := [2][]byte{raw[0][lo:hi], raw[1][lo:hi]}
				row.Issues = append(row.Issues, cacheWrites(dt, [2][]byte{before[0][lo:hi], before[1][lo:hi]}, after, []int{r}, dm.kvd, mode, 0)...)
				row.Out[def.st], row.Bits[def.st], _ = cutRow(def, dt, dm, after[:], 1, r+1, 0, r)
				if iso {
					row.KRows, row.VRows = aloneRows[b].KRows, aloneRows[b].VRows
				} else {
					row.KRows, row.VRows = cacheRows(dt.Decode(after[0]), dt.Decode(after[1]), r+1, dm.kvd)
				}
				continue
			}
			var un int
			row.Out[def.st], row.Bits[def.st], un = cutRow(def, dt, dm, raw, nb, r+1, b, r)
			if un > 0 {
				row.Issues = append(row.Issues, Issue{def.st, mode, 0, fmt.Sprintf("%d of %d output elements of sequence %d never written", un, len(row.Out[def.st]), b)})
			}
		}
	}
	return rows, nil
}

// EvaluateBatched compares each sequence's batched rows with its alone
// row (Evaluate of its trace); the stages that did not run batched are
// left out of the results.
func EvaluateBatched(bt *Batched) []*Result {
	var out []*Result
	for b, tr := range bt.Traces {
		res := Evaluate(bt.Cases[b], bt.Inputs[b], tr)
		kept := res.Stages[:0]
		for _, s := range res.Stages {
			if bt.Skipped[s.Stage] == "" {
				kept = append(kept, s)
			}
		}
		res.Stages = kept
		out = append(out, res)
	}
	return out
}
