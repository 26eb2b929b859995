package harness

import (
	"container/list"
	"fmt"
	"math"
	"sync"
	"time"
	"unsafe"
	"weak"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/stage"
)

// Path names which computation produced a Row.
type Path string

// Paths. Prefill is row S-1+t of the S+steps-1-token prefill; Chained is
// decode step t fed by its own previous stages and its own cache writes (as
// in the engine); Isolated is decode step t with every stage fed prefill's
// row of the previous stage, so a stage that diverges here is faulty in its
// own right rather than carrying an upstream difference.
const (
	Prefill  Path = "prefill"
	Chained  Path = "chained"
	Isolated Path = "isolated"
)

// Row is what one path computed for one token row: each stage's output
// (the compared region), its raw bits, the kernel that ran, and the cache
// rows 0..R the attention kernels read.
type Row struct {
	R, Pos int // token row index, RoPE position
	Out    [stage.Count][]float64
	Bits   [stage.Count][]uint32
	Launch [stage.Count]gpapi.Launch
	KRows  [][]float64 // K cache rows 0..R as read by qk
	VRows  [][]float64 // V cache rows 0..R as read by pv
	// X is the layer input this path fed x_norm (and attn_res) for the
	// row: nil = the case's inputs (row R of Inputs.X). A later layer's
	// chained decode reads its own stream (the layer before's mlp_res).
	X      []float64
	Issues []Issue // unwritten outputs, cache writes outside the slot
}

// Issue is a defect found outside the numeric comparison: an output element
// never written, a cache row written that should not have been.
type Issue struct {
	Stage stage.Stage
	Path  Path
	Step  int
	Msg   string
}

func (i Issue) String() string {
	return fmt.Sprintf("%s (%s, step %d): %s", i.Stage, i.Path, i.Step, i.Msg)
}

// Trace holds every path's rows (index t is decode step t) and what the
// library ran: the stages of the plan, the attention stage attn_out read,
// and the stages the library declares batch invariant.
type Trace struct {
	Prefill, Chained, Isolated []Row
	Ran                        [stage.Count]bool
	Attention                  stage.Stage
	Invariant                  [stage.Count]bool
	InvarianceDeclared         bool // the library has gp_batch_invariant_stages
	// Stream is prefill's mlp_res of every row 0..P-1 (nil without the
	// MLP): the next layer's input in the layers mode.
	Stream []float64
}

// plan rebuilds the plan the trace was run with.
func (tr *Trace) plan() *plan {
	p := &plan{ran: tr.Ran, attention: tr.Attention}
	for _, d := range stageTable {
		if tr.Ran[d.st] {
			p.defs = append(p.defs, d)
		}
	}
	return p
}

// dims of a case, and the f32 arguments exactly as the kernels receive them.
type dims struct {
	h, qd, kvd, nh, nkv, hd, P, C int
	inter                         int // the MLP's intermediate size
	vocab                         int // the LM head's N
	eps, theta, scale             float32
	normOffset                    float32 // post_norm's weight offset (Gemma: 1)
}

func caseDims(c Case) dims {
	m := c.Model
	return dims{
		h: m.Hidden, qd: m.QDim(), kvd: m.KVDim(), nh: m.NHeads, nkv: m.NKVHeads, hd: m.HeadDim,
		P: c.P(), C: c.P() + 1, // one spare slot: a write one slot off lands in the guarded buffer
		inter: m.IntermediateSize, vocab: m.VocabSize, normOffset: float32(m.NormWeightOffset),
		eps: float32(m.RMSEps), theta: float32(m.RopeTheta), scale: float32(1 / math.Sqrt(float64(m.HeadDim))),
	}
}

// Execute runs the case's prefill and decode paths on lib.
func Execute(lib *gpapi.Lib, c Case, in *Inputs, timeout time.Duration) (*Trace, error) {
	return execute(lib, c, in, timeout, nil)
}

// execute is Execute with an arm hook called before each stage's launch
// (nil: none).
func execute(lib *gpapi.Lib, c Case, in *Inputs, timeout time.Duration, arm func(stage.Stage) error) (*Trace, error) {
	var out *Trace
	err := onDevice(lib, c, in, timeout, arm, func(d *device, alloc allocFunc, w *weightBufs, p *plan, tr *Trace) error {
		out = tr // a failing run still returns what it traced
		dm := caseDims(c)
		pre, err := runPrefill(d, alloc, c, dm, w, in, p)
		if err != nil {
			return err
		}
		tr.Prefill, tr.Stream = pre.rows, pre.stream
		if tr.Chained, err = runDecode(d, alloc, c, dm, w, in, pre, Chained, p); err != nil {
			return err
		}
		tr.Isolated, err = runDecode(d, alloc, c, dm, w, in, pre, Isolated, p)
		return err
	})
	return out, err
}

type weightBufs struct {
	norm, wq, wk, wv, wo, bq, bk, bv *tensor
	postNorm, wg, wu, wd             *tensor // the MLP block's (nil without one)
	finalNorm, wlm                   *tensor // the head's (nil unless the case runs it)
}

func (w *weightBufs) bias(t *tensor) uintptr {
	if t == nil {
		return 0
	}
	return t.buf.Ptr
}

// deviceWeights keeps the weight tensors uploaded to each library, one per
// (host slice, dtype): the table runs every S and route of one (model,
// dtype) in a row, and re-encoding and uploading 4096×4096 matrices per
// case would dominate a GPU run; the sets of one (model, dtype) share the
// tensors whose values are equal (internSet), so those are uploaded once.
// Cases may run in parallel with different sets: a tensor counts its
// users and is freed only when nobody uses it and the library holds more
// than deviceWeightBytes of them, the least recently used first. Keys are
// weak pointers: the cache keeps no host slice alive, and a slice drawn
// where a freed one was is another key.
var deviceWeights = struct {
	sync.Mutex
	m map[*gpapi.Lib]*weightStore
}{m: map[*gpapi.Lib]*weightStore{}}

// deviceWeightBytes bounds the bytes of unused weight tensors kept on a
// device: two 8B models' sets in f32 (or four in f16/bf16).
const deviceWeightBytes = 8 << 30

type weightStore struct {
	tensors map[tensorKey]*deviceTensor
	lru     *list.List // of *deviceTensor, most recently used at the front
	bytes   int
}

type tensorKey struct {
	data weak.Pointer[float64]
	n    int
	dt   dtype.Dtype
}

type deviceTensor struct {
	key   tensorKey
	t     *tensor
	users int
	elem  *list.Element
}

// weightsOn returns device copies of W's tensors, uploading those the
// library does not hold yet, and a release func to call when the case is
// done with them.
func weightsOn(lib *gpapi.Lib, W *Weights, dt dtype.Dtype) (*weightBufs, func(), error) {
	deviceWeights.Lock()
	defer deviceWeights.Unlock()
	st := deviceWeights.m[lib]
	if st == nil {
		st = &weightStore{tensors: map[tensorKey]*deviceTensor{}, lru: list.New()}
		deviceWeights.m[lib] = st
	}
	var used []*deviceTensor
	release := func() {
		deviceWeights.Lock()
		for _, e := range used {
			e.users--
		}
		deviceWeights.Unlock()
	}
	wb := &weightBufs{}
	for _, x := range []struct {
		dst  **tensor
		name string
		v    []float64
	}{{&wb.norm, "rms weight", W.NormW}, {&wb.wq, "Wq", W.Wq}, {&wb.wk, "Wk", W.Wk}, {&wb.wv, "Wv", W.Wv},
		{&wb.wo, "Wo", W.Wo}, {&wb.bq, "bq", W.Bq}, {&wb.bk, "bk", W.Bk}, {&wb.bv, "bv", W.Bv},
		{&wb.postNorm, "post-norm weight", W.PostNormW}, {&wb.wg, "Wgate", W.Wg}, {&wb.wu, "Wup", W.Wu}, {&wb.wd, "Wdown", W.Wd},
		{&wb.finalNorm, "final-norm weight", W.FinalNormW}, {&wb.wlm, "Wlm", W.Wlm}} {
		if len(x.v) == 0 {
			continue
		}
		key := tensorKey{weak.Make(unsafe.SliceData(x.v)), len(x.v), dt}
		e := st.tensors[key]
		if e == nil {
			size := len(x.v) * dt.Size()
			st.evict(size)
			b, err := lib.Alloc(x.name, size)
			if err == nil {
				if err = b.Write(dt.Encode(x.v)); err != nil {
					b.Free()
				}
			}
			if err != nil {
				for _, e := range used {
					e.users--
				}
				return nil, nil, err
			}
			e = &deviceTensor{key: key, t: &tensor{buf: b, dt: dt, n: len(x.v)}}
			e.elem = st.lru.PushFront(e)
			st.tensors[key] = e
			st.bytes += size
		}
		e.users++
		st.lru.MoveToFront(e.elem)
		used = append(used, e)
		*x.dst = e.t
	}
	return wb, release, nil
}

// evict frees the least recently used tensors nobody uses until size more
// bytes fit in deviceWeightBytes (or none is left to free). The caller
// holds deviceWeights' lock.
func (st *weightStore) evict(size int) {
	for e := st.lru.Back(); e != nil && st.bytes+size > deviceWeightBytes; {
		prev := e.Prev()
		if d := e.Value.(*deviceTensor); d.users == 0 {
			st.lru.Remove(e)
			delete(st.tensors, d.key)
			st.bytes -= d.t.n * d.t.dt.Size()
			d.t.buf.Free()
		}
		e = prev
	}
}

// prefillState keeps prefill's device buffers the decode paths read.
type prefillState struct {
	rows         []Row
	stream       []float64 // mlp_res of every row 0..P-1: the next layer's input (nil without the MLP)
	kc, vc       *tensor
	kcRaw, vcRaw []byte
}

// args returns the launch arguments shared by every call of a case.
func (c Case) args(dm dims, w *weightBufs, outs *[stage.Count][]*tensor, p *plan) *launchArgs {
	return &launchArgs{dt: int32(c.Dtype), c: c, dm: dm, w: w, out: outs, attention: p.attention,
		route: c.Route, layout: c.Model.Layout(), theta: dm.theta, eps: dm.eps, scale32: dm.scale}
}

func runPrefill(d *device, alloc func(string, dtype.Dtype, int) *tensor, c Case, dm dims, w *weightBufs, in *Inputs, p *plan) (*prefillState, error) {
	dt, P := c.Dtype, dm.P
	x := alloc("x", dt, P*dm.h)
	if err := x.upload(in.X); err != nil {
		return nil, err
	}
	pos := make([]int32, P)
	for i := range pos {
		pos[i] = int32(c.PosOffset + i)
	}
	posBuf, err := d.allocPos("prefill positions", pos)
	if err != nil {
		return nil, err
	}
	kc := alloc("prefill K cache", dt, dm.C*dm.kvd)
	vc := alloc("prefill V cache", dt, dm.C*dm.kvd)
	for _, t := range []*tensor{kc, vc} {
		if err := t.poison(); err != nil {
			return nil, err
		}
	}
	var outs [stage.Count][]*tensor
	for _, def := range p.defs {
		if def.kind == outCache {
			outs[def.st] = []*tensor{kc, vc}
			continue
		}
		outs[def.st] = outTensors(def, alloc, "prefill "+def.st.String(), dt, dm, P, P)
	}
	a := c.args(dm, w, &outs, p)
	a.rows, a.nkv, a.qPos0, a.slot = P, P, 0, 0
	a.x, a.pos = x.buf.Ptr, posBuf.Ptr
	a.kc, a.vc, a.kcWrite, a.vcWrite = kc.buf.Ptr, vc.buf.Ptr, kc.buf.Ptr, vc.buf.Ptr
	var launches [stage.Count]gpapi.Launch
	var raw [stage.Count][][]byte
	var issues []Issue
	for _, def := range p.defs {
		o, extra := outs[def.st], []*tensor(nil)
		if def.kind == outCache {
			o, extra = nil, outs[def.st]
		}
		if err := d.armFor(def.st); err != nil {
			return nil, err
		}
		l, got, err := d.launch(fmt.Sprintf("%s (prefill, M=%d)", def.st, P), o, extra, func() (gpapi.Launch, error) { return def.launch(d.lib, a) })
		if err != nil {
			return nil, err
		}
		launches[def.st] = l
		raw[def.st] = got
		for i, t := range outs[def.st] {
			b := got[i]
			// Prefill must write every element of every output (of a
			// cache: rows 0..P-1); report the ones it did not as issues
			// of the prefill row.
			n := t.n
			if def.kind == outCache {
				n = P * dm.kvd
			}
			if _, _, un := rowsOf(t.dt, b, 0, n); un > 0 {
				issues = append(issues, Issue{def.st, Prefill, -1, fmt.Sprintf("%d of %d elements of %s never written", un, n, t.buf.Name)})
			}
		}
	}
	ps := &prefillState{kc: kc, vc: vc, kcRaw: raw[cacheStage][0], vcRaw: raw[cacheStage][1]}
	if p.ran[stage.MLPRes] {
		ps.stream = dt.Decode(raw[stage.MLPRes][0])
	}
	kcVals, vcVals := dt.Decode(ps.kcRaw), dt.Decode(ps.vcRaw)
	for t := 0; t < c.Steps; t++ {
		r := c.S - 1 + t
		row := Row{R: r, Pos: c.PosOffset + r, Launch: launches}
		if t == 0 {
			row.Issues = issues
		}
		for _, def := range p.defs {
			row.Out[def.st], row.Bits[def.st], _ = cutRow(def, dt, dm, raw[def.st], P, P, r, r)
			// Prefill's masked scores (keys after the query) must be -Inf.
			if def.masked {
				if bad := maskViolations(raw[def.st][0], dm.nh, P, r); bad != "" {
					row.Issues = append(row.Issues, Issue{def.st, Prefill, t, bad})
				}
			}
		}
		row.KRows, row.VRows = cacheRows(kcVals, vcVals, r+1, dm.kvd)
		ps.rows = append(ps.rows, row)
	}
	return ps, nil
}

func cacheRows(kc, vc []float64, n, kvd int) (k, v [][]float64) {
	for j := 0; j < n; j++ {
		k = append(k, kc[j*kvd:(j+1)*kvd])
		v = append(v, vc[j*kvd:(j+1)*kvd])
	}
	return k, v
}

func maskViolations(raw []byte, nh, P, r int) string {
	for h := 0; h < nh; h++ {
		v, _, _ := rowsOf(dtype.F32, raw, (h*P+r)*P, P)
		for j := r + 1; j < P; j++ {
			if !math.IsInf(v[j], -1) {
				return fmt.Sprintf("masked score [head %d, query %d, key %d] = %v, want -Inf", h, r, j, v[j])
			}
		}
	}
	return ""
}
