// Package refdev binds the float64 reference's GPU library
// (kernels/refdev/gp_refdev.h) through purego, as gpapi binds the library
// under test: one typed func per C symbol, the ABI version checked first,
// every failure an error that names what was wrong.
//
// The library runs the projections' float64 pass (reference.Linear and
// reference.LinearAbs: one in-order chain of float64 adds per output) on
// the GPU, where a real model's rows cost a millisecond instead of a
// second of host cores. Its results are the host loop's bit for bit; the
// harness audits that on every call (internal/harness, refdev.go).
package refdev

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
	"weak"

	"github.com/ebitengine/purego"

	"github.com/gretacore/parity/internal/parallel"
)

// ABIVersion is the GP_REFDEV_ABI_VERSION this binding speaks.
const ABIVersion = 3

// DefaultCacheBytes bounds the device memory held by weight copies (float32,
// 4 bytes a weight): an 8B model's attention and MLP weights are 0.9 GB a
// set, and a table's (model, dtype) group uses five sets at once.
const DefaultCacheBytes = 12 << 30

// Lanes is the number of passes that run on the GPU at the same time, each
// on a stream of its own: a one-row pass over a 4096-wide projection fills
// a fraction of an H100/H200, and a table has a hundred cases evaluating
// at once (at 8 lanes and 128 cases, callers waited 146 s for a lane in a
// 41 s table). Each lane keeps device scratch and page-locked host scratch
// the size of its largest pass, m·(k + 2n) float64 (x, y and Σ|x·W|): in
// the table up to 0.17 GB (qwen2-7b's MLP at 513 rows), 3 GB of each in all.
const Lanes = 16

// Lib is an open reference library. Its methods are safe for concurrent
// use: up to Lanes passes run at once, and a weight copy is made once
// however many callers need it (the others wait for it).
type Lib struct {
	Path    string
	Backend string // gprd_backend(): "cuda sm_90a"
	// CacheBytes bounds the device bytes of cached weight copies; the
	// least recently used copy is freed first. Set before the first call.
	CacheBytes int

	mu     sync.Mutex // the cache and the statistics
	handle uintptr
	lanes  chan uintptr   // idle gprd_lane pointers
	chunks chan []float32 // idle upload chunks (uploadCopy)
	// int gprd_abi_version(void);
	abiVersion func() int32
	// const char *gprd_last_error(void);
	lastError func() string
	// const char *gprd_backend(void);
	backend func() string
	// int gprd_device_count(void);
	deviceCount func() int32
	// int gprd_weights_alloc(size_t n, void **out);
	weightsAlloc func(n uint64, out *uintptr) int32
	// int gprd_weights_write(void *dev, size_t offset, const float *host, size_t n);
	weightsWrite func(dev uintptr, offset uint64, host *float32, n uint64) int32
	// int gprd_weights_free(void *dev);
	free func(dev uintptr) int32
	// int gprd_host_alloc(size_t bytes, void **out);
	hostAlloc func(bytes uint64, out *unsafe.Pointer) int32
	// int gprd_host_free(void *host);
	hostFree func(host unsafe.Pointer) int32
	// int gprd_lane_create(gprd_lane **out);
	laneCreate func(out *uintptr) int32
	// const char *gprd_lane_error(const gprd_lane *lane);
	laneError func(lane uintptr) string
	// int gprd_linear(gprd_lane *lane, const double *x, const void *w,
	//                 const double *bias, double *y, double *a, int m, int n, int kdim);
	linear func(lane uintptr, x *float64, w uintptr, bias, y, a *float64, m, n, kdim int32) int32

	lru    *list.List // of *weightCopy, most recently used at the front
	copies map[weightKey]*list.Element
	cached int // device bytes held
	// What the run's account reports, under mu: weight copies made, and the
	// time spent in uploads (conversion included), in passes, and waiting
	// for another caller's call to end.
	Uploads              int
	UploadTime, PassTime time.Duration
	WaitTime             time.Duration
}

// weightKey names a host weight slice by a weak pointer to its backing
// array, and its length: the cache keeps no host slice alive, and an array
// allocated where a freed one was is another key (weak pointers name
// objects, not addresses).
type weightKey struct {
	data weak.Pointer[float64]
	n    int
}

// weightCopy is a device copy of one host weight matrix. ready is closed
// once the upload ended (err says how); inUse counts the passes that read
// it, and only a copy no pass reads is freed.
type weightCopy struct {
	key   weightKey
	n     int // weights
	dev   uintptr
	ready chan struct{}
	err   error
	inUse int
}

// Open loads the library at path, checks gprd_abi_version() first, binds
// every symbol and checks that a device is visible.
func Open(path string) (*Lib, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("reference library %s: not found: %w", path, err)
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("reference library %s: cannot load: %w", path, err)
	}
	l := &Lib{Path: path, handle: h, CacheBytes: DefaultCacheBytes, lru: list.New(), copies: map[weightKey]*list.Element{}}
	if err := l.bind(&l.abiVersion, "gprd_abi_version"); err != nil {
		return nil, err
	}
	if v := l.abiVersion(); v != ABIVersion {
		return nil, fmt.Errorf("reference library %s: gprd_abi_version() = %d, this harness speaks version %d", path, v, ABIVersion)
	}
	for _, b := range []struct {
		fn   any
		name string
	}{
		{&l.lastError, "gprd_last_error"},
		{&l.backend, "gprd_backend"},
		{&l.deviceCount, "gprd_device_count"},
		{&l.weightsAlloc, "gprd_weights_alloc"},
		{&l.weightsWrite, "gprd_weights_write"},
		{&l.free, "gprd_weights_free"},
		{&l.hostAlloc, "gprd_host_alloc"},
		{&l.hostFree, "gprd_host_free"},
		{&l.laneCreate, "gprd_lane_create"},
		{&l.laneError, "gprd_lane_error"},
		{&l.linear, "gprd_linear"},
	} {
		if err := l.bind(b.fn, b.name); err != nil {
			return nil, err
		}
	}
	l.Backend = l.backend()
	if n := l.deviceCount(); n < 1 {
		return nil, fmt.Errorf("reference library %s: no device (%s)", path, l.lastError())
	}
	l.chunks = make(chan []float32, uploadChunks)
	for range uploadChunks {
		f := make([]float32, uploadChunk) // Go memory if page-locked fails: slower, same values
		if b, err := l.HostAlloc(4 * uploadChunk); err == nil {
			f = unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), uploadChunk)
		}
		l.chunks <- f
	}
	l.lanes = make(chan uintptr, Lanes)
	for range Lanes {
		var lane uintptr
		if err := l.check("gprd_lane_create", l.laneCreate(&lane)); err != nil {
			return nil, fmt.Errorf("reference library %s: %w", path, err)
		}
		l.lanes <- lane
	}
	return l, nil
}

func (l *Lib) bind(fptr any, name string) error {
	sym, err := purego.Dlsym(l.handle, name)
	if err != nil || sym == 0 {
		if err == nil {
			err = errors.New("symbol resolves to NULL")
		}
		return fmt.Errorf("reference library %s: missing symbol %s: %w", l.Path, name, err)
	}
	purego.RegisterFunc(fptr, sym)
	return nil
}

// check turns a lane-less entry point's status into an error with the
// library's message; the caller holds uploadMu or is alone (Open).
func (l *Lib) check(fn string, rc int32) error {
	if rc == 0 {
		return nil
	}
	return fmt.Errorf("%s: status %d: %s", fn, rc, l.lastError())
}

// Linear returns y[m,n] = x[m,k]·Wᵀ (+ bias) and, if wantAbs, a[m,n] =
// Σ_k |x·W| (+ |bias|), every output one in-order float64 chain over k (the
// host's reference.Linear and reference.LinearAbs, bit for bit). w is the
// host's [n, k] weight matrix: its device copy is made on first use and
// kept while the cache holds it. Every value of w must be exact in float32
// (every storage dtype's is).
func (l *Lib) Linear(x []float64, m int, w, bias []float64, n int, wantAbs bool) (y, a []float64, err error) {
	if m < 1 || n < 1 || len(x)%m != 0 || len(x) == 0 {
		return nil, nil, fmt.Errorf("refdev.Linear: %d x values for %d rows", len(x), m)
	}
	k := len(x) / m
	if len(w) != n*k {
		return nil, nil, fmt.Errorf("refdev.Linear: W has %d values, want n·k = %d·%d", len(w), n, k)
	}
	if bias != nil && len(bias) != n {
		return nil, nil, fmt.Errorf("refdev.Linear: bias has %d values, want n = %d", len(bias), n)
	}
	if max(m, n, k) > math.MaxInt32 {
		return nil, nil, fmt.Errorf("refdev.Linear: m, n, k = %d, %d, %d exceed int32", m, n, k)
	}
	y = make([]float64, m*n)
	var ap, bp *float64
	if wantAbs {
		a = make([]float64, m*n)
		ap = &a[0]
	}
	if bias != nil {
		bp = &bias[0]
	}
	t0 := time.Now()
	c, err := l.acquire(w)
	if err != nil {
		return nil, nil, err
	}
	defer l.release(c)
	t1 := time.Now()
	lane := <-l.lanes
	t2 := time.Now()
	rc := l.linear(lane, &x[0], c.dev, bp, &y[0], ap, int32(m), int32(n), int32(k))
	if rc != 0 {
		err = fmt.Errorf("gprd_linear: status %d: %s", rc, l.laneError(lane))
	}
	l.lanes <- lane
	t3 := time.Now()
	l.mu.Lock()
	l.WaitTime += t2.Sub(t1)
	l.PassTime += t3.Sub(t2)
	l.UploadTime += t1.Sub(t0)
	l.mu.Unlock()
	if err != nil {
		return nil, nil, err
	}
	return y, a, nil
}

// acquire returns w's device copy, marked in use, uploading it (as
// float32) unless the cache holds it or another caller is uploading it
// (then it waits for that upload). Least recently used copies that no pass
// reads are freed beyond CacheBytes. release ends the use.
func (l *Lib) acquire(w []float64) (*weightCopy, error) {
	key := weightKey{weak.Make(unsafe.SliceData(w)), len(w)}
	l.mu.Lock()
	if e, ok := l.copies[key]; ok {
		l.lru.MoveToFront(e)
		c := e.Value.(*weightCopy)
		c.inUse++
		l.mu.Unlock()
		<-c.ready
		if c.err != nil {
			l.release(c)
			return nil, c.err
		}
		return c, nil
	}
	c := &weightCopy{key: key, n: len(w), ready: make(chan struct{}), inUse: 1}
	l.copies[key] = l.lru.PushFront(c)
	l.cached += 4 * len(w)
	for e := l.lru.Back(); e != nil && l.cached > l.CacheBytes; {
		prev := e.Prev()
		if old := e.Value.(*weightCopy); old.inUse == 0 {
			l.evictLocked(e)
		}
		e = prev
	}
	l.mu.Unlock()

	c.dev, c.err = l.uploadCopy(w)
	l.mu.Lock()
	if c.err != nil {
		if e, ok := l.copies[key]; ok && e.Value == c {
			l.lru.Remove(e)
			delete(l.copies, key)
			l.cached -= 4 * len(w)
		}
	} else {
		l.Uploads++
	}
	l.mu.Unlock()
	close(c.ready)
	if c.err != nil {
		l.release(c)
		return nil, c.err
	}
	return c, nil
}

func (l *Lib) release(c *weightCopy) {
	l.mu.Lock()
	c.inUse--
	l.mu.Unlock()
}

// uploadMu serializes the lane-less entry points (their error message is
// the library's one).
var uploadMu sync.Mutex

// uploadChunk is the float32 weights an upload converts and copies at a
// time, from one of uploadChunks page-locked chunks (Open): a copy from Go
// memory would go through the runtime's bounce buffer, slowly, and every
// other pageable copy of the process (the library under test's among them)
// would wait for it.
const (
	uploadChunk  = 4 << 20
	uploadChunks = 8
)

// uploadCopy converts w to float32 a chunk at a time, checking every value
// is exact, and makes its device copy.
func (l *Lib) uploadCopy(w []float64) (uintptr, error) {
	var dev uintptr
	uploadMu.Lock()
	err := l.check("gprd_weights_alloc", l.weightsAlloc(uint64(len(w)), &dev))
	uploadMu.Unlock()
	if err != nil {
		return 0, err
	}
	for off := 0; off < len(w); off += uploadChunk {
		part := w[off:min(off+uploadChunk, len(w))]
		f := (<-l.chunks)[:len(part)]
		err := toFloat32(f, part, off)
		if err == nil {
			uploadMu.Lock()
			err = l.check("gprd_weights_write", l.weightsWrite(dev, uint64(off), &f[0], uint64(len(f))))
			uploadMu.Unlock()
		}
		l.chunks <- f[:cap(f)]
		if err != nil {
			uploadMu.Lock()
			_ = l.free(dev)
			uploadMu.Unlock()
			return 0, err
		}
	}
	return dev, nil
}

// toFloat32 writes f[i] = float32(w[i]), or says which weight (w is at
// offset off of its matrix) is not exact in float32.
func toFloat32(f []float32, w []float64, off int) error {
	var inexact atomic.Int64
	inexact.Store(-1)
	parallel.For(len(w), 2, func(lo, hi int) {
		for i, v := range w[lo:hi] {
			f[lo+i] = float32(v)
			if float64(f[lo+i]) != v && !math.IsNaN(v) {
				inexact.CompareAndSwap(-1, int64(lo+i))
			}
		}
	})
	if i := inexact.Load(); i >= 0 {
		return fmt.Errorf("refdev: weight %d = %v is not exact in float32", off+int(i), w[i])
	}
	return nil
}

// evictLocked drops a copy no pass reads. The caller holds l.mu.
func (l *Lib) evictLocked(e *list.Element) {
	c := l.lru.Remove(e).(*weightCopy)
	delete(l.copies, c.key)
	l.cached -= 4 * c.n
	uploadMu.Lock()
	_ = l.free(c.dev) // a failed free leaks device memory, no value
	uploadMu.Unlock()
}

// HostAlloc returns bytes (> 0) of page-locked host memory, outside Go's
// heap, that every GPU library of the process copies from and to at the
// link's speed (gprd_host_alloc): the harness stages its copies to the
// library under test through it (gpapi.Lib.StageThrough). HostFree gives it
// back; the slice must not be used after.
func (l *Lib) HostAlloc(bytes int) ([]byte, error) {
	if bytes <= 0 {
		return nil, fmt.Errorf("refdev.HostAlloc: size %d must be > 0", bytes)
	}
	uploadMu.Lock()
	defer uploadMu.Unlock()
	var p unsafe.Pointer
	if err := l.check("gprd_host_alloc", l.hostAlloc(uint64(bytes), &p)); err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("gprd_host_alloc(%d): returned OK and a null pointer", bytes)
	}
	return unsafe.Slice((*byte)(p), bytes), nil
}

// HostFree frees memory HostAlloc returned.
func (l *Lib) HostFree(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	uploadMu.Lock()
	defer uploadMu.Unlock()
	return l.check("gprd_host_free", l.hostFree(unsafe.Pointer(unsafe.SliceData(b))))
}

// Stats returns the account's figures (see the fields).
func (l *Lib) Stats() (uploads int, upload, pass, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.Uploads, l.UploadTime, l.PassTime, l.WaitTime
}
