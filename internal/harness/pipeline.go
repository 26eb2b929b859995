package harness

import (
	"fmt"
	"math"
	"sync"
	"time"

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
	Issues []Issue     // unwritten outputs, cache writes outside the slot
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

// Trace holds every path's rows: index t is decode step t.
type Trace struct {
	Prefill, Chained, Isolated []Row
}

// dims of a case, and the f32 arguments exactly as the kernels receive them.
type dims struct {
	h, qd, kvd, nh, nkv, hd, P, C int
	eps, theta, scale             float32
}

func caseDims(c Case) dims {
	m := c.Model
	return dims{
		h: m.Hidden, qd: m.QDim(), kvd: m.KVDim(), nh: m.NHeads, nkv: m.NKVHeads, hd: m.HeadDim,
		P: c.P(), C: c.P() + 1, // one spare slot: a write one slot off lands in the guarded buffer
		eps: float32(m.RMSEps), theta: float32(m.RopeTheta), scale: float32(1 / math.Sqrt(float64(m.HeadDim))),
	}
}

// Execute runs the case's prefill and decode paths on lib.
func Execute(lib *gpapi.Lib, c Case, in *Inputs, timeout time.Duration) (*Trace, error) {
	if err := hungErr(lib); err != nil {
		return nil, fmt.Errorf("case %s not run: an earlier kernel hung: %w", c.Name(), err)
	}
	d := &device{lib: lib, timeout: timeout}
	defer d.free()
	dm := caseDims(c)
	dt := c.Dtype
	// alloc panics with allocErr so that the dozens of allocations of
	// runPrefill and runDecode read one line each; the recover below turns
	// it back into Execute's error, and no panic leaves Execute.
	alloc := func(name string, dt dtype.Dtype, n int) *tensor {
		t, err := d.alloc(name, dt, n)
		if err != nil {
			panic(allocErr{err})
		}
		return t
	}
	var tr Trace
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				ae, ok := r.(allocErr)
				if !ok {
					panic(r)
				}
				err = ae.err
			}
		}()
		w, err := weightsOn(lib, in.W, dt)
		if err != nil {
			return err
		}
		pre, err := runPrefill(d, alloc, c, dm, w, in)
		if err != nil {
			return err
		}
		tr.Prefill = pre.rows
		tr.Chained, err = runDecode(d, alloc, c, dm, w, in, pre, Chained)
		if err != nil {
			return err
		}
		tr.Isolated, err = runDecode(d, alloc, c, dm, w, in, pre, Isolated)
		return err
	}()
	return &tr, err
}

type allocErr struct{ err error }

type weightBufs struct {
	norm, wq, wk, wv, wo, bq, bk, bv *tensor
}

func (w *weightBufs) bias(t *tensor) uintptr {
	if t == nil {
		return 0
	}
	return t.buf.Ptr
}

// deviceWeights keeps the last weights uploaded to each library: the table
// runs every S and route of one (model, dtype) in a row, and re-encoding
// and uploading 4096×4096 matrices per case would dominate a GPU run.
// Cases of one key may run in parallel; they only read the weights.
var deviceWeights = struct {
	sync.Mutex
	m map[*gpapi.Lib]*uploaded
}{m: map[*gpapi.Lib]*uploaded{}}

type uploaded struct {
	w    *Weights
	dt   dtype.Dtype
	bufs *weightBufs
	all  []*gpapi.Buffer
}

// weightsOn returns device copies of W, uploading them unless the library
// already holds exactly these weights. The previous weights are freed when
// a different set is uploaded.
func weightsOn(lib *gpapi.Lib, W *Weights, dt dtype.Dtype) (*weightBufs, error) {
	deviceWeights.Lock()
	defer deviceWeights.Unlock()
	if u := deviceWeights.m[lib]; u != nil && u.w == W && u.dt == dt {
		return u.bufs, nil
	}
	if u := deviceWeights.m[lib]; u != nil {
		for _, b := range u.all {
			b.Free()
		}
		delete(deviceWeights.m, lib)
	}
	u := &uploaded{w: W, dt: dt}
	up := func(name string, v []float64) (*tensor, error) {
		if v == nil {
			return nil, nil
		}
		b, err := lib.Alloc(name, len(v)*dt.Size())
		if err != nil {
			return nil, err
		}
		u.all = append(u.all, b)
		t := &tensor{buf: b, dt: dt, n: len(v)}
		return t, t.upload(v)
	}
	wb := &weightBufs{}
	for _, x := range []struct {
		dst  **tensor
		name string
		v    []float64
	}{{&wb.norm, "rms weight", W.NormW}, {&wb.wq, "Wq", W.Wq}, {&wb.wk, "Wk", W.Wk}, {&wb.wv, "Wv", W.Wv},
		{&wb.wo, "Wo", W.Wo}, {&wb.bq, "bq", W.Bq}, {&wb.bk, "bk", W.Bk}, {&wb.bv, "bv", W.Bv}} {
		t, err := up(x.name, x.v)
		if err != nil {
			for _, b := range u.all {
				b.Free()
			}
			return nil, err
		}
		*x.dst = t
	}
	u.bufs = wb
	deviceWeights.m[lib] = u
	return wb, nil
}

// prefillState keeps prefill's device buffers the decode paths read.
type prefillState struct {
	rows           []Row
	kc, vc         *tensor
	kcRaw, vcRaw   []byte
	raw            [stage.Count][]byte // full prefill outputs
	scores, probs  []byte
	kcVals, vcVals []float64
}

func runPrefill(d *device, alloc func(string, dtype.Dtype, int) *tensor, c Case, dm dims, w *weightBufs, in *Inputs) (*prefillState, error) {
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
	xn := alloc("prefill x_norm", dt, P*dm.h)
	q := alloc("prefill q_proj", dt, P*dm.qd)
	k := alloc("prefill k_proj", dt, P*dm.kvd)
	v := alloc("prefill v_proj", dt, P*dm.kvd)
	qr := alloc("prefill q_rope", dt, P*dm.qd)
	kr := alloc("prefill k_rope", dt, P*dm.kvd)
	kc := alloc("prefill K cache", dt, dm.C*dm.kvd)
	vc := alloc("prefill V cache", dt, dm.C*dm.kvd)
	sc := alloc("prefill qk", dtype.F32, dm.nh*P*P)
	pr := alloc("prefill softmax", dtype.F32, dm.nh*P*P)
	pv := alloc("prefill pv", dt, P*dm.qd)
	out := alloc("prefill attn_out", dt, P*dm.h)
	if err := kc.poison(); err != nil {
		return nil, err
	}
	if err := vc.poison(); err != nil {
		return nil, err
	}
	lib, dti := d.lib, int32(dt)
	var launches [stage.Count]gpapi.Launch
	steps := []struct {
		st    stage.Stage
		outs  []*tensor
		extra []*tensor
		f     func() (gpapi.Launch, error)
	}{
		{stage.XNorm, []*tensor{xn}, nil, func() (gpapi.Launch, error) {
			return lib.RMSNorm(dti, x.buf.Ptr, w.norm.buf.Ptr, xn.buf.Ptr, P, dm.h, dm.eps)
		}},
		{stage.QProj, []*tensor{q}, nil, func() (gpapi.Launch, error) {
			return lib.Linear(dti, c.Route, xn.buf.Ptr, w.wq.buf.Ptr, w.bias(w.bq), q.buf.Ptr, P, dm.qd, dm.h)
		}},
		{stage.KProj, []*tensor{k}, nil, func() (gpapi.Launch, error) {
			return lib.Linear(dti, c.Route, xn.buf.Ptr, w.wk.buf.Ptr, w.bias(w.bk), k.buf.Ptr, P, dm.kvd, dm.h)
		}},
		{stage.VProj, []*tensor{v}, nil, func() (gpapi.Launch, error) {
			return lib.Linear(dti, c.Route, xn.buf.Ptr, w.wv.buf.Ptr, w.bias(w.bv), v.buf.Ptr, P, dm.kvd, dm.h)
		}},
		{stage.QRope, []*tensor{qr}, nil, func() (gpapi.Launch, error) {
			return lib.Rope(dti, c.Model.Layout(), q.buf.Ptr, qr.buf.Ptr, posBuf.Ptr, P, dm.nh, dm.hd, dm.theta)
		}},
		{stage.KRope, []*tensor{kr}, nil, func() (gpapi.Launch, error) {
			return lib.Rope(dti, c.Model.Layout(), k.buf.Ptr, kr.buf.Ptr, posBuf.Ptr, P, dm.nkv, dm.hd, dm.theta)
		}},
		{stage.KVCache, nil, []*tensor{kc, vc}, func() (gpapi.Launch, error) {
			return lib.KVAppend(dti, kr.buf.Ptr, v.buf.Ptr, kc.buf.Ptr, vc.buf.Ptr, P, dm.kvd, 0, dm.C)
		}},
		{stage.QK, []*tensor{sc}, nil, func() (gpapi.Launch, error) {
			return lib.AttnScores(dti, qr.buf.Ptr, kc.buf.Ptr, sc.buf.Ptr, P, P, dm.nh, dm.nkv, dm.hd, 0, dm.scale, true)
		}},
		{stage.Softmax, []*tensor{pr}, nil, func() (gpapi.Launch, error) {
			return lib.Softmax(sc.buf.Ptr, pr.buf.Ptr, dm.nh, P, P)
		}},
		{stage.PV, []*tensor{pv}, nil, func() (gpapi.Launch, error) {
			return lib.AttnPV(dti, pr.buf.Ptr, vc.buf.Ptr, pv.buf.Ptr, P, P, dm.nh, dm.nkv, dm.hd)
		}},
		{stage.AttnOut, []*tensor{out}, nil, func() (gpapi.Launch, error) {
			return lib.Linear(dti, c.Route, pv.buf.Ptr, w.wo.buf.Ptr, 0, out.buf.Ptr, P, dm.h, dm.qd)
		}},
	}
	for _, s := range steps {
		l, err := d.launch(fmt.Sprintf("%s (prefill, M=%d)", s.st, P), s.outs, s.extra, s.f)
		if err != nil {
			return nil, err
		}
		launches[s.st] = l
	}
	ps := &prefillState{kc: kc, vc: vc}
	var err2 error
	get := func(t *tensor) []byte {
		b, err := t.download()
		if err != nil && err2 == nil {
			err2 = err
		}
		return b
	}
	for st, t := range map[stage.Stage]*tensor{stage.XNorm: xn, stage.QProj: q, stage.KProj: k, stage.VProj: v,
		stage.QRope: qr, stage.KRope: kr, stage.PV: pv, stage.AttnOut: out} {
		ps.raw[st] = get(t)
	}
	ps.scores, ps.probs = get(sc), get(pr)
	ps.kcRaw, ps.vcRaw = get(kc), get(vc)
	if err2 != nil {
		return nil, err2
	}
	ps.kcVals, ps.vcVals = dt.Decode(ps.kcRaw), dt.Decode(ps.vcRaw)

	// Prefill must write every element of every output; report the ones it
	// did not as issues of the prefill row.
	var issues []Issue
	for _, st := range []stage.Stage{stage.XNorm, stage.QProj, stage.KProj, stage.VProj, stage.QRope, stage.KRope, stage.PV, stage.AttnOut} {
		if _, _, un := rows(dt, ps.raw[st], 0, len(ps.raw[st])/dt.Size()); un > 0 {
			issues = append(issues, Issue{st, Prefill, -1, fmt.Sprintf("%d of %d output elements never written", un, len(ps.raw[st])/dt.Size())})
		}
	}
	for _, x := range []struct {
		st  stage.Stage
		raw []byte
	}{{stage.QK, ps.scores}, {stage.Softmax, ps.probs}} {
		if _, _, un := rows(dtype.F32, x.raw, 0, len(x.raw)/4); un > 0 {
			issues = append(issues, Issue{x.st, Prefill, -1, fmt.Sprintf("%d of %d output elements never written", un, len(x.raw)/4)})
		}
	}
	if _, _, un := rows(dt, ps.kcRaw, 0, P*dm.kvd); un > 0 {
		issues = append(issues, Issue{stage.KVCache, Prefill, -1, fmt.Sprintf("%d K cache elements of rows 0..%d never written", un, P-1)})
	}

	for t := 0; t < c.Steps; t++ {
		r := c.S - 1 + t
		row := Row{R: r, Pos: c.PosOffset + r, Launch: launches}
		if t == 0 {
			row.Issues = issues
		}
		for _, st := range []stage.Stage{stage.XNorm, stage.QProj, stage.KProj, stage.VProj, stage.QRope, stage.KRope, stage.PV, stage.AttnOut} {
			n := len(ps.raw[st]) / dt.Size() / P
			row.Out[st], row.Bits[st], _ = rows(dt, ps.raw[st], r*n, n)
		}
		row.Out[stage.KVCache], row.Bits[stage.KVCache] = cacheRow(dt, ps.kcRaw, ps.vcRaw, r, dm.kvd)
		row.Out[stage.QK], row.Bits[stage.QK] = scoreRow(ps.scores, dm.nh, P, r)
		row.Out[stage.Softmax], row.Bits[stage.Softmax] = scoreRow(ps.probs, dm.nh, P, r)
		row.KRows, row.VRows = cacheRows(ps.kcVals, ps.vcVals, r+1, dm.kvd)
		// Prefill's masked scores (keys after the query) must be -Inf.
		if bad := maskViolations(ps.scores, dm.nh, P, r); bad != "" {
			row.Issues = append(row.Issues, Issue{stage.QK, Prefill, t, bad})
		}
		ps.rows = append(ps.rows, row)
	}
	return ps, nil
}

// cacheRow returns K row r followed by V row r.
func cacheRow(dt dtype.Dtype, kRaw, vRaw []byte, r, kvd int) ([]float64, []uint32) {
	kv, kb, _ := rows(dt, kRaw, r*kvd, kvd)
	vv, vb, _ := rows(dt, vRaw, r*kvd, kvd)
	return append(kv, vv...), append(kb, vb...)
}

func cacheRows(kc, vc []float64, n, kvd int) (k, v [][]float64) {
	for j := 0; j < n; j++ {
		k = append(k, kc[j*kvd:(j+1)*kvd])
		v = append(v, vc[j*kvd:(j+1)*kvd])
	}
	return k, v
}

// scoreRow extracts [nh, r+1] (keys 0..r of query row r) from [nh, P, P].
func scoreRow(raw []byte, nh, P, r int) ([]float64, []uint32) {
	var vals []float64
	var bits []uint32
	for h := 0; h < nh; h++ {
		v, b, _ := rows(dtype.F32, raw, (h*P+r)*P, r+1)
		vals = append(vals, v...)
		bits = append(bits, b...)
	}
	return vals, bits
}

func maskViolations(raw []byte, nh, P, r int) string {
	for h := 0; h < nh; h++ {
		v, _, _ := rows(dtype.F32, raw, (h*P+r)*P, P)
		for j := r + 1; j < P; j++ {
			if !math.IsInf(v[j], -1) {
				return fmt.Sprintf("masked score [head %d, query %d, key %d] = %v, want -Inf", h, r, j, v[j])
			}
		}
	}
	return ""
}
