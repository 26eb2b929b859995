package softkernels_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/reference"
	"github.com/gretacore/parity/internal/softkernels"
)

func TestCapabilities(t *testing.T) {
	lib := softkernels.New()
	assert.Equal(t, softkernels.Name, lib.Backend, "Backend")
	assert.Equal(t, softkernels.Name, lib.Path, "Path")
	assert.Empty(t, lib.Missing(), "missing capabilities")
	assert.Equal(t, []gpapi.Route{gpapi.RouteMFMA, gpapi.RouteVALU}, lib.ForcedRoutes(), "forced routes")
	n, err := lib.DeviceCount()
	require.NoError(t, err)
	assert.Equal(t, 1, n, "DeviceCount")
	assert.Len(t, lib.BatchInvariantStages(), 19, "batch invariant stages: all nineteen")
	want := []string{"rope_pos_prev", "gqa_modulo", "kv_slot_off", "scale_missing", "bias_skipped", "attn_causal_prev",
		"chunk_pos_off", "batch_kv_start_off", "act_wrong_half", "residual_twice", "post_norm_no_offset"}
	assert.Empty(t, cmp.Diff(want, lib.Faults()), "faults (-want +got)")
	for _, f := range []string{"kv_slot_off", "none"} {
		require.NoError(t, lib.SetFault(f), "SetFault(%s)", f)
		assert.Equal(t, f, lib.ActiveFault(), "after SetFault(%s)", f)
	}
	var e *gpapi.Error
	require.ErrorAs(t, lib.SetFault("round_truncate"), &e, "SetFault of a fault softkernels lacks")
	assert.Equal(t, gpapi.ErrUnknownFault, e.Status)
	assert.Contains(t, e.Msg, "round_truncate", "the message names the fault")
}

// TestNewFromFuncsErrors: the load errors of Open, for Go funcs.
func TestNewFromFuncsErrors(t *testing.T) {
	cases := []struct {
		name, reason, detail string
		edit                 func(f *gpapi.Funcs)
	}{
		{"missing core func", "missing symbol gp_malloc", "Funcs.Malloc is nil", func(f *gpapi.Funcs) { f.Malloc = nil }},
		{"abi mismatch", "ABI mismatch", "gp_abi_version() = 2", func(f *gpapi.Funcs) { f.ABIVersion = func() int32 { return 2 } }},
		{"partial capability", "partial capability faults", "sets Funcs.SetFault, Funcs.ActiveFault, Funcs.FaultName but not Funcs.FaultCount",
			func(f *gpapi.Funcs) { f.FaultCount = nil }},
		{"no attention", "no attention", "neither unfused attention (gp_attn_scores, gp_softmax, gp_attn_pv) nor fused attention (gp_attention)", func(f *gpapi.Funcs) {
			f.AttnScores, f.Softmax, f.AttnPV, f.Attention = nil, nil, nil, nil
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := softkernels.Funcs()
			c.edit(&f)
			lib, err := gpapi.NewFromFuncs("edited", f)
			assert.Nil(t, lib)
			var le *gpapi.LoadError
			require.ErrorAs(t, err, &le)
			assert.Equal(t, c.reason, le.Reason, "reason")
			assert.Equal(t, "edited", le.Path, "path")
			assert.ErrorContains(t, err, c.detail)
		})
	}
	// Dropping whole capabilities is fine: the Lib lacks exactly those.
	f := softkernels.Funcs()
	f.SetFault, f.ActiveFault, f.FaultCount, f.FaultName = nil, nil, nil, nil
	f.AttnScores, f.Softmax, f.AttnPV = nil, nil, nil
	lib, err := gpapi.NewFromFuncs("fused-only", f)
	require.NoError(t, err)
	assert.Equal(t, []gpapi.Capability{gpapi.CapFaults, gpapi.CapUnfused}, lib.Missing(), "missing capabilities")
	assert.Equal(t, "none", lib.ActiveFault(), "a library without faults: active fault")
	assert.Nil(t, lib.Faults(), "a library without faults: faults")
}

// TestMemory: buffers round-trip, are 256-byte aligned, and any access
// outside an allocation is an error with a message, never a crash.
func TestMemory(t *testing.T) {
	lib := softkernels.New()
	b, err := lib.Alloc("a", 1000)
	require.NoError(t, err)
	assert.Zero(t, b.Ptr%256, "pointer %#x is not 256-byte aligned", b.Ptr)
	data := make([]byte, 1000)
	for i := range data {
		data[i] = byte(i * 7)
	}
	require.NoError(t, b.Write(data))
	got, err := b.Read()
	require.NoError(t, err)
	require.Equal(t, data, got, "round trip")
	assert.NoError(t, b.CheckGuards())
	c, err := lib.Alloc("c", 1000)
	require.NoError(t, err)
	require.NoError(t, lib.CopyD2D(c.Ptr, b.Ptr, 1000))
	got, err = c.Read()
	require.NoError(t, err)
	assert.Equal(t, data, got, "d2d copy")

	// Past the end of the allocation (guards included), and nowhere.
	assertStatus(t, lib.CopyD2D(c.Ptr, b.Ptr+1000+gpapi.GuardBytes-8, 16), gpapi.ErrInvalidArg, "run past the end", "read past an allocation")
	_, err = lib.Linear(1, 0, 16, b.Ptr, 0, c.Ptr, 1, 4, 4)
	assertStatus(t, err, gpapi.ErrInvalidArg, "gp_linear: x=0x10 is not device memory", "a kernel reading a bogus pointer")
	_, err = lib.Linear(1, 0, b.Ptr, b.Ptr, 0, c.Ptr, 1, 64, 64)
	assertStatus(t, err, gpapi.ErrInvalidArg, "gp_linear: w=", "a kernel reading past an allocation")
	_, err = lib.Alloc("huge", softkernels.MaxBytes)
	assertStatus(t, err, gpapi.ErrOutOfMemory, "", "alloc beyond MaxBytes")
	require.NoError(t, b.Free())
	assert.NoError(t, c.Write(data), "a neighbour of a freed buffer")
	assert.Error(t, lib.CopyD2D(c.Ptr, b.Ptr, 8), "reading a freed buffer")
	f := softkernels.Funcs()
	assert.Equal(t, int32(gpapi.ErrInvalidArg), f.Free(12345), "gp_free(bogus)")
	assert.Contains(t, f.LastError(), "gp_free: ptr=0x3039", "gp_free(bogus): last error")
	assert.Equal(t, int32(0), f.Free(0), "gp_free(NULL)")
	assert.Equal(t, int32(gpapi.ErrInvalidArg), f.LastLaunch(nil, nil, nil, nil, nil, nil, 0), "gp_last_launch before any launch")
}

// assertStatus: err is a *gpapi.Error with this status and a message
// containing msg.
func assertStatus(t *testing.T, err error, status gpapi.Status, msg, what string) {
	t.Helper()
	var e *gpapi.Error
	if assert.ErrorAs(t, err, &e, what) {
		assert.Equal(t, status, e.Status, "%s: status", what)
		assert.Contains(t, e.Msg, msg, "%s: message", what)
	}
}

// sameBits makes cmp.Diff compare decoded outputs bit for bit (-0 is not
// 0), while the diff still prints them as numbers.
var sameBits = cmp.Comparer(func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) })

// TestKernelsMatchReference: each stage's output is the float64 reference
// on the stored inputs, rounded once to the storage type.
func TestKernelsMatchReference(t *testing.T) {
	lib := softkernels.New()
	r := rand.New(rand.NewPCG(1, 2))
	for _, dt := range dtype.All {
		const M, N, K = 3, 5, 24
		draw := func(n int) []float64 {
			v := make([]float64, n)
			for i := range v {
				v[i] = dt.Round(r.NormFloat64())
			}
			return v
		}
		up := func(v []float64) *gpapi.Buffer {
			b, err := lib.Alloc("t", len(v)*dt.Size())
			require.NoError(t, err)
			require.NoError(t, b.Write(dt.Encode(v)))
			return b
		}
		x, w, bias := draw(M*K), draw(N*K), draw(N)
		xb, wb, bb, yb := up(x), up(w), up(bias), up(make([]float64, M*N))
		for _, route := range []gpapi.Route{gpapi.RouteAuto, gpapi.RouteMFMA, gpapi.RouteVALU} {
			l, err := lib.Linear(int32(dt), route, xb.Ptr, wb.Ptr, bb.Ptr, yb.Ptr, M, N, K)
			require.NoError(t, err)
			if want := map[gpapi.Route]gpapi.Route{gpapi.RouteAuto: gpapi.RouteMFMA}[route]; want != 0 && l.Route != want || route != gpapi.RouteAuto && l.Route != route {
				t.Errorf("route %v attested %v", route, l)
			}
			got, err := yb.Read()
			require.NoError(t, err)
			var want []float64
			for m := 0; m < M; m++ {
				want = append(want, reference.Linear(x[m*K:(m+1)*K], w, bias, N)...)
			}
			assert.Empty(t, cmp.Diff(dt.Decode(dt.Encode(want)), dt.Decode(got), sameBits), "%v %v: linear (-rounded reference +got)", dt, route)
		}
		if _, err := lib.Linear(int32(dt), gpapi.RouteBLAS, xb.Ptr, wb.Ptr, bb.Ptr, yb.Ptr, M, N, K); err == nil {
			t.Error("route BLAS accepted")
		}
		// RMSNorm of row 1 in place of a 1-row call: the same bits.
		nb := up(make([]float64, K))
		if _, err := lib.RMSNorm(int32(dt), xb.Ptr+uintptr(K*dt.Size()), wb.Ptr, nb.Ptr, 1, K, 1e-5); err != nil {
			t.Fatal(err)
		}
		got, err := nb.Read()
		require.NoError(t, err)
		ref, _ := reference.RMSNorm(x[K:2*K], w[:K], float64(float32(1e-5)))
		assert.Empty(t, cmp.Diff(dt.Decode(dt.Encode(ref)), dt.Decode(got), sameBits), "%v: rmsnorm (-rounded reference +got)", dt)
	}
	// Fused attention with LSE against reference.Attention.
	const nh, nkv, hd, n = 4, 2, 8, 5
	q, k, v := make([]float64, nh*hd), make([][]float64, n), make([][]float64, n)
	for i := range q {
		q[i] = dtype.F16.Round(r.NormFloat64())
	}
	var kf, vf []float64
	for j := 0; j < n; j++ {
		k[j], v[j] = make([]float64, nkv*hd), make([]float64, nkv*hd)
		for c := range k[j] {
			k[j][c], v[j][c] = dtype.F16.Round(r.NormFloat64()), dtype.F16.Round(r.NormFloat64())
		}
		kf, vf = append(kf, k[j]...), append(vf, v[j]...)
	}
	alloc := func(dt dtype.Dtype, vals []float64) *gpapi.Buffer {
		b, err := lib.Alloc("t", len(vals)*dt.Size())
		require.NoError(t, err)
		require.NoError(t, b.Write(dt.Encode(vals)))
		return b
	}
	qb, kb, vb := alloc(dtype.F16, q), alloc(dtype.F16, kf), alloc(dtype.F16, vf)
	ob, lb := alloc(dtype.F16, make([]float64, nh*hd)), alloc(dtype.F32, make([]float64, nh))
	scale := float32(1 / math.Sqrt(hd))
	if _, err := lib.Attention(int32(dtype.F16), qb.Ptr, kb.Ptr, vb.Ptr, ob.Ptr, lb.Ptr, 1, n, nh, nkv, hd, n-1, scale, true); err != nil {
		t.Fatal(err)
	}
	o, lse := reference.Attention(q, k, v, nh, nkv, hd, n-1, float64(scale))
	gotO, err := ob.Read()
	require.NoError(t, err)
	assert.Empty(t, cmp.Diff(dtype.F16.Decode(dtype.F16.Encode(o)), dtype.F16.Decode(gotO), sameBits), "attention out (-rounded reference +got)")
	gotL, err := lb.Read()
	require.NoError(t, err)
	assert.Empty(t, cmp.Diff(dtype.F32.Decode(dtype.F32.Encode(lse)), dtype.F32.Decode(gotL), sameBits), "attention lse (-rounded reference +got)")
}

// badCalls are invalid calls (kernels/common/gp_common.c's checks) on lib,
// with buffers from buf.
func badCalls(lib *gpapi.Lib, buf func(int) uintptr) []struct {
	name   string
	status gpapi.Status
	f      func() (gpapi.Launch, error)
} {
	x, w, y, pos := buf(4096), buf(4096), buf(4096), buf(64)
	f16, f32 := int32(1), int32(0)
	// pos holds 0, 70000 (beyond GP_MAX_SEQ), -1.
	if err := lib.CopyD2D(pos, buf(0), 12); err != nil {
		panic(err)
	}
	return []struct {
		name   string
		status gpapi.Status
		f      func() (gpapi.Launch, error)
	}{
		{"linear M=0", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Linear(f16, 0, x, w, 0, y, 0, 4, 4) }},
		{"linear N<0", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Linear(f16, 0, x, w, 0, y, 1, -4, 4) }},
		{"linear K=0", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Linear(f16, 0, x, w, 0, y, 1, 4, 0) }},
		{"linear N too big", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Linear(f16, 0, x, w, 0, y, 1, 1<<19, 4) }}, // > GP_MAX_LINEAR_N
		{"linear unknown dtype", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Linear(7, 0, x, w, 0, y, 1, 4, 4) }},
		{"linear unknown route", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Linear(f16, 9, x, w, 0, y, 1, 4, 4) }},
		{"linear null x", gpapi.ErrNullPointer, func() (gpapi.Launch, error) { return lib.Linear(f16, 0, 0, w, 0, y, 1, 4, 4) }},
		{"linear null y", gpapi.ErrNullPointer, func() (gpapi.Launch, error) { return lib.Linear(f16, 0, x, w, 0, 0, 1, 4, 4) }},
		{"rmsnorm NaN eps", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.RMSNorm(f16, x, w, y, 1, 8, float32(math.NaN())) }},
		{"rmsnorm negative eps", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.RMSNorm(f16, x, w, y, 1, 8, -1) }},
		{"rmsnorm rows above GP_MAX_SEQ", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.RMSNorm(f16, x, w, y, 1<<20, 8, 1e-5) }},
		{"rmsnorm null w", gpapi.ErrNullPointer, func() (gpapi.Launch, error) { return lib.RMSNorm(f16, x, 0, y, 1, 8, 1e-5) }},
		{"rope odd head_dim", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Rope(f16, 0, x, y, pos, 1, 2, 15, 1e4) }},
		{"rope unknown layout", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Rope(f16, 5, x, y, pos, 1, 2, 16, 1e4) }},
		{"rope theta 0", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Rope(f16, 0, x, y, pos, 1, 2, 16, 0) }},
		{"rope theta -1e-7", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Rope(f16, 0, x, y, pos, 1, 2, 16, -1e-7) }},
		{"rope theta -inf", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Rope(f16, 0, x, y, pos, 1, 2, 16, float32(math.Inf(-1))) }},
		{"rope width", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Rope(f16, 0, x, y, pos, 1, 4096, 256, 1e4) }},
		{"rope position beyond GP_MAX_SEQ", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Rope(f16, 0, x, y, pos, 3, 2, 16, 1e4) }},
		{"rope null positions", gpapi.ErrNullPointer, func() (gpapi.Launch, error) { return lib.Rope(f16, 0, x, y, 0, 1, 2, 16, 1e4) }},
		{"kv append past capacity", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.KVAppend(f16, x, x, y, w, 2, 8, 7, 8) }},
		{"kv append negative slot", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.KVAppend(f16, x, x, y, w, 1, 8, -1, 8) }},
		{"kv append null v_cache", gpapi.ErrNullPointer, func() (gpapi.Launch, error) { return lib.KVAppend(f16, x, x, y, 0, 1, 8, 1, 8) }},
		{"scores heads not divisible", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) {
			return lib.AttnScores(f16, x, w, y, 1, 4, 6, 4, 16, 3, 0.25, true)
		}},
		{"scores query offset beyond the cache", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) {
			return lib.AttnScores(f16, x, w, y, 1, 4, 2, 1, 16, 4, 0.25, true)
		}},
		{"scores head_dim not a multiple of 8", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) {
			return lib.AttnScores(f16, x, w, y, 1, 4, 2, 1, 12, 3, 0.25, true)
		}},
		{"scores infinite scale", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) {
			return lib.AttnScores(f16, x, w, y, 1, 4, 2, 1, 16, 3, float32(math.Inf(1)), true)
		}},
		{"softmax n_kv=0", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.Softmax(x, y, 2, 1, 0) }},
		{"softmax null probs", gpapi.ErrNullPointer, func() (gpapi.Launch, error) { return lib.Softmax(x, 0, 2, 1, 4) }},
		{"pv null probs", gpapi.ErrNullPointer, func() (gpapi.Launch, error) { return lib.AttnPV(f16, 0, w, y, 1, 4, 2, 1, 16) }},
		{"pv zero kv heads", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) { return lib.AttnPV(f32, x, w, y, 1, 4, 2, 0, 16) }},
		{"attention negative q_pos0", gpapi.ErrInvalidArg, func() (gpapi.Launch, error) {
			return lib.Attention(f16, x, w, w, y, 0, 1, 4, 2, 1, 16, -1, 0.25, true)
		}},
		{"attention null out", gpapi.ErrNullPointer, func() (gpapi.Launch, error) {
			return lib.Attention(f16, x, w, w, 0, 0, 1, 4, 2, 1, 16, 3, 0.25, true)
		}},
	}
}

// buffers allocates scratch buffers; buf(0) is 12 bytes holding the
// int32 positions 0, 70000, -1.
func buffers(t *testing.T, lib *gpapi.Lib) func(int) uintptr {
	return func(n int) uintptr {
		var data []byte
		if n == 0 {
			n, data = 12, []byte{0, 0, 0, 0, 0x70, 0x11, 0x01, 0, 0xff, 0xff, 0xff, 0xff}
		}
		b, err := lib.Alloc("scratch", n)
		require.NoError(t, err)
		require.NoError(t, b.Write(data))
		t.Cleanup(func() { b.Free() })
		return b.Ptr
	}
}

// TestBadArguments: each invalid call returns its status with a message
// naming the entry point and the argument, and if the CPU library is built
// (make test; build/libgreta_parity_cpu.so) the very same status and
// message as it.
func TestBadArguments(t *testing.T) {
	soft := softkernels.New()
	calls := badCalls(soft, buffers(t, soft))
	var cpu *gpapi.Lib
	path := filepath.Join("..", "..", "build", "libgreta_parity_cpu.so")
	if _, err := os.Stat(path); err == nil {
		if cpu, err = gpapi.Open(path); err != nil {
			t.Logf("CPU library not usable (%v): checking softkernels alone", err)
			cpu = nil
		}
	} else {
		t.Logf("%s not built: checking softkernels alone", path)
	}
	var cpuCalls []struct {
		name   string
		status gpapi.Status
		f      func() (gpapi.Launch, error)
	}
	if cpu != nil {
		cpuCalls = badCalls(cpu, buffers(t, cpu))
	}
	for i, c := range calls {
		_, err := c.f()
		var e *gpapi.Error
		if !errors.As(err, &e) || e.Status != c.status || !strings.HasPrefix(e.Msg, e.Func+": ") {
			t.Errorf("%s: %v; want status %d and a message starting with the entry point", c.name, err, c.status)
			continue
		}
		if cpu == nil {
			continue
		}
		_, cerr := cpuCalls[i].f()
		var ce *gpapi.Error
		if !errors.As(cerr, &ce) || ce.Status != e.Status || ce.Msg != e.Msg {
			t.Errorf("%s: softkernels says %v\n  the CPU library says %v", c.name, err, cerr)
		}
	}
	// Still usable afterwards.
	b := buffers(t, soft)(64)
	if _, err := soft.Linear(0, 0, b, b, 0, b, 1, 1, 4); err != nil {
		t.Errorf("a valid call after the bad ones: %v", err)
	}
}
