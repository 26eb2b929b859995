package gpapi

import (
	"fmt"
	"reflect"
	"strings"
)

// Funcs is a kernel library made of Go funcs instead of C symbols: one
// field per ABI entry point, with the Go signature the purego binding gives
// that symbol (the C prototypes are in greta_parity.h and above the
// matching fields of Lib). NewFromFuncs turns it into a *Lib, so a library
// written in Go (internal/softkernels), or a Go wrapper around another
// library's funcs, runs through every code path a dlopen'ed library does:
// Alloc and its guards, Read/Write, the harness's Execute.
//
// The core fields must all be set. A capability's fields are all set or
// all nil, exactly as a shared library exports all of a capability's
// symbols or none of them; at least one attention capability (unfused or
// fused) is required.
type Funcs struct {
	// ---- core ----

	ABIVersion   func() int32
	BackendName  func() string
	StatusString func(status int32) string
	LastError    func() string
	DeviceCount  func(count *int32) int32
	Malloc       func(ptr *uintptr, bytes uint64) int32
	Free         func(ptr uintptr) int32
	MemcpyH2D    func(dst uintptr, src *byte, bytes uint64) int32
	MemcpyD2H    func(dst *byte, src uintptr, bytes uint64) int32
	Synchronize  func() int32
	RMSNorm      func(dtype int32, x, w, y uintptr, rows, dim int32, eps float32) int32
	Linear       func(dtype, route int32, x, w, bias, y uintptr, m, n, k int32) int32
	Rope         func(dtype, layout int32, x, y, pos uintptr, rows, nHeads, headDim int32, theta float32) int32
	KVAppend     func(dtype int32, k, v, kCache, vCache uintptr, rows, kvWidth, slot, capacity int32) int32

	// ---- "faults" ----

	SetFault    func(name string) int32
	ActiveFault func() string
	FaultCount  func() int32
	FaultName   func(i int32) string

	// ---- "attestation" ----

	LastLaunch func(route, tileM, tileN, tileK, splitK *int32, kernel *byte, kernelCap int32) int32

	// ---- "d2d" ----

	MemcpyD2D func(dst, src uintptr, bytes uint64) int32

	// ---- "routes" ----

	ForcedRoutes func() int32

	// ---- "unfused" ----

	AttnScores func(dtype int32, q, kCache, scores uintptr, nQ, nKV, nHeads, nKVHeads, headDim, qPos0 int32, scale float32, causal int32) int32
	Softmax    func(scores, probs uintptr, nHeads, nQ, nKV int32) int32
	AttnPV     func(dtype int32, probs, vCache, out uintptr, nQ, nKV, nHeads, nKVHeads, headDim int32) int32

	// ---- "fused" ----

	Attention func(dtype int32, q, kCache, vCache, out, lse uintptr, nQ, nKV, nHeads, nKVHeads, headDim, qPos0 int32, scale float32, causal int32) int32

	// ---- "invariance" ----

	BatchInvariantStages func() string

	// ---- "batched" ----

	KVAppendBatched  func(dtype int32, k, v, kCache, vCache uintptr, b, kvWidth int32, slot uintptr, capacity int32) int32
	AttentionBatched func(dtype int32, q, kCache, vCache, out, lse uintptr, b int32, kvStart, kvLen uintptr, capacity, nHeads, nKVHeads, headDim int32, scale float32) int32

	// ---- "mlp" ----

	ResidualAdd   func(dtype int32, a, b, y uintptr, rows, width int32) int32
	RMSNormOffset func(dtype int32, x, w, y uintptr, rows, dim int32, eps, wOffset float32) int32
	GatedAct      func(dtype, kind int32, gate, up, y uintptr, rows, width int32) int32
}

// bySymbol maps each C symbol name to a pointer to f's field for it.
func (f *Funcs) bySymbol() map[string]any {
	return map[string]any{
		"gp_abi_version":            &f.ABIVersion,
		"gp_backend_name":           &f.BackendName,
		"gp_status_string":          &f.StatusString,
		"gp_last_error":             &f.LastError,
		"gp_device_count":           &f.DeviceCount,
		"gp_malloc":                 &f.Malloc,
		"gp_free":                   &f.Free,
		"gp_memcpy_h2d":             &f.MemcpyH2D,
		"gp_memcpy_d2h":             &f.MemcpyD2H,
		"gp_synchronize":            &f.Synchronize,
		"gp_rmsnorm":                &f.RMSNorm,
		"gp_linear":                 &f.Linear,
		"gp_rope":                   &f.Rope,
		"gp_kv_append":              &f.KVAppend,
		"gp_set_fault":              &f.SetFault,
		"gp_active_fault":           &f.ActiveFault,
		"gp_fault_count":            &f.FaultCount,
		"gp_fault_name":             &f.FaultName,
		"gp_last_launch":            &f.LastLaunch,
		"gp_memcpy_d2d":             &f.MemcpyD2D,
		"gp_forced_routes":          &f.ForcedRoutes,
		"gp_attn_scores":            &f.AttnScores,
		"gp_softmax":                &f.Softmax,
		"gp_attn_pv":                &f.AttnPV,
		"gp_attention":              &f.Attention,
		"gp_batch_invariant_stages": &f.BatchInvariantStages,
		"gp_kv_append_batched":      &f.KVAppendBatched,
		"gp_attention_batched":      &f.AttentionBatched,
		"gp_residual_add":           &f.ResidualAdd,
		"gp_rmsnorm_offset":         &f.RMSNormOffset,
		"gp_gated_act":              &f.GatedAct,
	}
}

// fieldName is the Funcs field of a symbol, for messages.
func fieldName(f *Funcs, sym string) string {
	p := reflect.ValueOf(f.bySymbol()[sym]).Pointer()
	v := reflect.ValueOf(f).Elem()
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).Addr().Pointer() == p {
			return "Funcs." + v.Type().Field(i).Name
		}
	}
	return sym
}

// NewFromFuncs builds a *Lib whose entry points are f's funcs. path names
// the library in messages and in Lib.Path. Like Open it checks
// f.ABIVersion() == ABIVersion first; a nil core func is a *LoadError
// ("missing symbol gp_malloc"), a capability with some funcs set and
// others nil is a *LoadError ("partial capability faults"), and one with
// neither attention capability is a *LoadError ("no attention"). The
// capability set is the capabilities whose funcs are all set; Backend is
// f.BackendName().
func NewFromFuncs(path string, f Funcs) (*Lib, error) {
	l := &Lib{Path: path}
	syms := f.bySymbol()
	// set copies the func of symbol sym into the Lib field dst points to;
	// it reports false if the func is nil.
	set := func(dst any, sym string) bool {
		src := reflect.ValueOf(syms[sym]).Elem()
		if src.IsNil() {
			return false
		}
		reflect.ValueOf(dst).Elem().Set(src)
		return true
	}
	missing := func(sym string) error {
		return &LoadError{Path: path, Reason: "missing symbol " + sym, Err: fmt.Errorf("%s is nil", fieldName(&f, sym))}
	}
	if !set(&l.abiVersion, "gp_abi_version") {
		return nil, missing("gp_abi_version")
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
		if !set(b.fn, b.name) {
			return nil, missing(b.name)
		}
	}
	l.caps = map[Capability]bool{}
	for _, c := range Capabilities {
		capSyms := l.capSymbols()[c]
		var found, absent []string
		for _, s := range capSyms {
			if reflect.ValueOf(syms[s.name]).Elem().IsNil() {
				absent = append(absent, fieldName(&f, s.name))
			} else {
				found = append(found, fieldName(&f, s.name))
			}
		}
		switch {
		case len(absent) == 0:
			for _, s := range capSyms {
				set(s.fn, s.name)
			}
			l.caps[c] = true
		case len(found) > 0:
			return nil, &LoadError{Path: path, Reason: "partial capability " + string(c),
				Err: fmt.Errorf("sets %s but not %s: a capability is all of its funcs or none", strings.Join(found, ", "), strings.Join(absent, ", "))}
		}
	}
	if !l.caps[CapUnfused] && !l.caps[CapFused] {
		return nil, &LoadError{Path: path, Reason: "no attention",
			Err: fmt.Errorf("the library implements neither unfused attention (%s) nor fused attention (%s)",
				strings.Join(CapabilitySymbols(CapUnfused), ", "), strings.Join(CapabilitySymbols(CapFused), ", "))}
	}
	l.Backend = l.backendName()
	return l, nil
}
