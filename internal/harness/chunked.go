package harness

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/stage"
)

// Chunked prefill: the case's P = S+Steps-1 tokens prefilled in chunks, as
// serving engines do with long prompts. Chunk k covers rows [s, s+n): one
// call per stage with M = rows = n_q = n, positions s.., the KV append at
// slot s, attention with q_pos0 = s over n_kv = s+n keys (the cache rows of
// the earlier chunks and its own). Every row of every stage must equal the
// one-shot prefill's row: the Trace's Prefill is the one-shot prefill
// (every row), Chained the chunked prefill fed by its own outputs and its
// own cache, Isolated the chunked prefill with every stage fed the one-shot
// rows of what it reads and attention reading the one-shot cache. Evaluate
// compares them like decode with prefill: bitwise where the library
// declares the stage batch invariant and the route is forced, the
// tolerance model otherwise. A Result's "step" t is token row t.

// ChunkSizes are the chunk sizes of the table, at the kernels' tile
// boundaries: 1 (every chunk a decode-shaped call), 16 (the 16-row GEMM
// tiles), 63/64/65 (GP_ATTN_SPLIT_KEYS, the 64-key blocks of the scores
// kernel and the 64-wide MFMA/wavefront tiles) and 128 (two key splits).
// P·V's 256-key chunks (GP_ATTN_PV_CHUNK_KEYS) lie past ChunkedP: decode
// cases cross them (AttnSplitS: 255/256/257 … 511/512/513). ChunkedP
// tokens leave a ragged last chunk for every size but 1.
var ChunkSizes = []int{1, 16, 63, 64, 65, 128}

// MixedChunks is the table's plan of unequal chunks: a one-row chunk at
// q_pos0 = 0, chunks that start off every boundary, and a ragged tail.
var MixedChunks = []int{1, 63, 1, 64, 21}

// ChunkedP is the table's prefill length: past two key splits (128), and
// no multiple of any ChunkSizes entry but 1.
const ChunkedP = 150

// ChunkedRealP is the prefill length of a real (4096-wide) shape's chunked
// case: past one key split, a ragged chunk after a 64-row one, and half the
// rows of ChunkedP to reference in float64.
const ChunkedRealP = 70

// ChunkPlan splits p tokens into chunks of size tokens, the last one
// holding the remainder.
func ChunkPlan(p, size int) []int {
	var out []int
	for s := 0; s < p; s += size {
		out = append(out, min(size, p-s))
	}
	return out
}

// ParseChunks parses a plan written as FormatChunks writes it ("64+64+22"
// or "1,63,1,64,21").
func ParseChunks(s string) ([]int, error) {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '+' || r == ',' }) {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("chunk %q is not a size >= 1", f)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q holds no chunk size", s)
	}
	return out, nil
}

// FormatChunks writes a plan as "64+64+22".
func FormatChunks(chunks []int) string {
	s := make([]string, len(chunks))
	for i, n := range chunks {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, "+")
}

// CheckChunks reports a plan that does not cover p tokens exactly.
func CheckChunks(chunks []int, p int) error {
	sum := 0
	for i, n := range chunks {
		if n < 1 {
			return fmt.Errorf("chunk %d has %d rows, must be >= 1", i, n)
		}
		sum += n
	}
	if sum != p {
		return fmt.Errorf("chunks %s cover %d tokens, the case prefills P=%d", FormatChunks(chunks), sum, p)
	}
	return nil
}

// AllRows is the case whose Evaluate compares every one of c's P rows
// (S = 1, Steps = P): the comparison of a chunked prefill.
func (c Case) AllRows() Case {
	c.S, c.Steps = 1, c.P()
	return c
}

// ExecuteChunked runs c's prefill one-shot and in chunks (chained and
// isolated) on lib. Evaluate the trace with c.AllRows().
func ExecuteChunked(lib *gpapi.Lib, c Case, chunks []int, in *Inputs, timeout time.Duration) (*Trace, error) {
	all := c.AllRows()
	if err := CheckChunks(chunks, all.P()); err != nil {
		return nil, fmt.Errorf("case %s: %w", c.Name(), err)
	}
	var tr *Trace
	err := onDevice(lib, c, in, timeout, nil, func(d *device, alloc allocFunc, w *weightBufs, p *plan, t *Trace) error {
		dm := caseDims(all)
		pre, err := runPrefill(d, alloc, all, dm, w, in, p)
		if err != nil {
			return err
		}
		t.Prefill = pre.rows
		if t.Chained, err = runChunks(d, all, dm, w, in, pre, Chained, p, chunks); err != nil {
			return err
		}
		t.Isolated, err = runChunks(d, all, dm, w, in, pre, Isolated, p, chunks)
		tr = t
		return err
	})
	return tr, err
}

// runChunks runs the chunked prefill in one mode; row r of the result is
// token row r. The caches persist across chunks (chained: the chunks' own
// appends; isolated: reset before each chunk to the one-shot rows before
// it).
func runChunks(d *device, c Case, dm dims, w *weightBufs, in *Inputs, pre *prefillState, mode Path, p *plan, chunks []int) ([]Row, error) {
	alloc := panickingAlloc(d)
	kc := alloc(fmt.Sprintf("chunked %s K cache", mode), c.Dtype, dm.C*dm.kvd)
	vc := alloc(fmt.Sprintf("chunked %s V cache", mode), c.Dtype, dm.C*dm.kvd)
	for _, t := range []*tensor{kc, vc} {
		if err := t.poison(); err != nil {
			return nil, err
		}
	}
	var rows []Row
	s := 0
	for _, n := range chunks {
		got, err := runChunk(d, c, dm, w, in, pre, mode, p, kc, vc, s, n)
		if err != nil {
			return nil, err
		}
		rows = append(rows, got...)
		s += n
	}
	return rows, nil
}

// runChunk runs one chunk, rows [s, s+n), through every stage of the plan.
// Its buffers other than the caches are sized for the chunk exactly (the
// guards catch a write past its rows) and freed after it.
func runChunk(outer *device, c Case, dm dims, w *weightBufs, in *Inputs, pre *prefillState, mode Path, p *plan, kc, vc *tensor, s, n int) ([]Row, error) {
	d := &device{lib: outer.lib, timeout: outer.timeout}
	defer d.free()
	alloc := panickingAlloc(d)
	dt, iso := c.Dtype, mode == Isolated
	name := func(what string) string { return fmt.Sprintf("chunked %s rows %d..%d %s", mode, s, s+n-1, what) }
	x := alloc(name("x"), dt, n*dm.h)
	if err := x.upload(in.X[s*dm.h : (s+n)*dm.h]); err != nil {
		return nil, err
	}
	pos := make([]int32, n)
	for i := range pos {
		pos[i] = int32(c.PosOffset + s + i)
	}
	posBuf, err := d.allocPos(name("positions"), pos)
	if err != nil {
		return nil, err
	}
	if iso {
		// The append writes into a cache holding the one-shot rows
		// before the chunk, the rest poison; attention reads the
		// one-shot cache.
		for _, q := range []struct {
			t   *tensor
			raw []byte
		}{{kc, pre.kcRaw}, {vc, pre.vcRaw}} {
			b := dt.PoisonBytes(dm.C * dm.kvd)
			copy(b, q.raw[:s*dm.kvd*dt.Size()])
			if err := q.t.buf.Write(b); err != nil {
				return nil, err
			}
		}
	}
	var outs [stage.Count][]*tensor
	for _, def := range p.defs {
		if def.kind == outCache {
			outs[def.st] = []*tensor{kc, vc}
			continue
		}
		outs[def.st] = outTensors(def, alloc, name(def.st.String()), dt, dm, n, s+n)
	}
	a := c.args(dm, w, &outs, p)
	a.rows, a.nkv, a.qPos0, a.slot = n, s+n, s, s
	a.x, a.pos = x.buf.Ptr, posBuf.Ptr
	a.kc, a.vc, a.kcWrite, a.vcWrite = kc.buf.Ptr, vc.buf.Ptr, kc.buf.Ptr, vc.buf.Ptr
	if iso {
		a.kc, a.vc = pre.kc.buf.Ptr, pre.vc.buf.Ptr
	}
	rows := make([]Row, n)
	for i := range rows {
		rows[i] = Row{R: s + i, Pos: c.PosOffset + s + i}
	}
	slots := make([]int, n)
	for i := range slots {
		slots[i] = s + i
	}
	for _, def := range p.defs {
		if iso {
			for _, st := range p.readsOf(def) {
				if err := outs[st][0].upload(chunkInput(defOf(st), dm, pre.rows[s:s+n], st, s, n)); err != nil {
					return nil, err
				}
			}
		}
		o, extra, before, err := launchTargets(def, &outs)
		if err != nil {
			return nil, err
		}
		l, raw, err := d.launch(fmt.Sprintf("%s (chunked %s, rows %d..%d, M=%d, q_pos0=%d)", def.st, mode, s, s+n-1, n, s), o, extra,
			func() (gpapi.Launch, error) { return def.launch(d.lib, a) })
		if err != nil {
			return nil, err
		}
		var kVals, vVals []float64
		if def.kind == outCache {
			rows[0].Issues = append(rows[0].Issues, cacheWrites(dt, before, [2][]byte{raw[0], raw[1]}, slots, dm.kvd, mode, s)...)
			kVals, vVals = dt.Decode(raw[0]), dt.Decode(raw[1])
		}
		for i := range rows {
			row, r := &rows[i], s+i
			var un int
			row.Launch[def.st] = l
			row.Out[def.st], row.Bits[def.st], un = cutRow(def, dt, dm, raw, n, s+n, i, r)
			switch {
			case def.kind == outCache && iso:
				row.KRows, row.VRows = pre.rows[r].KRows, pre.rows[r].VRows
			case def.kind == outCache:
				row.KRows, row.VRows = cacheRows(kVals, vVals, r+1, dm.kvd)
			case un > 0:
				row.Issues = append(row.Issues, Issue{def.st, mode, r, fmt.Sprintf("%d of %d output elements never written (chunk rows %d..%d)", un, len(row.Out[def.st]), s, s+n-1)})
			}
		}
	}
	return rows, nil
}

// chunkInput lays out the one-shot rows [s, s+n) of stage st as its
// output tensor of a chunk call: rows one after the other (the primary
// part of attn's), or for scores [n_heads, n, s+n] with the keys after
// each row's own as the causal kernel leaves them: -Inf where the stage
// holds masked scores, else 0 (probabilities).
func chunkInput(d *stageDef, dm dims, rows []Row, st stage.Stage, s, n int) []float64 {
	if d.kind == outScores {
		nkv := s + n
		out := make([]float64, dm.nh*n*nkv)
		if d.masked {
			for i := range out {
				out[i] = math.Inf(-1)
			}
		}
		for i, row := range rows {
			r := s + i
			for h := 0; h < dm.nh; h++ {
				copy(out[(h*n+i)*nkv:], row.Out[st][h*(r+1):(h+1)*(r+1)])
			}
		}
		return out
	}
	var out []float64
	for _, row := range rows {
		v := row.Out[st]
		out = append(out, v[:primaryLen(d, dm, v)]...)
	}
	return out
}

// ChunkStart returns the first row of the chunk holding row r, and the
// chunk's size, for messages.
func ChunkStart(chunks []int, r int) (start, size int) {
	for _, n := range chunks {
		if r < start+n {
			return start, n
		}
		start += n
	}
	return start, 0
}
