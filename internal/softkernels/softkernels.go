// Package softkernels is a kernel library (kernels/include/greta_parity.h,
// ABI 3) written in Go: no gcc, no shared library, no device. It lets unit
// and robustness tests of the harness run where no C toolchain is at hand.
//
// Every stage computes in float64 on the decoded stored inputs and rounds
// once per output element to its storage type (through f32, as a GPU store
// of an f32 value does; scores, probabilities and the LSE are f32). The
// math is that of internal/reference, row by row, so every stage is batch
// invariant by construction and decode equals prefill bit for bit.
//
// "Device memory" is Go byte slices owned by the backend; a device pointer
// is the address of a slice's first byte (Go's heap does not move objects)
// and is only ever mapped back to its slice by lookup, never converted to
// a pointer, so an access outside every allocation is GP_ERR_INVALID_ARG
// with a message, never a crash.
//
// Capabilities: all of them. Routes AUTO, MFMA and VALU run the same math
// (AUTO attests MFMA for M > 1 and VALU for M == 1); BLAS is unsupported.
// Faults: rope_pos_prev, gqa_modulo, kv_slot_off, scale_missing,
// bias_skipped and attn_causal_prev, with the header's semantics, active
// only at row count 1; chunk_pos_off (a later chunk of a chunked prefill)
// and batch_kv_start_off (a batched call of B > 1); act_wrong_half,
// residual_twice and post_norm_no_offset of the "mlp" capability (mlp.go).
package softkernels

import (
	"fmt"
	"sort"
	"sync"
	"unsafe"

	"github.com/gretacore/parity/internal/gpapi"
)

// Name is the backend name (gp_backend_name) and the Lib's Path.
const Name = "softkernels"

// MaxBytes is the most device memory one backend holds at a time; a
// gp_malloc beyond it is GP_ERR_OUT_OF_MEMORY rather than a Go crash.
const MaxBytes = 4 << 30

// The ABI's limits and constants (greta_parity.h).
const (
	maxSeq        = 65536
	maxDim        = 65536
	maxLinearN    = 262144 // GP_MAX_LINEAR_N: gp_linear's N, up to a vocabulary
	maxHeadDim    = 256
	allocAlign    = 256
	kernelNameCap = 64
)

// The ABI's status codes.
const (
	stOK           = int32(gpapi.OK)
	stInvalidArg   = int32(gpapi.ErrInvalidArg)
	stNull         = int32(gpapi.ErrNullPointer)
	stUnsupported  = int32(gpapi.ErrUnsupported)
	stDevice       = int32(gpapi.ErrDevice)
	stOutOfMemory  = int32(gpapi.ErrOutOfMemory)
	stUnknownFault = int32(gpapi.ErrUnknownFault)
)

// faultNames are the faults this backend implements, in the header's order.
var faultNames = []string{"rope_pos_prev", "gqa_modulo", "kv_slot_off", "scale_missing", "bias_skipped", "attn_causal_prev", "chunk_pos_off", "batch_kv_start_off", "act_wrong_half", "residual_twice", "post_norm_no_offset"}

// batchInvariant is gp_batch_invariant_stages: every stage.
const batchInvariant = "x_norm,q_proj,k_proj,v_proj,q_rope,k_rope,kv_cache,qk,softmax,pv,attn,attn_out," +
	"attn_res,post_norm,gate_proj,up_proj,act,down_proj,mlp_res"

// alloc is one gp_malloc: buf is the user region (256-byte aligned), base
// the address of buf[0].
type alloc struct {
	base uintptr
	buf  []byte
}

type launch struct {
	route, tileM, tileN, tileK, splitK int32
	kernel                             string
}

// backend is one library instance: its memory, last error, attestation and
// fault. Its own mutex makes every entry point safe to call directly
// (gpapi.Lib serializes them anyway).
type backend struct {
	mu       sync.Mutex
	allocs   []alloc // sorted by base
	live     int64   // bytes held
	err      string
	last     launch
	launched bool
	fault    string // "" = none
}

// Funcs returns the entry points of a new backend (its own memory, error,
// attestation and fault state), for gpapi.NewFromFuncs; tests may wrap
// some of them.
func Funcs() gpapi.Funcs {
	b := &backend{}
	return gpapi.Funcs{
		ABIVersion:           func() int32 { return gpapi.ABIVersion },
		BackendName:          func() string { return Name },
		StatusString:         statusString,
		LastError:            b.lastError,
		DeviceCount:          b.deviceCount,
		Malloc:               b.malloc,
		Free:                 b.free,
		MemcpyH2D:            b.memcpyH2D,
		MemcpyD2H:            b.memcpyD2H,
		Synchronize:          func() int32 { return stOK },
		RMSNorm:              b.rmsnorm,
		Linear:               b.linear,
		Rope:                 b.rope,
		KVAppend:             b.kvAppend,
		SetFault:             b.setFault,
		ActiveFault:          b.activeFault,
		FaultCount:           func() int32 { return int32(len(faultNames)) },
		FaultName:            faultName,
		LastLaunch:           b.lastLaunch,
		MemcpyD2D:            b.memcpyD2D,
		ForcedRoutes:         func() int32 { return 1<<gpapi.RouteMFMA | 1<<gpapi.RouteVALU },
		AttnScores:           b.attnScores,
		Softmax:              b.softmax,
		AttnPV:               b.attnPV,
		Attention:            b.attention,
		BatchInvariantStages: func() string { return batchInvariant },
		ResidualAdd:          b.residualAdd,
		RMSNormOffset:        b.rmsnormOffset,
		GatedAct:             b.gatedAct,
		KVAppendBatched:      b.kvAppendBatched,
		AttentionBatched:     b.attentionBatched,
	}
}

// New returns a new pure-Go library with every capability. It panics only
// if Funcs and gpapi.NewFromFuncs disagree (a bug in this package).
func New() *gpapi.Lib {
	l, err := gpapi.NewFromFuncs(Name, Funcs())
	if err != nil {
		panic("softkernels: " + err.Error())
	}
	return l
}

func statusString(st int32) string {
	switch st {
	case stOK:
		return "ok"
	case stInvalidArg:
		return "invalid argument"
	case stNull:
		return "null pointer"
	case stUnsupported:
		return "unsupported"
	case stDevice:
		return "device error"
	case stOutOfMemory:
		return "out of memory"
	case stUnknownFault:
		return "unknown fault"
	}
	return "unknown status"
}

func faultName(i int32) string {
	if i < 0 || int(i) >= len(faultNames) {
		return ""
	}
	return faultNames[i]
}

// fail records the message of a failing call and returns its status.
func (b *backend) fail(st int32, format string, a ...any) int32 {
	b.err = fmt.Sprintf(format, a...)
	return st
}

// entry runs one entry point under the backend's lock; a Go panic (a bug
// here, never an argument: those are checked) becomes GP_ERR_DEVICE with
// a message instead of a crash.
func (b *backend) entry(fn string, f func() int32) (st int32) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			st = b.fail(stDevice, "%s: internal error of the softkernels backend: %v", fn, r)
		}
	}()
	return f()
}

func (b *backend) attest(route, tileM, tileN, tileK, splitK int32, kernel string) int32 {
	if len(kernel) > kernelNameCap-1 {
		kernel = kernel[:kernelNameCap-1]
	}
	b.last = launch{route, tileM, tileN, tileK, splitK, kernel}
	b.launched = true
	return stOK
}

func (b *backend) lastError() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *backend) deviceCount(count *int32) int32 {
	return b.entry("gp_device_count", func() int32 {
		if count == nil {
			return b.fail(stNull, "gp_device_count: count is NULL")
		}
		*count = 1
		return stOK
	})
}

// ---- memory -------------------------------------------------------------

func (b *backend) malloc(ptr *uintptr, bytes uint64) int32 {
	return b.entry("gp_malloc", func() int32 {
		if ptr == nil {
			return b.fail(stNull, "gp_malloc: ptr is NULL")
		}
		if bytes == 0 {
			return b.fail(stInvalidArg, "gp_malloc: bytes=0 must be > 0")
		}
		*ptr = 0
		if bytes > uint64(MaxBytes-b.live) {
			return b.fail(stOutOfMemory, "gp_malloc: bytes=%d: out of memory (the %s backend holds at most %d bytes, %d in use)", bytes, Name, int64(MaxBytes), b.live)
		}
		n := int(bytes)
		backing := make([]byte, n+allocAlign-1)
		off := int((allocAlign - uintptr(unsafe.Pointer(&backing[0]))%allocAlign) % allocAlign)
		a := alloc{buf: backing[off : off+n : off+n]}
		a.base = uintptr(unsafe.Pointer(&a.buf[0]))
		i := sort.Search(len(b.allocs), func(i int) bool { return b.allocs[i].base > a.base })
		b.allocs = append(b.allocs, alloc{})
		copy(b.allocs[i+1:], b.allocs[i:])
		b.allocs[i] = a
		b.live += int64(n)
		*ptr = a.base
		return stOK
	})
}

func (b *backend) free(ptr uintptr) int32 {
	return b.entry("gp_free", func() int32 {
		if ptr == 0 {
			return stOK
		}
		i := sort.Search(len(b.allocs), func(i int) bool { return b.allocs[i].base >= ptr })
		if i == len(b.allocs) || b.allocs[i].base != ptr {
			return b.fail(stInvalidArg, "gp_free: ptr=%#x is not a pointer gp_malloc returned (or it was freed)", ptr)
		}
		b.live -= int64(len(b.allocs[i].buf))
		b.allocs = append(b.allocs[:i], b.allocs[i+1:]...)
		return stOK
	})
}

// region returns the n bytes of device memory at p: they must lie within
// one allocation. A violation is GP_ERR_INVALID_ARG naming fn and arg.
func (b *backend) region(fn, arg string, p uintptr, n int64) ([]byte, int32) {
	if n < 0 {
		return nil, b.fail(stInvalidArg, "%s: %s: negative size %d", fn, arg, n)
	}
	i := sort.Search(len(b.allocs), func(i int) bool { return b.allocs[i].base > p }) - 1
	if i < 0 || p-b.allocs[i].base >= uintptr(len(b.allocs[i].buf)) {
		return nil, b.fail(stInvalidArg, "%s: %s=%#x is not device memory of this backend (outside every allocation)", fn, arg, p)
	}
	a := b.allocs[i]
	off := int64(p - a.base)
	if off+n > int64(len(a.buf)) {
		return nil, b.fail(stInvalidArg, "%s: %s=%#x: %d bytes run past the end of its allocation (%d bytes at %#x) by %d bytes",
			fn, arg, p, n, len(a.buf), a.base, off+n-int64(len(a.buf)))
	}
	return a.buf[off : off+n : off+n], stOK
}

func checkMemcpy(b *backend, fn string, dstNil, srcNil bool, bytes uint64) (skip bool, st int32) {
	if bytes == 0 {
		return true, stOK
	}
	if dstNil {
		return true, b.fail(stNull, "%s: dst is NULL", fn)
	}
	if srcNil {
		return true, b.fail(stNull, "%s: src is NULL", fn)
	}
	if bytes > MaxBytes {
		return true, b.fail(stInvalidArg, "%s: bytes=%d is larger than any allocation of this backend", fn, bytes)
	}
	return false, stOK
}

func (b *backend) memcpyH2D(dst uintptr, src *byte, bytes uint64) int32 {
	const fn = "gp_memcpy_h2d"
	return b.entry(fn, func() int32 {
		if skip, st := checkMemcpy(b, fn, dst == 0, src == nil, bytes); skip {
			return st
		}
		d, st := b.region(fn, "dst", dst, int64(bytes))
		if st != stOK {
			return st
		}
		copy(d, unsafe.Slice(src, int(bytes)))
		return stOK
	})
}

func (b *backend) memcpyD2H(dst *byte, src uintptr, bytes uint64) int32 {
	const fn = "gp_memcpy_d2h"
	return b.entry(fn, func() int32 {
		if skip, st := checkMemcpy(b, fn, dst == nil, src == 0, bytes); skip {
			return st
		}
		s, st := b.region(fn, "src", src, int64(bytes))
		if st != stOK {
			return st
		}
		copy(unsafe.Slice(dst, int(bytes)), s)
		return stOK
	})
}

func (b *backend) memcpyD2D(dst, src uintptr, bytes uint64) int32 {
	const fn = "gp_memcpy_d2d"
	return b.entry(fn, func() int32 {
		if skip, st := checkMemcpy(b, fn, dst == 0, src == 0, bytes); skip {
			return st
		}
		d, st := b.region(fn, "dst", dst, int64(bytes))
		if st != stOK {
			return st
		}
		s, st := b.region(fn, "src", src, int64(bytes))
		if st != stOK {
			return st
		}
		copy(d, s)
		return stOK
	})
}

// ---- faults and attestation --------------------------------------------

func (b *backend) setFault(name string) int32 {
	return b.entry("gp_set_fault", func() int32 {
		if name == "" || name == "none" {
			b.fault = ""
			return stOK
		}
		for _, f := range faultNames {
			if f == name {
				b.fault = f
				return stOK
			}
		}
		if len(name) > 64 {
			name = name[:64]
		}
		return b.fail(stUnknownFault, "gp_set_fault: name=%q is not a known fault (this backend implements %v)", name, faultNames)
	})
}

func (b *backend) activeFault() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fault == "" {
		return "none"
	}
	return b.fault
}

// faultOn reports whether fault is active and the call's row count is 1.
func (b *backend) faultOn(fault string, rows int32) bool { return rows == 1 && b.fault == fault }

// chunkFaultOn reports whether chunk_pos_off is active and the call is a
// later chunk of a chunked prefill (q_pos0 > 0 and n_q > 1).
func (b *backend) chunkFaultOn(qPos0, nQ int32) bool {
	return qPos0 > 0 && nQ > 1 && b.fault == "chunk_pos_off"
}

func (b *backend) lastLaunch(route, tileM, tileN, tileK, splitK *int32, kernel *byte, kernelCap int32) int32 {
	return b.entry("gp_last_launch", func() int32 {
		if !b.launched {
			return b.fail(stInvalidArg, "gp_last_launch: no sub-stage call has succeeded yet")
		}
		if kernel != nil && kernelCap <= 0 {
			return b.fail(stInvalidArg, "gp_last_launch: kernel_cap=%d must be > 0", kernelCap)
		}
		for _, o := range []struct {
			p *int32
			v int32
		}{{route, b.last.route}, {tileM, b.last.tileM}, {tileN, b.last.tileN}, {tileK, b.last.tileK}, {splitK, b.last.splitK}} {
			if o.p != nil {
				*o.p = o.v
			}
		}
		if kernel != nil {
			name := b.last.kernel
			if len(name) > int(kernelCap)-1 {
				name = name[:kernelCap-1]
			}
			out := unsafe.Slice(kernel, int(kernelCap))
			n := copy(out, name)
			out[n] = 0
		}
		return stOK
	})
}
