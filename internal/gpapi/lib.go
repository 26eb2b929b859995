// Package gpapi binds the kernel C ABI (kernels/include/greta_parity.h)
// through purego, with no cgo. Each C symbol has one typed Go func with the
// C prototype in a comment above it; Open checks the ABI version before it
// binds anything else, and every failure (missing library, missing symbol,
// ABI mismatch, a non-zero status) is an error that names what was wrong.
package gpapi

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/ebitengine/purego"
)

// ABIVersion is the GP_ABI_VERSION this binding was written against.
// Version 2 added gp_memcpy_d2d and GP_ROUTE_BLAS; version 3 split the ABI
// into a required core and optional capabilities (capability.go) and added
// fused attention (gp_attention).
const ABIVersion = 3

// Status is a gp_status code.
type Status int32

// Status codes of the ABI (gp_status).
const (
	OK              Status = 0
	ErrInvalidArg   Status = 1
	ErrNullPointer  Status = 2
	ErrUnsupported  Status = 3
	ErrDevice       Status = 4
	ErrOutOfMemory  Status = 5
	ErrUnknownFault Status = 6
)

// Error is a failed ABI call: the function, its status and the library's
// message (which names the offending argument).
type Error struct {
	Func   string
	Status Status
	Msg    string
	Text   string // gp_status_string(Status)
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("%s: status %d (%s)", e.Func, e.Status, e.Text)
	}
	return fmt.Sprintf("%s: status %d (%s): %s", e.Func, e.Status, e.Text, e.Msg)
}

// LoadError says why a library could not be used at all: not found, not a
// shared library, a missing symbol or an ABI version mismatch. Reason is a
// short phrase for skip messages ("library not found", "ABI mismatch").
type LoadError struct {
	Path   string
	Reason string
	Err    error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("kernel library %s: %s: %v", e.Path, e.Reason, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// Lib is an opened kernel library. Calls are serialized: the ABI's error
// and attestation state is process-wide.
type Lib struct {
	Path     string
	Backend  string // gp_backend_name()
	mu       sync.Mutex
	held     [opCount]time.Duration // under mu: held.go
	calls    [opCount]int64
	hist     [opCount][heldBuckets]int64 // held times by power of two of µs
	moved    [opCount]int64              // bytes copied, h2d and d2h
	staged   [opCount]int64              // of which through page-locked chunks (staging.go)
	stage    *staging                    // set once by StageThrough, before the copies
	poolMu   sync.Mutex                  // the pool's own: no library call waits on it
	pool     map[int][]uintptr           // under poolMu: released allocations by user bytes (Release)
	poolHeld int
	handle   uintptr
	caps     map[Capability]bool

	// int gp_abi_version(void);
	abiVersion func() int32
	// const char *gp_backend_name(void);
	backendName func() string
	// const char *gp_status_string(int status);
	statusString func(status int32) string
	// const char *gp_last_error(void);
	lastError func() string
	// int gp_device_count(int *count);
	deviceCount func(count *int32) int32
	// int gp_malloc(void **ptr, size_t bytes);
	malloc func(ptr *uintptr, bytes uint64) int32
	// int gp_free(void *ptr);
	free func(ptr uintptr) int32
	// int gp_memcpy_h2d(void *dst_device, const void *src_host, size_t bytes);
	memcpyH2D func(dst uintptr, src *byte, bytes uint64) int32
	// int gp_memcpy_d2h(void *dst_host, const void *src_device, size_t bytes);
	memcpyD2H func(dst *byte, src uintptr, bytes uint64) int32
	// int gp_memcpy_d2d(void *dst_device, const void *src_device, size_t bytes);
	memcpyD2D func(dst, src uintptr, bytes uint64) int32
	// int gp_synchronize(void);
	synchronize func() int32
	// int gp_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim, float eps);
	rmsnorm func(dtype int32, x, w, y uintptr, rows, dim int32, eps float32) int32
	// int gp_linear(int dtype, int route, const void *x, const void *w, const void *bias, void *y, int M, int N, int K);
	linear func(dtype, route int32, x, w, bias, y uintptr, m, n, k int32) int32
	// int gp_rope(int dtype, int layout, const void *x, void *y, const int32_t *pos, int rows, int n_heads, int head_dim, float theta);
	rope func(dtype, layout int32, x, y, pos uintptr, rows, nHeads, headDim int32, theta float32) int32
	// int gp_kv_append(int dtype, const void *k, const void *v, void *k_cache, void *v_cache, int rows, int kv_width, int slot, int capacity);
	kvAppend func(dtype int32, k, v, kCache, vCache uintptr, rows, kvWidth, slot, capacity int32) int32
	// int gp_attn_scores(int dtype, const void *q, const void *k_cache, float *scores, int n_q, int n_kv, int n_heads, int n_kv_heads, int head_dim, int q_pos0, float scale, int causal);
	attnScores func(dtype int32, q, kCache, scores uintptr, nQ, nKV, nHeads, nKVHeads, headDim, qPos0 int32, scale float32, causal int32) int32
	// int gp_softmax(const float *scores, float *probs, int n_heads, int n_q, int n_kv);
	softmax func(scores, probs uintptr, nHeads, nQ, nKV int32) int32
	// int gp_attn_pv(int dtype, const float *probs, const void *v_cache, void *out, int n_q, int n_kv, int n_heads, int n_kv_heads, int head_dim);
	attnPV func(dtype int32, probs, vCache, out uintptr, nQ, nKV, nHeads, nKVHeads, headDim int32) int32
	// int gp_last_launch(int *route, int *tile_m, int *tile_n, int *tile_k, int *split_k, char *kernel, int kernel_cap);
	lastLaunch func(route, tileM, tileN, tileK, splitK *int32, kernel *byte, kernelCap int32) int32
	// int gp_set_fault(const char *name);
	setFault func(name string) int32
	// const char *gp_active_fault(void);
	activeFault func() string
	// int gp_fault_count(void);
	faultCount func() int32
	// const char *gp_fault_name(int i);
	faultName func(i int32) string
	// int gp_forced_routes(void);
	forcedRoutes func() int32
	// int gp_attention(int dtype, const void *q, const void *k_cache, const void *v_cache, void *out, float *lse, int n_q, int n_kv, int n_heads, int n_kv_heads, int head_dim, int q_pos0, float scale, int causal);
	attention func(dtype int32, q, kCache, vCache, out, lse uintptr, nQ, nKV, nHeads, nKVHeads, headDim, qPos0 int32, scale float32, causal int32) int32
	// const char *gp_batch_invariant_stages(void);
	batchInvariantStages func() string
	// int gp_kv_append_batched(int dtype, const void *k, const void *v, void *k_cache, void *v_cache, int B, int kv_width, const int32_t *slot, int capacity);
	kvAppendBatched func(dtype int32, k, v, kCache, vCache uintptr, b, kvWidth int32, slot uintptr, capacity int32) int32
	// int gp_attention_batched(int dtype, const void *q, const void *k_cache, const void *v_cache, void *out, float *lse, int B, const int32_t *kv_start, const int32_t *kv_len, int capacity, int n_heads, int n_kv_heads, int head_dim, float scale);
	attentionBatched func(dtype int32, q, kCache, vCache, out, lse uintptr, b int32, kvStart, kvLen uintptr, capacity, nHeads, nKVHeads, headDim int32, scale float32) int32
	// int gp_residual_add(int dtype, const void *a, const void *b, void *y, int rows, int width);
	residualAdd func(dtype int32, a, b, y uintptr, rows, width int32) int32
	// int gp_rmsnorm_offset(int dtype, const void *x, const void *w, void *y, int rows, int dim, float eps, float w_offset);
	rmsnormOffset func(dtype int32, x, w, y uintptr, rows, dim int32, eps, wOffset float32) int32
	// int gp_gated_act(int dtype, int kind, const void *gate, const void *up, void *y, int rows, int width);
	gatedAct func(dtype, kind int32, gate, up, y uintptr, rows, width int32) int32
}

// Open loads the library at path, checks gp_abi_version() == ABIVersion
// first, then binds every symbol. It never panics: each failure is a
// *LoadError naming the path and the reason.
func Open(path string) (*Lib, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, &LoadError{Path: path, Reason: "library not found", Err: err}
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, &LoadError{Path: path, Reason: "cannot load shared library", Err: err}
	}
	l := &Lib{Path: path, handle: h}
	if err := l.bind(&l.abiVersion, "gp_abi_version"); err != nil {
		return nil, err
	}
	if v := l.abiVersion(); v != ABIVersion {
		return nil, &LoadError{Path: path, Reason: "ABI mismatch",
			Err: fmt.Errorf("gp_abi_version() = %d, this harness speaks version %d", v, ABIVersion)}
	}
	core := []struct {
		fn   any
		name string
	}{
		{&l.backendName, "gp_backend_name"},
		{&l.statusString, "gp_status_string"},
		{&l.lastError, "gp_last_error"},
		{&l.deviceCount, "gp_device_count"},
		{&l.malloc, "gp_malloc"},
		{&l.free, "gp_free"},
		{&l.memcpyH2D, "gp_memcpy_h2d"},
		{&l.memcpyD2H, "gp_memcpy_d2h"},
		{&l.synchronize, "gp_synchronize"},
		{&l.rmsnorm, "gp_rmsnorm"},
		{&l.linear, "gp_linear"},
		{&l.rope, "gp_rope"},
		{&l.kvAppend, "gp_kv_append"},
	}
	for _, b := range core {
		if err := l.bind(b.fn, b.name); err != nil {
			return nil, err
		}
	}
	if err := l.bindCapabilities(); err != nil {
		return nil, err
	}
	l.Backend = l.backendName()
	return l, nil
}

// bind resolves name with Dlsym first, so a missing symbol is an error
// rather than RegisterLibFunc's panic.
func (l *Lib) bind(fptr any, name string) error {
	sym, err := purego.Dlsym(l.handle, name)
	if err != nil || sym == 0 {
		if err == nil {
			err = errors.New("symbol resolves to NULL")
		}
		return &LoadError{Path: l.Path, Reason: "missing symbol " + name, Err: err}
	}
	purego.RegisterFunc(fptr, sym)
	return nil
}

// check turns a status into an *Error carrying the library's message.
// Callers hold l.mu so the message belongs to this call.
func (l *Lib) check(fn string, st int32) error {
	if st == 0 {
		return nil
	}
	return &Error{Func: fn, Status: Status(st), Msg: l.lastError(), Text: l.statusString(st)}
}

// DeviceCount returns gp_device_count.
func (l *Lib) DeviceCount() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var n int32
	if err := l.check("gp_device_count", l.deviceCount(&n)); err != nil {
		return 0, err
	}
	return int(n), nil
}

// CopyD2D calls gp_memcpy_d2d: bytes from device src to device dst
// (asynchronous where the backend is; the regions must not overlap).
func (l *Lib) CopyD2D(dst, src uintptr, bytes int) error {
	if err := l.Need(CapD2D); err != nil {
		return err
	}
	if bytes < 0 {
		return fmt.Errorf("gp_memcpy_d2d: bytes=%d must be >= 0", bytes)
	}
	defer l.lock(opKernel)()
	return l.check("gp_memcpy_d2d", l.memcpyD2D(dst, src, uint64(bytes)))
}

// ABIVersionCall calls gp_abi_version through purego: the cheapest call the
// ABI has, used to measure the binding's per-call overhead.
func (l *Lib) ABIVersionCall() int { return int(l.abiVersion()) }

// Synchronize waits for the device and reports asynchronous failures.
func (l *Lib) Synchronize() error {
	defer l.lock(opSync)()
	return l.check("gp_synchronize", l.synchronize())
}
