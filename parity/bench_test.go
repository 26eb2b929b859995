package parity

// Kernel benchmarks (issue 6): every entry point and every route of the
// kernel library under test, against the card's limits and the vendor GEMM.
//
//	go test ./parity -tags cuda -run '^$' -bench . -benchtime 100ms
//	build/parity.test -test.run '^$' -test.bench . -test.benchtime 100ms -parity.lib ...
//
// Method:
//   - launches are asynchronous, so each timed loop queues b.N launches and
//     ends with one gp_synchronize (inside the timer); a warm-up of a few
//     launches and a synchronize come first, outside it;
//   - inputs are random values (never zeros, magnitudes in [0.25, 1)), and
//     the bandwidth-bound cases rotate among several input sets whose total
//     is at least benchRotateBytes, larger than the L2 cache of any current
//     GPU (H100 50 MB, H200 60 MB, MI300X 256 MB of Infinity Cache aside), so
//     the weights and the KV cache come from device memory as in an engine;
//   - anchors measured in the same process: gp_memcpy_d2d of a 1 GiB buffer
//     (the bandwidth ceiling, bytes read + written: %copy) and the BLAS route
//     on the same shape (the vendor GEMM: %vendor). A backend without a
//     vendor BLAS (the CPU) reports no %vendor. With
//     -parity.bench.anchor-lib, a second library's gp_attention (e.g. the
//     PyTorch adapter's SDPA) at the decode attention shapes: %anchor.
//
// Metrics (b.ReportMetric): GB/s = the bytes a kernel must move (each input
// read once, each output written once) per second; TFLOP/s = 2*M*N*K per
// second; %copy = GB/s over the copy's GB/s; %vendor = TFLOP/s over the BLAS
// route's TFLOP/s at the same shape and dtype; %anchor = the fused
// attention's GB/s over the anchor library's at the same shape and dtype.

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
)

// benchRotateBytes: input sets are rotated until at least this many bytes
// are touched per rotation (4x the largest L2 of the targets).
const benchRotateBytes = 256 << 20

// benchMaxSets caps the number of rotated input sets.
const benchMaxSets = 64

// benchWarmup launches precede every timed loop.
const benchWarmup = 3

// projection shapes N x K of the model fixtures and their MLPs.
var benchProjections = []struct {
	name string
	N, K int
}{
	{"llama3-8b.q_proj.4096x4096", 4096, 4096},
	{"llama3-8b.kv_proj.1024x4096", 1024, 4096},
	{"llama3-8b.mlp_up.14336x4096", 14336, 4096},
	{"llama3-8b.mlp_down.4096x14336", 4096, 14336},
	{"qwen2-7b.q_proj.3584x3584", 3584, 3584},
	// the other fixtures' MLP projections (issue 13's GEMM and GEMV targets)
	{"qwen2-7b.mlp_up.18944x3584", 18944, 3584},
	{"qwen2-7b.mlp_down.3584x18944", 3584, 18944},
	{"llama2-7b.mlp_up.11008x4096", 11008, 4096},
	{"llama2-7b.mlp_down.4096x11008", 4096, 11008},
	{"phi3-mini.mlp_up.8192x3072", 8192, 3072},
	{"phi3-mini.mlp_down.3072x8192", 3072, 8192},
	{"gemma-2b.mlp_up.16384x2048", 16384, 2048},
	{"gemma-2b.mlp_down.2048x16384", 2048, 16384},
}

var benchM = []int{1, 16, 128, 512, 2048}

var benchDtypes = []dtype.Dtype{dtype.F16, dtype.BF16}

// benchKV: decode attention KV lengths (llama3-8b: 32 heads, 8 KV heads,
// head_dim 128).
var benchKV = []int{512, 1024, 2048, 4096, 8192, 16384, 32768}

const (
	benchHeads   = 32
	benchKVHeads = 8
	benchHeadDim = 128
)

// ---- anchors ---------------------------------------------------------------

var flagBenchAnchorLib = flag.String("parity.bench.anchor-lib", "",
	"BenchmarkDecodeAttention: also time this library's gp_attention at the same shapes (sub-benchmark fused-anchor, and %anchor on fused), e.g. the PyTorch adapter build/libgreta_parity_torch.so, whose gp_attention is SDPA (adapters/torch, docs/ENGINES.md); default: no anchor")

// benchAnchorLib opens -parity.bench.anchor-lib once per process: nil
// without the flag; a library that cannot be opened fails the benchmark
// (the flag asked for it).
var benchAnchorLib struct {
	once sync.Once
	lib  *gpapi.Lib
	err  error
}

func anchorLib(tb testing.TB) *gpapi.Lib {
	tb.Helper()
	if *flagBenchAnchorLib == "" {
		return nil
	}
	benchAnchorLib.once.Do(func() {
		lib, err := gpapi.Open(*flagBenchAnchorLib)
		if err == nil {
			var n int
			if n, err = lib.DeviceCount(); err == nil && n == 0 {
				err = fmt.Errorf("gp_device_count = 0")
			}
		}
		if err != nil {
			benchAnchorLib.err = fmt.Errorf("-parity.bench.anchor-lib=%s: %w", *flagBenchAnchorLib, err)
			return
		}
		benchAnchorLib.lib = lib
	})
	if benchAnchorLib.err != nil {
		tb.Fatal(benchAnchorLib.err)
	}
	return benchAnchorLib.lib
}

var benchAnchors struct {
	copyOnce sync.Once
	copyGBs  float64 // gp_memcpy_d2d, bytes read + written per second / 1e9
	copyErr  error

	mu     sync.Mutex
	vendor map[string]float64 // BLAS TFLOP/s by linearKey; 0 = unsupported
	fused  map[string]float64 // anchor library's gp_attention ns per call by dtype/kv; 0 = failed
}

// benchPool returns size bytes of random dtype values (never zero), the
// same for every call with the same seed.
var benchPools sync.Map // dtype -> []byte

func benchPool(dt dtype.Dtype) []byte {
	if p, ok := benchPools.Load(dt); ok {
		return p.([]byte)
	}
	const n = 4 << 20 // elements
	r := rand.New(rand.NewPCG(6, uint64(dt)))
	vals := make([]float64, n)
	for i := range vals {
		v := 0.25 + 0.75*r.Float64()
		if r.IntN(2) == 0 {
			v = -v
		}
		vals[i] = v
	}
	p := dt.Encode(vals)
	benchPools.Store(dt, p)
	return p
}

// benchRandom fills bytes from the pool of dt, starting at an offset that
// depends on salt, so that rotated sets differ.
func benchRandom(dt dtype.Dtype, bytes int, salt int) []byte {
	pool := benchPool(dt)
	out := make([]byte, bytes)
	es := dt.Size()
	off := (salt * 7919 * es) % len(pool)
	for i := 0; i < bytes; {
		i += copy(out[i:], pool[off:])
		off = 0
	}
	return out
}

// benchF32Random: f32 values in [lo, hi), for probabilities and scores.
func benchF32Random(n int, lo, hi float64, salt int) []byte {
	r := rand.New(rand.NewPCG(uint64(salt), 99))
	vals := make([]float64, n)
	for i := range vals {
		vals[i] = lo + (hi-lo)*r.Float64()
	}
	return dtype.F32.Encode(vals)
}

type benchBufs struct {
	lib  *gpapi.Lib
	bufs []*gpapi.Buffer
}

func (bb *benchBufs) alloc(tb testing.TB, name string, data []byte) uintptr {
	tb.Helper()
	buf, err := bb.lib.Alloc(name, len(data))
	if err != nil {
		tb.Fatal(err)
	}
	bb.bufs = append(bb.bufs, buf)
	if err := buf.Write(data); err != nil {
		tb.Fatal(err)
	}
	return buf.Ptr
}

func (bb *benchBufs) free() {
	for _, b := range bb.bufs {
		_ = b.Free()
	}
	bb.bufs = nil
}

// benchSets: how many input sets of setBytes each to rotate among.
func benchSets(setBytes int) int {
	n := (benchRotateBytes + setBytes - 1) / setBytes
	return max(2, min(n, benchMaxSets))
}

// timeLoop queues n launches of f after a warm-up, synchronizes, and
// returns the time per launch.
func timeLoop(lib *gpapi.Lib, n int, f func(i int) error) (time.Duration, error) {
	for i := 0; i < benchWarmup; i++ {
		if err := f(i); err != nil {
			return 0, err
		}
	}
	if err := lib.Synchronize(); err != nil {
		return 0, err
	}
	t0 := time.Now()
	for i := 0; i < n; i++ {
		if err := f(i); err != nil {
			return 0, err
		}
	}
	if err := lib.Synchronize(); err != nil {
		return 0, err
	}
	return time.Since(t0) / time.Duration(n), nil
}

// benchLoop is the timed loop of a benchmark: warm-up outside the timer,
// then b.N launches and one synchronize inside it. Returns ns per launch;
// a failing call fails the benchmark.
func benchLoop(b *testing.B, lib *gpapi.Lib, f func(i int) error) float64 {
	b.Helper()
	ns, err := benchLoopErr(b, lib, f)
	if err != nil {
		b.Fatal(err)
	}
	return ns
}

// benchLoopErr is benchLoop returning the first failing call's error.
func benchLoopErr(b *testing.B, lib *gpapi.Lib, f func(i int) error) (float64, error) {
	b.StopTimer()
	for i := 0; i < benchWarmup; i++ {
		if err := f(i); err != nil {
			return 0, err
		}
	}
	if err := lib.Synchronize(); err != nil {
		return 0, err
	}
	b.ResetTimer()
	b.StartTimer()
	for i := 0; i < b.N; i++ {
		if err := f(i); err != nil {
			b.StopTimer()
			return 0, err
		}
	}
	if err := lib.Synchronize(); err != nil {
		b.StopTimer()
		return 0, err
	}
	b.StopTimer()
	return float64(b.Elapsed().Nanoseconds()) / float64(b.N), nil
}

// copyBandwidth measures gp_memcpy_d2d of a 1 GiB buffer (512 MiB on
// failure to allocate), once per process: bytes read + written per second.
func copyBandwidth(tb testing.TB, lib *gpapi.Lib) float64 {
	tb.Helper()
	benchAnchors.copyOnce.Do(func() {
		benchAnchors.copyGBs, benchAnchors.copyErr = measureCopy(lib, 1<<30, 20)
		if benchAnchors.copyErr != nil {
			benchAnchors.copyGBs, benchAnchors.copyErr = measureCopy(lib, 512<<20, 20)
		}
	})
	if benchAnchors.copyErr != nil {
		tb.Fatalf("copy anchor: %v", benchAnchors.copyErr)
	}
	return benchAnchors.copyGBs
}

func measureCopy(lib *gpapi.Lib, bytes, n int) (float64, error) {
	src, err := lib.Alloc("copy src", bytes)
	if err != nil {
		return 0, err
	}
	defer src.Free()
	dst, err := lib.Alloc("copy dst", bytes)
	if err != nil {
		return 0, err
	}
	defer dst.Free()
	if err := src.Write(benchRandom(dtype.F16, bytes, 1)); err != nil {
		return 0, err
	}
	d, err := timeLoop(lib, n, func(int) error { return lib.CopyD2D(dst.Ptr, src.Ptr, bytes) })
	if err != nil {
		return 0, err
	}
	return 2 * float64(bytes) / float64(d.Nanoseconds()), nil
}

// BenchmarkCopyD2D: the bandwidth anchor at several sizes (GB/s = bytes
// read + written). The same buffers every call: sizes whose source and
// destination fit the L2 cache (50 MB on an H200: 16 and 32 MiB measured
// 118 % and 85 % of the 1 GiB copy) are not a DRAM anchor, hence none
// between 8 and 64 MiB.
func BenchmarkCopyD2D(b *testing.B) {
	lib := openLib(b)
	ceiling := copyBandwidth(b, lib)
	for _, mib := range []int{8, 64, 256, 1024} {
		bytes := mib << 20
		b.Run(fmt.Sprintf("bytes=%dMiB", mib), func(b *testing.B) {
			src, err := lib.Alloc("copy src", bytes)
			if err != nil {
				b.Skip(err)
			}
			defer src.Free()
			dst, err := lib.Alloc("copy dst", bytes)
			if err != nil {
				b.Skip(err)
			}
			defer dst.Free()
			if err := src.Write(benchRandom(dtype.F16, bytes, 2)); err != nil {
				b.Fatal(err)
			}
			ns := benchLoop(b, lib, func(int) error { return lib.CopyD2D(dst.Ptr, src.Ptr, bytes) })
			gbs := 2 * float64(bytes) / ns
			b.ReportMetric(gbs, "GB/s")
			b.ReportMetric(100*gbs/ceiling, "%copy")
		})
	}
}

// BenchmarkCopyHost: host-device copies as the harness makes them, in GB/s
// beside the device copy ceiling: one gp_memcpy from Go memory (pageable:
// the runtime bounces it through its own buffer), one from page-locked
// memory (the reference library's gprd_host_alloc: what the link gives),
// and Buffer.Write / Buffer.Read, staged through page-locked chunks when
// the reference library is loaded (the Go-side fill included).
func BenchmarkCopyHost(b *testing.B) {
	lib := openLib(b)
	for _, kib := range []int{4, 16 << 10, 256 << 10} {
		bytes := kib << 10
		dev, err := lib.Alloc("copy host", bytes)
		if err != nil {
			b.Skip(err)
		}
		goMem := benchRandom(dtype.F16, bytes, 3)
		var locked []byte
		if suite.refdev != nil {
			if locked, err = suite.refdev.HostAlloc(bytes); err != nil {
				b.Fatal(err)
			}
			copy(locked, goMem)
		}
		for _, dir := range []string{"h2d", "d2h"} {
			for _, mem := range []string{"go", "locked", "staged"} {
				b.Run(fmt.Sprintf("%s/mem=%s/bytes=%dKiB", dir, mem, kib), func(b *testing.B) {
					var f func(int) error
					switch {
					case mem == "locked" && locked == nil:
						b.Skip("no page-locked memory: the reference library is not loaded (-parity.refdev)")
					case mem == "go" && dir == "h2d":
						f = func(int) error { return lib.CopyH2D(dev.Ptr, goMem) }
					case mem == "go":
						f = func(int) error { return lib.CopyD2H(goMem, dev.Ptr) }
					case mem == "locked" && dir == "h2d":
						f = func(int) error { return lib.CopyH2D(dev.Ptr, locked) }
					case mem == "locked":
						f = func(int) error { return lib.CopyD2H(locked, dev.Ptr) }
					case dir == "h2d":
						f = func(int) error { return dev.Write(goMem) }
					default:
						f = func(int) error { _, err := dev.Read(); return err }
					}
					ns := benchLoop(b, lib, f)
					b.ReportMetric(float64(bytes)/ns, "GB/s")
					b.ReportMetric(ns/1e3, "µs/copy")
				})
			}
		}
		if locked != nil {
			suite.refdev.HostFree(locked)
		}
		dev.Free()
	}
}

// BenchmarkCallOverhead: the purego binding's cost per call, with no GPU
// work (gp_abi_version) and with a synchronize of an idle device.
func BenchmarkCallOverhead(b *testing.B) {
	lib := openLib(b)
	b.Run("gp_abi_version", func(b *testing.B) {
		s := 0
		for i := 0; i < b.N; i++ {
			s += lib.ABIVersionCall()
		}
		if s != b.N*gpapi.ABIVersion {
			b.Fatal("gp_abi_version changed")
		}
	})
	b.Run("gp_synchronize_idle", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if err := lib.Synchronize(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// ---- projections -------------------------------------------------------------

func linearKey(name string, dt dtype.Dtype, m int) string {
	return fmt.Sprintf("%s/%v/M=%d", name, dt, m)
}

// linearFixture: rotated sets of x, W and y for one shape and dtype.
type linearFixture struct {
	bb      benchBufs
	x, w, y []uintptr
	M, N, K int
	dt      dtype.Dtype
}

func newLinearFixture(tb testing.TB, lib *gpapi.Lib, dt dtype.Dtype, M, N, K int) *linearFixture {
	tb.Helper()
	es := dt.Size()
	f := &linearFixture{bb: benchBufs{lib: lib}, M: M, N: N, K: K, dt: dt}
	setBytes := (M*K + N*K + M*N) * es
	sets := benchSets(setBytes)
	for s := 0; s < sets; s++ {
		f.x = append(f.x, f.bb.alloc(tb, "x", benchRandom(dt, M*K*es, 3*s)))
		f.w = append(f.w, f.bb.alloc(tb, "W", benchRandom(dt, N*K*es, 3*s+1)))
		f.y = append(f.y, f.bb.alloc(tb, "y", benchRandom(dt, M*N*es, 3*s+2)))
	}
	return f
}

func (f *linearFixture) launch(lib *gpapi.Lib, route gpapi.Route) func(i int) error {
	return func(i int) error {
		s := i % len(f.x)
		_, err := lib.Linear(int32(f.dt), route, f.x[s], f.w[s], 0, f.y[s], f.M, f.N, f.K)
		return err
	}
}

func (f *linearFixture) bytes() float64 {
	return float64((f.M*f.K + f.N*f.K + f.M*f.N) * f.dt.Size())
}

func (f *linearFixture) flops() float64 { return 2 * float64(f.M) * float64(f.N) * float64(f.K) }

// benchRoutes: the routes measured at M: the BLAS anchor first (its result
// is the %vendor denominator of the others), then MFMA; VALU only where a
// GEMV is meant (M == 1) or still plausible (M == 16).
func benchRoutes(m int) []gpapi.Route {
	if m == 1 {
		return []gpapi.Route{gpapi.RouteBLAS, gpapi.RouteVALU, gpapi.RouteMFMA}
	}
	if m <= 16 {
		return []gpapi.Route{gpapi.RouteBLAS, gpapi.RouteMFMA, gpapi.RouteVALU}
	}
	return []gpapi.Route{gpapi.RouteBLAS, gpapi.RouteMFMA}
}

// vendorTFLOPs returns the BLAS route's TFLOP/s at the fixture's shape
// (measured now if its benchmark has not run), 0 if the backend has none.
func vendorTFLOPs(tb testing.TB, lib *gpapi.Lib, key string, f *linearFixture) float64 {
	benchAnchors.mu.Lock()
	defer benchAnchors.mu.Unlock()
	if benchAnchors.vendor == nil {
		benchAnchors.vendor = map[string]float64{}
	}
	if v, ok := benchAnchors.vendor[key]; ok {
		return v
	}
	v := 0.0
	n := max(3, min(200, int(2e12/f.flops()))) // about 1..10 ms of vendor GEMM
	d, err := timeLoop(lib, n, f.launch(lib, gpapi.RouteBLAS))
	if err == nil {
		v = f.flops() / float64(d.Nanoseconds()) / 1e3
	}
	benchAnchors.vendor[key] = v
	return v
}

// BenchmarkLinear: gp_linear for every projection shape, M, dtype and route.
func BenchmarkLinear(b *testing.B) {
	lib := openLib(b)
	ceiling := copyBandwidth(b, lib)
	for _, p := range benchProjections {
		b.Run(p.name, func(b *testing.B) {
			for _, dt := range benchDtypes {
				b.Run(dt.String(), func(b *testing.B) {
					for _, m := range benchM {
						b.Run(fmt.Sprintf("M=%d", m), func(b *testing.B) {
							benchLinearShape(b, lib, ceiling, p.name, dt, m, p.N, p.K)
						})
					}
				})
			}
		})
	}
}

// benchLinearShape: the routes of one shape (a fixture shared by them).
func benchLinearShape(b *testing.B, lib *gpapi.Lib, ceiling float64, name string, dt dtype.Dtype, m, n, k int) {
	f := newLinearFixture(b, lib, dt, m, n, k)
	defer f.bb.free()
	key := linearKey(name, dt, m)
	for _, route := range benchRoutes(m) {
		b.Run(route.String(), func(b *testing.B) {
			launch := f.launch(lib, route)
			l, err := lib.Linear(int32(dt), route, f.x[0], f.w[0], 0, f.y[0], m, n, k)
			if err != nil {
				if route == gpapi.RouteBLAS {
					b.Skipf("no vendor BLAS on %s: %v", lib.Backend, err)
				}
				b.Fatal(err)
			}
			if l.Route != route {
				b.Fatalf("attested route %v, asked for %v (%s)", l.Route, route, l)
			}
			ns, err := benchLoopErr(b, lib, launch)
			if err != nil {
				if route == gpapi.RouteBLAS {
					// The vendor anchor only: its failure is reported, and
					// the other routes measure their own denominator.
					b.Skipf("vendor BLAS failed on %s (%v): no %%vendor anchor from this benchmark", lib.Backend, err)
				}
				b.Fatal(err)
			}
			gbs := f.bytes() / ns
			tfs := f.flops() / ns / 1e3
			b.ReportMetric(gbs, "GB/s")
			b.ReportMetric(tfs, "TFLOP/s")
			b.ReportMetric(100*gbs/ceiling, "%copy")
			if route == gpapi.RouteBLAS {
				benchAnchors.mu.Lock()
				if benchAnchors.vendor == nil {
					benchAnchors.vendor = map[string]float64{}
				}
				benchAnchors.vendor[key] = tfs
				benchAnchors.mu.Unlock()
				b.ReportMetric(100, "%vendor")
			} else if v := vendorTFLOPs(b, lib, key, f); v > 0 {
				b.ReportMetric(100*tfs/v, "%vendor")
			}
		})
	}
}

// ---- decode attention ----------------------------------------------------------

// attnFixture: rotated sets of one decode step's attention (n_q = 1) over a
// KV cache of nKV tokens: q, K and V caches, scores, probs, out, and the
// fused stage's lse; unfused false leaves out scores and probs (the anchor
// library's buffers: gp_attention only).
type attnFixture struct {
	bb                                   benchBufs
	q, k, v, scores, probs, out, lse     []uintptr
	nKV                                  int
	dt                                   dtype.Dtype
	qBytes, kvBytes, scBytes, oBy, lseBy int
}

func newAttnFixture(tb testing.TB, lib *gpapi.Lib, dt dtype.Dtype, nKV int, unfused bool) *attnFixture {
	tb.Helper()
	es := dt.Size()
	f := &attnFixture{bb: benchBufs{lib: lib}, nKV: nKV, dt: dt}
	f.qBytes = benchHeads * benchHeadDim * es
	f.oBy = f.qBytes
	f.lseBy = benchHeads * 4
	f.kvBytes = nKV * benchKVHeads * benchHeadDim * es
	f.scBytes = benchHeads * nKV * 4
	sets := benchSets(2*f.kvBytes + 2*f.scBytes)
	// probabilities: positive, summing to about 1 per row
	for s := 0; s < sets; s++ {
		f.q = append(f.q, f.bb.alloc(tb, "q", benchRandom(dt, f.qBytes, 6*s)))
		f.k = append(f.k, f.bb.alloc(tb, "k_cache", benchRandom(dt, f.kvBytes, 6*s+1)))
		f.v = append(f.v, f.bb.alloc(tb, "v_cache", benchRandom(dt, f.kvBytes, 6*s+2)))
		if unfused {
			f.scores = append(f.scores, f.bb.alloc(tb, "scores", benchF32Random(benchHeads*nKV, -4, 4, 6*s+3)))
			f.probs = append(f.probs, f.bb.alloc(tb, "probs", benchF32Random(benchHeads*nKV, 0.5/float64(nKV), 1.5/float64(nKV), 6*s+4)))
		}
		f.out = append(f.out, f.bb.alloc(tb, "out", benchRandom(dt, f.oBy, 6*s+5)))
		f.lse = append(f.lse, f.bb.alloc(tb, "lse", benchF32Random(benchHeads, -1, 1, 6*s+5)))
	}
	return f
}

// fusedBytes: gp_attention's q, K and V caches, out and lse, each once.
func (f *attnFixture) fusedBytes() int { return f.qBytes + 2*f.kvBytes + f.oBy + f.lseBy }

// fused: gp_attention of the decode step (query at position nKV-1, causal).
func (f *attnFixture) fused(lib *gpapi.Lib, s int) error {
	_, err := lib.Attention(int32(f.dt), f.q[s], f.k[s], f.v[s], f.out[s], f.lse[s], 1, f.nKV, benchHeads, benchKVHeads, benchHeadDim, f.nKV-1, benchScale, true)
	return err
}

var benchScale = float32(0.08838834764831845) // 1/sqrt(128)

func (f *attnFixture) qk(lib *gpapi.Lib, s int) error {
	_, err := lib.AttnScores(int32(f.dt), f.q[s], f.k[s], f.scores[s], 1, f.nKV, benchHeads, benchKVHeads, benchHeadDim, f.nKV-1, benchScale, true)
	return err
}

func (f *attnFixture) softmax(lib *gpapi.Lib, s int) error {
	_, err := lib.Softmax(f.scores[s], f.probs[s], benchHeads, 1, f.nKV)
	return err
}

func (f *attnFixture) pv(lib *gpapi.Lib, s int) error {
	_, err := lib.AttnPV(int32(f.dt), f.probs[s], f.v[s], f.out[s], 1, f.nKV, benchHeads, benchKVHeads, benchHeadDim)
	return err
}

// BenchmarkDecodeAttention: qk, softmax, pv and the three in sequence
// ("attn") at n_q = 1, llama3-8b heads (32 q, 8 kv, head_dim 128), and
// the fused stage gp_attention ("fused"; skipped where the library lacks
// the fused capability). Bytes: qk reads q and the K cache and writes the
// scores; softmax reads the scores and writes the probs; pv reads the
// probs and the V cache and writes out: each once (the minimum for three
// separate kernels); fused reads q and both caches and writes out and lse.
// With -parity.bench.anchor-lib, "fused-anchor" times that library's
// gp_attention on its own buffers at the same shape (fused's bytes), and
// fused reports %anchor against it.
func BenchmarkDecodeAttention(b *testing.B) {
	lib := openLib(b)
	ceiling := copyBandwidth(b, lib)
	for _, dt := range benchDtypes {
		b.Run(dt.String(), func(b *testing.B) {
			for _, nKV := range benchKV {
				b.Run(fmt.Sprintf("kv=%d", nKV), func(b *testing.B) {
					benchAttention(b, lib, ceiling, dt, nKV)
				})
			}
		})
	}
}

func benchAttention(b *testing.B, lib *gpapi.Lib, ceiling float64, dt dtype.Dtype, nKV int) {
	if alib := anchorLib(b); alib != nil {
		b.Run("fused-anchor", func(b *testing.B) {
			benchFusedAnchor(b, alib, ceiling, dt, nKV)
		})
	}
	f := newAttnFixture(b, lib, dt, nKV, true)
	defer f.bb.free()
	stages := []struct {
		name  string
		bytes int
		run   func(s int) error
	}{
		{"qk", f.qBytes + f.kvBytes + f.scBytes, func(s int) error { return f.qk(lib, s) }},
		{"softmax", 2 * f.scBytes, func(s int) error { return f.softmax(lib, s) }},
		{"pv", f.scBytes + f.kvBytes + f.oBy, func(s int) error { return f.pv(lib, s) }},
		{"attn", f.qBytes + 2*f.kvBytes + 4*f.scBytes + f.oBy, func(s int) error {
			if err := f.qk(lib, s); err != nil {
				return err
			}
			if err := f.softmax(lib, s); err != nil {
				return err
			}
			return f.pv(lib, s)
		}},
	}
	for _, st := range stages {
		b.Run(st.name, func(b *testing.B) {
			ns := benchLoop(b, lib, func(i int) error { return st.run(i % len(f.q)) })
			gbs := float64(st.bytes) / ns
			b.ReportMetric(gbs, "GB/s")
			b.ReportMetric(100*gbs/ceiling, "%copy")
		})
	}
	b.Run("fused", func(b *testing.B) {
		if err := lib.Need(gpapi.CapFused); err != nil {
			b.Skipf("no fused attention: %v", err)
		}
		ns := benchLoop(b, lib, func(i int) error { return f.fused(lib, i%len(f.q)) })
		gbs := float64(f.fusedBytes()) / ns
		b.ReportMetric(gbs, "GB/s")
		b.ReportMetric(100*gbs/ceiling, "%copy")
		if a := anchorFusedNs(b, dt, nKV); a > 0 {
			b.ReportMetric(100*a/ns, "%anchor")
		}
	})
}

func fusedKey(dt dtype.Dtype, nKV int) string { return fmt.Sprintf("%v/kv=%d", dt, nKV) }

// benchFusedAnchor: the anchor library's gp_attention at the decode shape,
// on buffers it allocates; its ns per call is kept for fused's %anchor.
func benchFusedAnchor(b *testing.B, alib *gpapi.Lib, ceiling float64, dt dtype.Dtype, nKV int) {
	if err := alib.Need(gpapi.CapFused); err != nil {
		b.Skipf("anchor library has no fused attention: %v", err)
	}
	f := newAttnFixture(b, alib, dt, nKV, false)
	defer f.bb.free()
	ns, err := benchLoopErr(b, alib, func(i int) error { return f.fused(alib, i%len(f.q)) })
	if err != nil {
		b.Fatalf("anchor %s gp_attention (%v, kv=%d): %v", alib.Backend, dt, nKV, err)
	}
	gbs := float64(f.fusedBytes()) / ns
	b.ReportMetric(gbs, "GB/s")
	b.ReportMetric(100*gbs/ceiling, "%copy")
	benchAnchors.mu.Lock()
	if benchAnchors.fused == nil {
		benchAnchors.fused = map[string]float64{}
	}
	benchAnchors.fused[fusedKey(dt, nKV)] = ns
	benchAnchors.mu.Unlock()
}

// anchorFusedNs: the anchor library's gp_attention ns per call at the
// shape (timed now if fused-anchor did not run, e.g. filtered out by
// -bench), 0 without -parity.bench.anchor-lib or if it failed.
func anchorFusedNs(b *testing.B, dt dtype.Dtype, nKV int) float64 {
	alib := anchorLib(b)
	if alib == nil || alib.Need(gpapi.CapFused) != nil {
		return 0
	}
	key := fusedKey(dt, nKV)
	benchAnchors.mu.Lock()
	defer benchAnchors.mu.Unlock()
	if benchAnchors.fused == nil {
		benchAnchors.fused = map[string]float64{}
	}
	if v, ok := benchAnchors.fused[key]; ok {
		return v
	}
	f := newAttnFixture(b, alib, dt, nKV, false)
	defer f.bb.free()
	v := 0.0
	if d, err := timeLoop(alib, 50, func(i int) error { return f.fused(alib, i%len(f.q)) }); err == nil {
		v = float64(d.Nanoseconds())
	}
	benchAnchors.fused[key] = v
	return v
}

// ---- the other entry points ---------------------------------------------------

// BenchmarkOtherStages: gp_rmsnorm, gp_rope and gp_kv_append at the decode
// shape (rows = 1) and a prefill shape (rows = 512), llama3-8b widths.
func BenchmarkOtherStages(b *testing.B) {
	lib := openLib(b)
	ceiling := copyBandwidth(b, lib)
	const hidden, kvWidth, capacity = 4096, benchKVHeads * benchHeadDim, 4096
	for _, dt := range benchDtypes {
		es := dt.Size()
		for _, rows := range []int{1, 512} {
			bb := benchBufs{lib: lib}
			sets := benchSets(2 * rows * hidden * es)
			var x, y, w, pos, kc, vc []uintptr
			posData := make([]byte, 4*rows)
			for r := 0; r < rows; r++ {
				p := 100 + r
				posData[4*r], posData[4*r+1] = byte(p), byte(p>>8)
			}
			for s := 0; s < sets; s++ {
				x = append(x, bb.alloc(b, "x", benchRandom(dt, rows*hidden*es, 4*s)))
				y = append(y, bb.alloc(b, "y", benchRandom(dt, rows*hidden*es, 4*s+1)))
				w = append(w, bb.alloc(b, "w", benchRandom(dt, hidden*es, 4*s+2)))
				pos = append(pos, bb.alloc(b, "pos", posData))
			}
			kcSets := benchSets(2 * capacity * kvWidth * es)
			kcSets = min(kcSets, 4)
			for s := 0; s < kcSets; s++ {
				kc = append(kc, bb.alloc(b, "k_cache", benchRandom(dt, capacity*kvWidth*es, 9*s)))
				vc = append(vc, bb.alloc(b, "v_cache", benchRandom(dt, capacity*kvWidth*es, 9*s+1)))
			}
			report := func(b *testing.B, ns float64, bytes int) {
				gbs := float64(bytes) / ns
				b.ReportMetric(gbs, "GB/s")
				b.ReportMetric(100*gbs/ceiling, "%copy")
			}
			b.Run(fmt.Sprintf("rmsnorm/%v/rows=%d", dt, rows), func(b *testing.B) {
				ns := benchLoop(b, lib, func(i int) error {
					s := i % sets
					_, err := lib.RMSNorm(int32(dt), x[s], w[s], y[s], rows, hidden, 1e-5)
					return err
				})
				report(b, ns, (2*rows+1)*hidden*es)
			})
			b.Run(fmt.Sprintf("rope/%v/rows=%d", dt, rows), func(b *testing.B) {
				ns := benchLoop(b, lib, func(i int) error {
					s := i % sets
					_, err := lib.Rope(int32(dt), gpapi.RopeNeox, x[s], y[s], pos[s], rows, benchHeads, benchHeadDim, 500000)
					return err
				})
				report(b, ns, 2*rows*hidden*es+4*rows)
			})
			b.Run(fmt.Sprintf("kv_append/%v/rows=%d", dt, rows), func(b *testing.B) {
				ns := benchLoop(b, lib, func(i int) error {
					s := i % sets
					c := i % len(kc)
					_, err := lib.KVAppend(int32(dt), x[s], y[s], kc[c], vc[c], rows, kvWidth, (i*rows)%(capacity-rows+1), capacity)
					return err
				})
				report(b, ns, 4*rows*kvWidth*es)
			})
			bb.free()
		}
	}
}
