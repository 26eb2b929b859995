// Package stage is the one registry of the attention block's sub-stage
// names. Every other package (pipeline, tolerance, reports, traces,
// cmd/tracediff) refers to stages through this package, so a name is
// spelled in exactly one place.
package stage

import "fmt"

// Stage identifies one sub-stage of the attention block, in pipeline order.
type Stage int

// The sub-stages, in the order the pipeline computes them. The order is the
// order in which "first divergence" is decided.
const (
	XNorm   Stage = iota // RMSNorm of the layer input
	QProj                // x_norm · Wqᵀ (+ bq)
	KProj                // x_norm · Wkᵀ (+ bk)
	VProj                // x_norm · Wvᵀ (+ bv)
	QRope                // RoPE(q_proj)
	KRope                // RoPE(k_proj)
	KVCache              // the K and V cache rows the step wrote
	QK                   // scale · q_rope · Kᵀ, causal mask
	Softmax              // softmax(qk)
	PV                   // softmax · V
	AttnOut              // pv · Woᵀ (output projection)
	numStages
)

// Count is the number of stages; arrays indexed by Stage have this length.
const Count = int(numStages)

var names = [numStages]string{
	XNorm:   "x_norm",
	QProj:   "q_proj",
	KProj:   "k_proj",
	VProj:   "v_proj",
	QRope:   "q_rope",
	KRope:   "k_rope",
	KVCache: "kv_cache",
	QK:      "qk",
	Softmax: "softmax",
	PV:      "pv",
	AttnOut: "attn_out",
}

// All returns every stage in pipeline order.
func All() []Stage {
	s := make([]Stage, numStages)
	for i := range s {
		s[i] = Stage(i)
	}
	return s
}

// String returns the stage's registry name, e.g. "q_proj".
func (s Stage) String() string {
	if s < 0 || s >= numStages {
		return fmt.Sprintf("stage(%d)", int(s))
	}
	return names[s]
}

// Valid reports whether s is one of the registered stages.
func (s Stage) Valid() bool { return s >= 0 && s < numStages }

// Parse returns the stage named name, or an error listing the valid names.
func Parse(name string) (Stage, error) {
	for i, n := range names {
		if n == name {
			return Stage(i), nil
		}
	}
	return -1, fmt.Errorf("unknown stage %q (valid: %v)", name, names)
}

// IsProjection reports whether the stage is computed by gp_linear, and so
// has a route (MFMA or VALU).
func (s Stage) IsProjection() bool {
	return s == QProj || s == KProj || s == VProj || s == AttnOut
}

// PerHead reports whether the stage's output splits into attention heads
// (query heads for q_*, qk, softmax, pv; KV heads for k_*, v_proj, kv_cache).
// x_norm and attn_out are whole-row stages.
func (s Stage) PerHead() bool { return s != XNorm && s != AttnOut }

// KVHeads reports whether a per-head stage is indexed by KV head rather than
// query head.
func (s Stage) KVHeads() bool {
	return s == KProj || s == VProj || s == KRope || s == KVCache
}
