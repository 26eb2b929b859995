package harness

import (
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"
	"weak"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/model"
	"github.com/gretacore/parity/internal/parallel"
)

// Weights are one model's layer parameters, every value exactly
// representable in the storage dtype. W is [N, K] row-major.
type Weights struct {
	NormW      []float64 // [hidden]
	Wq, Wk, Wv []float64 // [qdim|kvdim, hidden]
	Wo         []float64 // [hidden, qdim]
	Bq, Bk, Bv []float64 // nil without QKV bias
	// The MLP block (nil for a shape without one): the post-attention
	// norm weight, gate and up [intermediate, hidden], down [hidden,
	// intermediate].
	PostNormW  []float64 // [hidden]
	Wg, Wu, Wd []float64
	// The head (nil unless a case runs it): the final norm weight and the
	// LM head [vocab, hidden].
	FinalNormW []float64 // [hidden]
	Wlm        []float64
}

// Inputs are a case's weights and token activations x [P, hidden].
type Inputs struct {
	W *Weights
	X []float64
	// DecodeX, if set, is chained decode's layer input of each step: a
	// later layer of a layers-mode case, whose decode carries its own
	// residual stream (the layer before's chained mlp_res) while prefill
	// and isolated decode read X (prefill's stream). nil: X's rows.
	DecodeX [][]float64
}

// weightKey is what a case's weights depend on besides the distribution.
// The whole shape, not its name: generated shapes that share a name may
// differ in QKV bias.
type weightKey struct {
	model model.Shape
	dt    dtype.Dtype
	seed  uint64
}

// weightCache keeps the weight sets drawn last, one per (key,
// distribution), the least recently used dropped first: table cases
// iterate S, routes and distributions, in parallel, for one (model, dtype)
// (one key, a set per distribution), and a layers-mode case's routes walk
// the same layers side by side, each layer a key of its own (LayerSeed), so
// that keeping the last key only would draw every layer once per route.
// Every set of the key used last is kept; the others only up to
// weightCacheOlder bytes (real-model weights are 1-4 GB of float64 a set).
var weightCache struct {
	sync.Mutex
	sets    []cachedWeights // least recently used first
	drawing map[pendingKey]chan struct{}
}

type cachedWeights struct {
	key  weightKey
	dist Dist
	w    *Weights
}

// weightCacheOlder bounds the bytes kept of keys other than the last one
// used: on a GPU the table runs a model's three dtypes at once (three
// keys, two and a bit distinct sets each: 11 GB of float64 for an 8B
// model's layer with its MLP), and a layers-mode case walks two routes'
// layers side by side. 16 GB, or an eighth of the host's memory where that
// is less (4 GB on a laptop-sized host).
var weightCacheOlder = min(16<<30, max(2<<30, hostMemory()/8))

// hostMemory is the host's memory in bytes (Linux's MemTotal), or 32 GB
// where it cannot be read.
func hostMemory() int {
	b, err := os.ReadFile("/proc/meminfo")
	if err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.Atoi(f[1]); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 32 << 30
}

// cachedSet returns the set of (key, dist) and marks it used, or nil.
// The caller holds weightCache's lock.
func cachedSet(key weightKey, dist Dist) *Weights {
	sets := weightCache.sets
	for i, e := range sets {
		if e.key == key && e.dist == dist {
			copy(sets[i:], sets[i+1:])
			sets[len(sets)-1] = e
			return e.w
		}
	}
	return nil
}

// keepSet stores w as (key, dist)'s set, the most recently used, and drops
// the least recently used sets of other keys beyond weightCacheOlder.
// The caller holds weightCache's lock.
func keepSet(key weightKey, dist Dist, w *Weights) {
	sets := weightCache.sets[:0]
	for _, e := range weightCache.sets {
		if e.key != key || e.dist != dist {
			sets = append(sets, e)
		}
	}
	sets = append(sets, cachedWeights{key, dist, w})
	older := 0
	for _, e := range sets {
		if e.key != key {
			older += 8 * e.w.values()
		}
	}
	kept := sets[:0]
	for _, e := range sets {
		if e.key != key && older > weightCacheOlder {
			older -= 8 * e.w.values()
			continue
		}
		kept = append(kept, e)
	}
	clear(sets[len(kept):])
	weightCache.sets = kept
}

// internSet makes each tensor of w that holds the same values, bit for bit,
// as a tensor of another cached set of the same key that very slice: the
// outliers distribution changes the activations only, and large_qk only Wq,
// Wk and their biases, so of a (model, dtype)'s four sets two and a bit are
// distinct. Shared slices are one copy on the host, on the device
// (deviceWeights keys tensors by their slice) and in the reference device's
// cache. w is not handed out yet; the caller holds weightCache's lock.
func internSet(key weightKey, dist Dist, w *Weights) {
	for _, f := range w.tensors() {
		if len(*f) == 0 {
			continue
		}
	sets:
		for _, e := range weightCache.sets {
			if e.key != key || e.dist == dist {
				continue
			}
			for _, g := range e.w.tensors() {
				if len(*g) == len(*f) && unsafe.SliceData(*g) != unsafe.SliceData(*f) && sameBits(*g, *f) {
					*f = *g
					break sets
				}
			}
		}
	}
}

// tensors lists pointers to every tensor of the set.
func (w *Weights) tensors() []*[]float64 {
	return []*[]float64{&w.NormW, &w.Wq, &w.Wk, &w.Wv, &w.Wo, &w.Bq, &w.Bk, &w.Bv, &w.PostNormW, &w.Wg, &w.Wu, &w.Wd, &w.FinalNormW, &w.Wlm}
}

// sameBits reports whether a and b (of one length) hold the same bits.
func sameBits(a, b []float64) bool {
	ua := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(a))), len(a))
	ub := unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), len(b))
	return slices.Equal(ua, ub)
}

// values is the number of float64 values the set holds.
func (w *Weights) values() int {
	n := 0
	for _, t := range [][]float64{w.NormW, w.Wq, w.Wk, w.Wv, w.Wo, w.Bq, w.Bk, w.Bv, w.PostNormW, w.Wg, w.Wu, w.Wd, w.FinalNormW, w.Wlm} {
		n += len(t)
	}
	return n
}

// gen draws values of a distribution, rounded to the storage dtype.
type gen struct {
	r    *rand.Rand
	dt   dtype.Dtype
	dist Dist
}

// fillChunk is the number of values drawn from one PCG stream: large
// tensors are drawn in parallel chunks, each from its own stream seeded by
// (the generator's next value, chunk index), so the values do not depend on
// the number of cores.
const fillChunk = 1 << 18

// fill draws n values: standard normals, |v| for DistPositive, times
// scale, rounded to the dtype (each chunk rounded in place while still in
// the core's cache).
func (g gen) fill(n int, scale float64) []float64 {
	out := make([]float64, n)
	drawNormals(out, g.r.Uint64(), func(lo, hi int) { g.round(out[lo:hi], out[lo:hi], scale) })
	return out
}

// fillShared is fill for the large weight tensors: the same values, from
// standard normals shared with the other dtypes and distributions (see
// rawCache). A tensor whose values another set already holds (same
// normals, dtype, scale and sign rule: the outliers set's every tensor, the
// large_qk set's all but Wq and Wk) is that set's very slice (roundedCache),
// not rounded again.
func (g gen) fillShared(n int, scale float64) []float64 {
	key := roundedKey{g.r.Uint64(), n, g.dt, scale, g.dist == DistPositive}
	return roundedCache.get(key, func() []float64 {
		out := make([]float64, n)
		if raw := cachedNormals(key.base, n, func(raw []float64, lo, hi int) {
			g.round(out[lo:hi], raw[lo:hi], scale)
		}); raw != nil {
			parallel.For(n, roundCost, func(lo, hi int) { g.round(out[lo:hi], raw[lo:hi], scale) })
		}
		return out
	})
}

// roundedCache keeps fillShared's outputs by what determines them, weakly:
// an entry lives as long as some weight set holds its slice. Rounding a
// model's large tensors once per set cost a quarter of a GPU table's host
// time (gen.round, 95-143 of 470-560 CPU-seconds), most of it on values
// another set of the same (model, dtype) already held, often drawn at the
// same time by another case: a caller that finds the slice being made
// waits for it.
var roundedCache = roundedSlices{m: map[roundedKey]*roundedEntry{}}

type roundedSlices struct {
	sync.Mutex
	m map[roundedKey]*roundedEntry
}

type roundedKey struct {
	base     uint64 // the normals' stream (rawCache)
	n        int
	dt       dtype.Dtype
	scale    float64
	positive bool // |normal| (DistPositive)
}

type roundedEntry struct {
	ready chan struct{} // closed once p is set
	p     weak.Pointer[float64]
}

// get returns key's slice: the one a set still holds, the one another
// caller is making (once made), or draw's.
func (c *roundedSlices) get(key roundedKey, draw func() []float64) []float64 {
	c.Lock()
	if e := c.m[key]; e != nil {
		c.Unlock()
		<-e.ready
		if p := e.p.Value(); p != nil {
			return unsafe.Slice(p, key.n)
		}
		c.Lock()
		if c.m[key] == e {
			delete(c.m, key) // no set holds it any more: make it again
		}
		c.Unlock()
		return c.get(key, draw)
	}
	if len(c.m) >= 1024 {
		for k, e := range c.m {
			select {
			case <-e.ready:
				if e.p.Value() == nil {
					delete(c.m, k)
				}
			default:
			}
		}
	}
	e := &roundedEntry{ready: make(chan struct{})}
	c.m[key] = e
	c.Unlock()
	defer close(e.ready) // also if draw panics: the waiters draw again
	out := draw()
	e.p = weak.Make(unsafe.SliceData(out))
	return out
}

// drawNormals fills out with standard normals, chunk c of fillChunk values
// from PCG(base, c), the chunks in parallel, and calls then(lo, hi) on each
// chunk once drawn.
func drawNormals(out []float64, base uint64, then func(lo, hi int)) {
	n := len(out)
	chunks := (n + fillChunk - 1) / fillChunk
	parallel.For(chunks, fillChunk*drawCost, func(clo, chi int) {
		for c := clo; c < chi; c++ {
			r := rand.New(rand.NewPCG(base, uint64(c)))
			lo, hi := c*fillChunk, min((c+1)*fillChunk, n)
			for i := lo; i < hi; i++ {
				out[i] = r.NormFloat64()
			}
			then(lo, hi)
		}
	})
}

// round writes dst[i] = Round(|raw[i]| (DistPositive) or raw[i], times
// scale); dst may be raw.
func (g gen) round(dst, raw []float64, scale float64) {
	if g.dist == DistPositive {
		for i, v := range raw {
			dst[i] = g.dt.Round(math.Abs(v) * scale)
		}
		return
	}
	for i, v := range raw {
		dst[i] = g.dt.Round(v * scale)
	}
}

// drawCost is a value's normal draw and rounding in parallel.For's work
// units (multiply-adds): about 20 ns.
const drawCost = 20

// roundCost is a value's scaling and rounding: a few ns.
const roundCost = 4

// rawCache keeps the standard normals of the large weight tensors (Wq, Wk,
// Wv, Wo, Wg, Wu, Wd, Wlm), keyed by their stream base and length, the least
// recently used dropped first beyond rawCacheBytes. Those normals depend on
// neither the dtype nor the distribution (the stream bases come from the
// layer seed, or the case's for the head, and fixed stream constants, and
// every generator draws the same sequence before them), and the GPU table draws 3 dtypes x 5
// distributions = 15 sets per model from them: drawing each set afresh
// spent 340 of the table's 3012 CPU-seconds in gen.fill (152 s of them in
// NormFloat64). With the cache each set is one pass of
// Round(transform(raw)·scale) and the normals are drawn once per (model
// shape, layer seed); a value is a pure function of (base, n, index), so a
// cached slice can never stand in for a different one.
var rawCache struct {
	sync.Mutex
	entries []rawNormals // least recently used first
}

type rawNormals struct {
	base uint64
	v    []float64
}

// rawCacheBytes bounds the cached normals (float64, 8 bytes a value), the
// memory this cache costs on top of weightCache's derived sets: a real
// model's layer is about 1.7 GB of them (Llama-3-8B: 218 M values) and its
// LM head 4.2-4.4 GB, so 6 GiB keeps the last two layers of a layers-mode
// walk, or a layer and its head. The tiny table shapes take kilobytes.
// The slice used last is kept whatever its size.
var rawCacheBytes = 6 << 30 // a variable: the eviction test shrinks it

// cachedNormals returns the n standard normals of stream base from
// rawCache, or, when they are not there, draws them into the cache (as
// drawNormals), calls then(raw, lo, hi) on each chunk once drawn, and
// returns nil. The slice returned is shared: never written to.
func cachedNormals(base uint64, n int, then func(raw []float64, lo, hi int)) []float64 {
	rawCache.Lock()
	defer rawCache.Unlock()
	es := rawCache.entries
	for i, e := range es {
		if e.base == base && len(e.v) == n {
			copy(es[i:], es[i+1:])
			es[len(es)-1] = e
			return e.v
		}
	}
	v := make([]float64, n)
	drawNormals(v, base, func(lo, hi int) { then(v, lo, hi) })
	es = append(es, rawNormals{base, v})
	total := 0
	for _, e := range es {
		total += 8 * len(e.v)
	}
	drop := 0
	for total > rawCacheBytes && drop < len(es)-1 {
		total -= 8 * len(es[drop].v)
		drop++
	}
	rawCache.entries = append(es[:0], es[drop:]...)
	clear(es[len(es)-drop:])
	return nil
}

// NewInputs draws the case's inputs deterministically from its seed:
// weights from (model, dtype, dist, seed), activations from (seed, P).
func NewInputs(c Case) *Inputs {
	m := c.Model
	key := weightKey{m, c.Dtype, LayerSeed(c.Seed, c.Layer)}
	w := weightSet(c, key)
	g := gen{rand.New(rand.NewPCG(c.Seed, uint64(c.P())<<32|0x5eed)), c.Dtype, c.Dist}
	x := g.fill(c.P()*m.Hidden, 1)
	if c.Dist == DistOutliers {
		// A few hidden channels 100x larger in every token, as in real
		// LLM activations; channel choice is part of the seed.
		// Distinct channels: a channel drawn twice would be scaled 10^4
		// and overflow f16 (a generator bug the GPU soak found).
		for _, ch := range g.r.Perm(m.Hidden)[:min(3, m.Hidden)] {
			for t := 0; t < c.P(); t++ {
				x[t*m.Hidden+ch] = c.Dtype.Round(x[t*m.Hidden+ch] * 100)
			}
		}
	}
	return &Inputs{W: w, X: x}
}

// weightSet returns c's weight set from weightCache, drawing what it lacks
// (the set, its MLP, its head) outside the cache's lock: the other cases of
// a table, of other sets, need not wait for a draw; a case that needs the
// set being drawn waits for that draw (drawing) instead of drawing it again.
func weightSet(c Case, key weightKey) *Weights {
	m := c.Model
	pk := pendingKey{key, c.Dist}
	for {
		weightCache.Lock()
		w := cachedSet(key, c.Dist)
		if w != nil && (!c.RunsMLP() || w.Wg != nil) && (!c.RunsHead() || w.Wlm != nil) {
			keepSet(key, c.Dist, w)
			weightCache.Unlock()
			return w
		}
		if ch := weightCache.drawing[pk]; ch != nil {
			weightCache.Unlock()
			<-ch
			continue
		}
		ch := make(chan struct{})
		if weightCache.drawing == nil {
			weightCache.drawing = map[pendingKey]chan struct{}{}
		}
		weightCache.drawing[pk] = ch
		weightCache.Unlock()

		if w == nil {
			w = newWeights(m, c.Dtype, c.Dist, key.seed)
		}
		if c.RunsMLP() && w.Wg == nil {
			// The MLP's weights are drawn when a case first needs them
			// (an attn-only case does not), into a new set: a set already
			// handed out is never written to.
			full := *w
			addMLPWeights(&full, m, c.Dtype, c.Dist, key.seed)
			w = &full
		}
		if c.RunsHead() && w.Wlm == nil {
			full := *w
			addHeadWeights(&full, m, c.Dtype, c.Dist, c.Seed)
			w = &full
		}
		weightCache.Lock()
		internSet(key, c.Dist, w)
		keepSet(key, c.Dist, w)
		delete(weightCache.drawing, pk)
		close(ch)
		weightCache.Unlock()
		return w
	}
}

// pendingKey names a set being drawn.
type pendingKey struct {
	key  weightKey
	dist Dist
}

func newWeights(m model.Shape, dt dtype.Dtype, dist Dist, seed uint64) *Weights {
	g := gen{rand.New(rand.NewPCG(seed, 0x77e1647)), dt, dist}
	h, qd, kvd := m.Hidden, m.QDim(), m.KVDim()
	w := &Weights{}
	// RMSNorm weight near 1 (never zero-centred: that would hide scaling).
	w.NormW = make([]float64, h)
	for i := range w.NormW {
		w.NormW[i] = dt.Round(1 + 0.1*g.r.NormFloat64())
	}
	// 1/sqrt(K) keeps projection outputs O(1) for O(1) inputs.
	qkScale := 1.0
	if dist == DistLargeQK {
		// |q|,|k| ~ 128 per element: scores ~ 128²·√d·scale ≈ 1.6e4, near
		// the f16 range and far past expf's overflow at 88.
		qkScale = 128
	}
	w.Wq = g.fillShared(qd*h, qkScale/math.Sqrt(float64(h)))
	w.Wk = g.fillShared(kvd*h, qkScale/math.Sqrt(float64(h)))
	w.Wv = g.fillShared(kvd*h, 1/math.Sqrt(float64(h)))
	w.Wo = g.fillShared(h*qd, 1/math.Sqrt(float64(qd)))
	if m.QKVBias {
		w.Bq = g.fill(qd, 0.5*qkScale)
		w.Bk = g.fill(kvd, 0.5*qkScale)
		w.Bv = g.fill(kvd, 0.5)
	}
	return w
}

// LayerSeed is the seed of layer l's weights in a layers-mode case: layer 0
// keeps the case's seed (a one-layer case is layer 0 of any depth, with the
// same weights), every other layer its own stream (splitmix64 of the seed
// and the layer), so that no two layers share weights.
func LayerSeed(seed uint64, l int) uint64 {
	if l == 0 {
		return seed
	}
	z := seed + uint64(l)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// addHeadWeights draws the head's weights into w from the case's seed (one
// head per model, whatever the depth): the final norm weight as the
// post-attention one (offset + w near 1), the LM head scaled as the other
// projections (1/sqrt(hidden): logits O(1)).
func addHeadWeights(w *Weights, m model.Shape, dt dtype.Dtype, dist Dist, seed uint64) {
	g := gen{rand.New(rand.NewPCG(seed, 0x4ead)), dt, dist}
	h := m.Hidden
	w.FinalNormW = make([]float64, h)
	for i := range w.FinalNormW {
		w.FinalNormW[i] = dt.Round(1 - m.NormWeightOffset + 0.1*g.r.NormFloat64())
	}
	sc := 1 / math.Sqrt(float64(h))
	if dist == DistPositive {
		sc = 1 / float64(h)
	}
	w.Wlm = g.fillShared(m.VocabSize*h, sc)
}

// addMLPWeights draws the MLP block's weights into w, from their own
// stream: the attention block's values do not depend on whether a case
// runs the MLP.
func addMLPWeights(w *Weights, m model.Shape, dt dtype.Dtype, dist Dist, seed uint64) {
	g := gen{rand.New(rand.NewPCG(seed, 0x3e1f7a11)), dt, dist}
	h := m.Hidden
	if inter := m.IntermediateSize; inter > 0 {
		// The post-attention norm's effective weight offset + w is near 1,
		// as for x_norm: Gemma's stored w is near 0, so dropping its 1 is
		// a visible fault.
		w.PostNormW = make([]float64, h)
		for i := range w.PostNormW {
			w.PostNormW[i] = dt.Round(1 - m.NormWeightOffset + 0.1*g.r.NormFloat64())
		}
		// 1/sqrt(K) keeps the outputs O(1), as for the attention
		// projections. Positive inputs add up instead of cancelling: 1/K
		// there, or gate·up grows as K and down_proj over 14336 such
		// products would overflow f16.
		sc := func(k int) float64 {
			if dist == DistPositive {
				return 1 / float64(k)
			}
			return 1 / math.Sqrt(float64(k))
		}
		w.Wg = g.fillShared(inter*h, sc(h))
		w.Wu = g.fillShared(inter*h, sc(h))
		w.Wd = g.fillShared(h*inter, sc(inter))
	}
}
