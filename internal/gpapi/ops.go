package gpapi

import (
	"bytes"
	"fmt"
)

// Route is a gp_route: which projection kernel family runs.
type Route int32

// Routes of gp_linear.
const (
	RouteAuto Route = 0 // MFMA for M > 1, VALU for M == 1
	RouteMFMA Route = 1 // matrix-core tiled GEMM
	RouteVALU Route = 2 // per-row GEMV
	// RouteBLAS is the vendor library's GEMM (cuBLAS, hipBLASLt/rocBLAS):
	// the benchmarks' anchor, and a tolerance-mode route of the parity
	// table through GRETA_GEMM_FORCE=BLAS only. It is not batch invariant,
	// so it is not in harness.Routes nor accepted by ParseRoute, and a
	// backend without a vendor library returns ErrUnsupported.
	RouteBLAS Route = 3
)

func (r Route) String() string {
	switch r {
	case RouteAuto:
		return "auto"
	case RouteMFMA:
		return "mfma"
	case RouteVALU:
		return "valu"
	case RouteBLAS:
		return "blas"
	}
	return fmt.Sprintf("route(%d)", int32(r))
}

// ParseRoute accepts "auto", "mfma" or "valu" in any case.
func ParseRoute(s string) (Route, error) {
	for _, r := range []Route{RouteAuto, RouteMFMA, RouteVALU} {
		if equalFold(s, r.String()) {
			return r, nil
		}
	}
	return -1, fmt.Errorf("unknown route %q (valid: auto, mfma, valu)", s)
}

func equalFold(a, b string) bool { return bytes.EqualFold([]byte(a), []byte(b)) }

// RopeLayout is a gp_rope_layout.
type RopeLayout int32

// RoPE layouts.
const (
	RopeNeox        RopeLayout = 0 // rotate-half pairs (i, i+d/2)
	RopeInterleaved RopeLayout = 1 // GPT-J pairs (2i, 2i+1)
)

func (r RopeLayout) String() string {
	if r == RopeInterleaved {
		return "interleaved"
	}
	return "neox"
}

// Act is a gp_act: the gated activation of gp_gated_act.
type Act int32

// Gated activations.
const (
	ActSwiGLU   Act = 0 // silu(gate)·up
	ActGeluTanh Act = 1 // tanh-GELU(gate)·up
)

func (a Act) String() string {
	switch a {
	case ActSwiGLU:
		return "swiglu"
	case ActGeluTanh:
		return "gelu_tanh"
	}
	return fmt.Sprintf("act(%d)", int32(a))
}

// Launch is a route attestation: what gp_last_launch says ran.
type Launch struct {
	Route  Route
	TileM  int
	TileN  int
	TileK  int
	SplitK int
	Kernel string
}

func (l Launch) String() string {
	s := l.Kernel
	if l.Route != RouteAuto {
		s += " route=" + l.Route.String()
	}
	if l.TileM+l.TileN+l.TileK > 0 {
		s += fmt.Sprintf(" tile=%dx%dx%d", l.TileM, l.TileN, l.TileK)
	}
	if l.SplitK > 1 {
		s += fmt.Sprintf(" splitk=%d", l.SplitK)
	}
	return s
}

// attest reads gp_last_launch; callers hold l.mu.
func (l *Lib) attest() (Launch, error) {
	var r, tm, tn, tk, sk int32
	name := make([]byte, 64)
	if err := l.check("gp_last_launch", l.lastLaunch(&r, &tm, &tn, &tk, &sk, &name[0], int32(len(name)))); err != nil {
		return Launch{}, err
	}
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return Launch{Route: Route(r), TileM: int(tm), TileN: int(tn), TileK: int(tk), SplitK: int(sk), Kernel: string(name)}, nil
}

// call runs one sub-stage entry point under the lock and returns its
// attestation (the zero Launch without the attestation capability).
func (l *Lib) call(fn string, f func() int32) (Launch, error) {
	defer l.lock(opKernel)()
	if err := l.check(fn, f()); err != nil {
		return Launch{}, err
	}
	if !l.caps[CapAttestation] {
		return Launch{}, nil
	}
	return l.attest()
}

// callCap is call for an entry point of an optional capability.
func (l *Lib) callCap(c Capability, fn string, f func() int32) (Launch, error) {
	if err := l.Need(c); err != nil {
		return Launch{}, err
	}
	return l.call(fn, f)
}

// RMSNorm calls gp_rmsnorm.
func (l *Lib) RMSNorm(dt int32, x, w, y uintptr, rows, dim int, eps float32) (Launch, error) {
	return l.call("gp_rmsnorm", func() int32 { return l.rmsnorm(dt, x, w, y, int32(rows), int32(dim), eps) })
}

// Linear calls gp_linear: y[M,N] = x[M,K]·W[N,K]ᵀ (+ bias; bias may be 0).
func (l *Lib) Linear(dt int32, route Route, x, w, bias, y uintptr, m, n, k int) (Launch, error) {
	return l.call("gp_linear", func() int32 {
		return l.linear(dt, int32(route), x, w, bias, y, int32(m), int32(n), int32(k))
	})
}

// Rope calls gp_rope.
func (l *Lib) Rope(dt int32, layout RopeLayout, x, y, pos uintptr, rows, nHeads, headDim int, theta float32) (Launch, error) {
	return l.call("gp_rope", func() int32 {
		return l.rope(dt, int32(layout), x, y, pos, int32(rows), int32(nHeads), int32(headDim), theta)
	})
}

// KVAppend calls gp_kv_append.
func (l *Lib) KVAppend(dt int32, k, v, kCache, vCache uintptr, rows, kvWidth, slot, capacity int) (Launch, error) {
	return l.call("gp_kv_append", func() int32 {
		return l.kvAppend(dt, k, v, kCache, vCache, int32(rows), int32(kvWidth), int32(slot), int32(capacity))
	})
}

// AttnScores calls gp_attn_scores.
func (l *Lib) AttnScores(dt int32, q, kCache, scores uintptr, nQ, nKV, nHeads, nKVHeads, headDim, qPos0 int, scale float32, causal bool) (Launch, error) {
	c := int32(0)
	if causal {
		c = 1
	}
	return l.callCap(CapUnfused, "gp_attn_scores", func() int32 {
		return l.attnScores(dt, q, kCache, scores, int32(nQ), int32(nKV), int32(nHeads), int32(nKVHeads), int32(headDim), int32(qPos0), scale, c)
	})
}

// Softmax calls gp_softmax.
func (l *Lib) Softmax(scores, probs uintptr, nHeads, nQ, nKV int) (Launch, error) {
	return l.callCap(CapUnfused, "gp_softmax", func() int32 { return l.softmax(scores, probs, int32(nHeads), int32(nQ), int32(nKV)) })
}

// AttnPV calls gp_attn_pv.
func (l *Lib) AttnPV(dt int32, probs, vCache, out uintptr, nQ, nKV, nHeads, nKVHeads, headDim int) (Launch, error) {
	return l.callCap(CapUnfused, "gp_attn_pv", func() int32 {
		return l.attnPV(dt, probs, vCache, out, int32(nQ), int32(nKV), int32(nHeads), int32(nKVHeads), int32(headDim))
	})
}

// Attention calls gp_attention (fused attention; lse may be 0).
func (l *Lib) Attention(dt int32, q, kCache, vCache, out, lse uintptr, nQ, nKV, nHeads, nKVHeads, headDim, qPos0 int, scale float32, causal bool) (Launch, error) {
	c := int32(0)
	if causal {
		c = 1
	}
	return l.callCap(CapFused, "gp_attention", func() int32 {
		return l.attention(dt, q, kCache, vCache, out, lse, int32(nQ), int32(nKV), int32(nHeads), int32(nKVHeads), int32(headDim), int32(qPos0), scale, c)
	})
}

// ResidualAdd calls gp_residual_add: y = a + b, rows × width.
func (l *Lib) ResidualAdd(dt int32, a, b, y uintptr, rows, width int) (Launch, error) {
	return l.callCap(CapMLP, "gp_residual_add", func() int32 {
		return l.residualAdd(dt, a, b, y, int32(rows), int32(width))
	})
}

// RMSNormOffset calls gp_rmsnorm_offset: gp_rmsnorm with the weight
// (wOffset + w), 0 or Gemma's 1.
func (l *Lib) RMSNormOffset(dt int32, x, w, y uintptr, rows, dim int, eps, wOffset float32) (Launch, error) {
	return l.callCap(CapMLP, "gp_rmsnorm_offset", func() int32 {
		return l.rmsnormOffset(dt, x, w, y, int32(rows), int32(dim), eps, wOffset)
	})
}

// GatedAct calls gp_gated_act: y = act(gate)·up, rows × width.
func (l *Lib) GatedAct(dt int32, kind Act, gate, up, y uintptr, rows, width int) (Launch, error) {
	return l.callCap(CapMLP, "gp_gated_act", func() int32 {
		return l.gatedAct(dt, int32(kind), gate, up, y, int32(rows), int32(width))
	})
}

// SetFault selects a named fault ("" or "none" clears it); a
// *MissingError without the faults capability.
func (l *Lib) SetFault(name string) error {
	if err := l.Need(CapFaults); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.check("gp_set_fault", l.setFault(name))
}

// ActiveFault returns the active fault's name, "none" if none (always
// without the faults capability).
func (l *Lib) ActiveFault() string {
	if !l.caps[CapFaults] {
		return "none"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.activeFault()
}

// Faults lists the fault names the library implements (none without the
// faults capability).
func (l *Lib) Faults() []string {
	if !l.caps[CapFaults] {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.faultCount()
	out := make([]string, 0, n)
	for i := int32(0); i < n; i++ {
		out = append(out, l.faultName(i))
	}
	return out
}
