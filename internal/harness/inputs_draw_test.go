package harness

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/model"
	"github.com/gretacore/parity/internal/parallel"
	"github.com/x448/float16"
)

// The weight generator as it was before the normals were shared (every set
// drawn afresh, each value drawn, transformed and rounded in one step): the
// oracle the shared draws must match bit for bit.

func oracleFill(g gen, n int, scale float64) []float64 {
	out := make([]float64, n)
	base := g.r.Uint64()
	chunks := (n + fillChunk - 1) / fillChunk
	parallel.For(chunks, fillChunk*30, func(lo, hi int) {
		for c := lo; c < hi; c++ {
			r := rand.New(rand.NewPCG(base, uint64(c)))
			end := min((c+1)*fillChunk, n)
			for i := c * fillChunk; i < end; i++ {
				v := r.NormFloat64()
				if g.dist == DistPositive {
					v = math.Abs(v)
				}
				out[i] = oracleRound(g.dt, v*scale)
			}
		}
	})
	return out
}

// oracleRound is dtype.Round as it was: f16 through github.com/x448/float16
// (the dtype package's tests prove the two equal on every boundary; here
// it makes the benchmark's "before" the real before).
func oracleRound(dt dtype.Dtype, v float64) float64 {
	if dt == dtype.F16 {
		return float64(float16.Fromfloat32(float32(v)).Float32())
	}
	return dt.Round(v)
}

func oracleWeights(m model.Shape, dt dtype.Dtype, dist Dist, seed, headSeed uint64) *Weights {
	g := gen{rand.New(rand.NewPCG(seed, 0x77e1647)), dt, dist}
	h, qd, kvd := m.Hidden, m.QDim(), m.KVDim()
	w := &Weights{NormW: make([]float64, h)}
	for i := range w.NormW {
		w.NormW[i] = dt.Round(1 + 0.1*g.r.NormFloat64())
	}
	qkScale := 1.0
	if dist == DistLargeQK {
		qkScale = 128
	}
	w.Wq = oracleFill(g, qd*h, qkScale/math.Sqrt(float64(h)))
	w.Wk = oracleFill(g, kvd*h, qkScale/math.Sqrt(float64(h)))
	w.Wv = oracleFill(g, kvd*h, 1/math.Sqrt(float64(h)))
	w.Wo = oracleFill(g, h*qd, 1/math.Sqrt(float64(qd)))
	if m.QKVBias {
		w.Bq = oracleFill(g, qd, 0.5*qkScale)
		w.Bk = oracleFill(g, kvd, 0.5*qkScale)
		w.Bv = oracleFill(g, kvd, 0.5)
	}
	sc := func(k int) float64 {
		if dist == DistPositive {
			return 1 / float64(k)
		}
		return 1 / math.Sqrt(float64(k))
	}
	g = gen{rand.New(rand.NewPCG(seed, 0x3e1f7a11)), dt, dist}
	if inter := m.IntermediateSize; inter > 0 {
		w.PostNormW = make([]float64, h)
		for i := range w.PostNormW {
			w.PostNormW[i] = dt.Round(1 - m.NormWeightOffset + 0.1*g.r.NormFloat64())
		}
		w.Wg = oracleFill(g, inter*h, sc(h))
		w.Wu = oracleFill(g, inter*h, sc(h))
		w.Wd = oracleFill(g, h*inter, sc(inter))
	}
	g = gen{rand.New(rand.NewPCG(headSeed, 0x4ead)), dt, dist}
	w.FinalNormW = make([]float64, h)
	for i := range w.FinalNormW {
		w.FinalNormW[i] = dt.Round(1 - m.NormWeightOffset + 0.1*g.r.NormFloat64())
	}
	w.Wlm = oracleFill(g, m.VocabSize*h, sc(h))
	return w
}

// TestSharedNormalsMatchOracle: every tensor of every (model, dtype, dist,
// layer) set that NewInputs derives from the shared normals, and the
// activations, are bit-identical to drawing the set afresh as before, the
// later sets coming from the cache (checked: the normals are not drawn
// again).
func TestSharedNormalsMatchOracle(t *testing.T) {
	wide := softModel(t, "tiny-k90") // tensors of several fillChunk chunks
	wide.Name, wide.IntermediateSize, wide.VocabSize = "tiny-k90-wide", 6000, 6000
	for _, m := range []model.Shape{softModel(t, "tiny-k90"), softModel(t, "tiny-qwen"), softModel(t, "tiny-gqa3"), wide} {
		name := m.Name
		for _, dt := range dtype.All {
			for _, dist := range Dists {
				for _, layer := range []int{0, 2} {
					c := Case{Model: m, S: 5, Steps: 2, Dtype: dt, Route: gpapi.RouteAuto, Seed: 42, Dist: dist, Layers: 3, Layer: layer, Head: true}
					in := NewInputs(c)
					want := oracleWeights(m, dt, dist, LayerSeed(c.Seed, layer), c.Seed)
					for tn, pair := range map[string][2][]float64{
						"NormW": {in.W.NormW, want.NormW}, "Wq": {in.W.Wq, want.Wq}, "Wk": {in.W.Wk, want.Wk}, "Wv": {in.W.Wv, want.Wv}, "Wo": {in.W.Wo, want.Wo},
						"Bq": {in.W.Bq, want.Bq}, "Bk": {in.W.Bk, want.Bk}, "Bv": {in.W.Bv, want.Bv},
						"PostNormW": {in.W.PostNormW, want.PostNormW}, "Wg": {in.W.Wg, want.Wg}, "Wu": {in.W.Wu, want.Wu}, "Wd": {in.W.Wd, want.Wd},
						"FinalNormW": {in.W.FinalNormW, want.FinalNormW}, "Wlm": {in.W.Wlm, want.Wlm},
					} {
						if !sameBits(pair[0], pair[1]) {
							t.Errorf("%s %v %v layer %d: %s differs from drawing the set afresh", name, dt, dist, layer, tn)
						}
					}
					g := gen{rand.New(rand.NewPCG(c.Seed, uint64(c.P())<<32|0x5eed)), dt, dist}
					if x := oracleFill(g, c.P()*m.Hidden, 1); dist != DistOutliers && !sameBits(in.X, x) {
						t.Errorf("%s %v %v: activations differ from drawing them afresh", name, dt, dist)
					}
				}
			}
		}
	}
	// The normals of a tensor seen above are cached: asked again, the very
	// same slice comes back.
	rawCache.Lock()
	e := rawCache.entries[len(rawCache.entries)-1]
	rawCache.Unlock()
	if v := cachedNormals(e.base, len(e.v), nil); v == nil || &v[0] != &e.v[0] {
		t.Error("cached normals drawn again")
	}
}

// TestSharedNormalsEviction: beyond rawCacheBytes the least recently used
// normals go first, a slice just used stays, and the one used last is kept
// even when it alone is over the bound.
func TestSharedNormalsEviction(t *testing.T) {
	defer func(limit int) { rawCacheBytes = limit }(rawCacheBytes)
	rawCache.Lock()
	rawCache.entries = nil
	rawCache.Unlock()
	rawCacheBytes = 3 * 8 * 100
	use := func(base uint64, n int) { cachedNormals(base, n, func([]float64, int, int) {}) }
	for b := uint64(1); b <= 3; b++ {
		use(b, 100)
	}
	use(1, 100) // used again: 2 is now the oldest
	use(4, 100) // over the bound: 2 goes
	bases := func() string {
		rawCache.Lock()
		defer rawCache.Unlock()
		var s []uint64
		for _, e := range rawCache.entries {
			s = append(s, e.base)
		}
		return fmt.Sprint(s)
	}
	if got := bases(); got != "[3 1 4]" {
		t.Errorf("cached bases %s, want [3 1 4] (least recently used first, 2 dropped)", got)
	}
	use(5, 1000) // alone over the bound: kept, every other dropped
	if got := bases(); got != "[5]" {
		t.Errorf("cached bases %s, want [5]", got)
	}
}

// A layer's worth of normals of a mid-sized shape, for the benchmarks.
const benchDrawN = 1 << 22

// BenchmarkDrawWeights compares, per value on GOMAXPROCS cores, a weight
// tensor's draw as before (oracleFill: draw, transform and round each
// value, f16 rounding through x448), fill now (activations: draw and round
// in one pass), the first set of a (model, layer) (fillShared missing the
// cache: draw, keep the normals, round), and each of the 14 other sets of
// the table's 3 dtypes x 5 distributions (fillShared hitting the cache:
// transform and round only).
func BenchmarkDrawWeights(b *testing.B) {
	perValue := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchDrawN, "ns/value")
	}
	for _, dt := range []dtype.Dtype{dtype.F16, dtype.BF16} {
		g := gen{rand.New(rand.NewPCG(1, 2)), dt, DistNormal}
		b.Run(fmt.Sprintf("%v/old_fill", dt), func(b *testing.B) {
			for b.Loop() {
				oracleFill(g, benchDrawN, 0.01)
			}
			perValue(b)
		})
		b.Run(fmt.Sprintf("%v/new_fill", dt), func(b *testing.B) {
			for b.Loop() {
				g.fill(benchDrawN, 0.01)
			}
			perValue(b)
		})
		b.Run(fmt.Sprintf("%v/new_shared_miss", dt), func(b *testing.B) {
			for b.Loop() {
				rawCache.Lock()
				rawCache.entries = nil
				rawCache.Unlock()
				g.fillShared(benchDrawN, 0.01)
			}
			perValue(b)
		})
		b.Run(fmt.Sprintf("%v/new_shared_hit", dt), func(b *testing.B) {
			// The same stream each time: the same base, a cache hit.
			g := func() gen { return gen{rand.New(rand.NewPCG(3, 4)), dt, DistNormal} }
			g().fillShared(benchDrawN, 0.01)
			for b.Loop() {
				g().fillShared(benchDrawN, 0.01)
			}
			perValue(b)
		})
	}
}
