// Package stage is the one registry of the transformer layer's sub-stage
// names (the attention block, then the residual adds, the post-attention
// norm and the gated MLP, then the head: final norm and LM head) and their
// shape attributes. Every other package (pipeline,
// tolerance, reports, traces, cmd/tracediff) refers to stages through this
// package, so a name is spelled in exactly one place. What each stage
// computes, reads and is checked against lives in one table too:
// internal/harness/stages.go.
package stage

import "fmt"

// Stage identifies one sub-stage of the layer, in pipeline order.
type Stage int

// The sub-stages, in the order the pipeline computes them. The order is the
// order in which "first divergence" is decided.
const (
	XNorm    Stage = iota // RMSNorm of the layer input
	QProj                 // x_norm · Wqᵀ (+ bq)
	KProj                 // x_norm · Wkᵀ (+ bk)
	VProj                 // x_norm · Wvᵀ (+ bv)
	QRope                 // RoPE(q_proj)
	KRope                 // RoPE(k_proj)
	KVCache               // the K and V cache rows the step wrote
	QK                    // scale · q_rope · Kᵀ, causal mask (unfused attention)
	Softmax               // softmax(qk) (unfused attention)
	PV                    // softmax · V (unfused attention)
	Attn                  // fused attention: softmax(scale · q·Kᵀ)·V and its log-sum-exp
	AttnOut               // attention output · Woᵀ (output projection)
	AttnRes               // h = x + attn_out: the residual add after attention
	PostNorm              // RMSNorm of h with the post-attention weight (Gemma: ·(1 + w))
	GateProj              // post_norm · Wgateᵀ
	UpProj                // post_norm · Wupᵀ
	Act                   // gated activation: silu(gate)·up (SwiGLU) or gelu_tanh(gate)·up
	DownProj              // act · Wdownᵀ
	MLPRes                // out = h + down_proj: the residual add after the MLP
	// The head, after the last layer (a case with the head on: the layers
	// mode, -parity.head): the final norm and the LM head, whose output
	// row is the logits.
	FinalNorm // RMSNorm of the last layer's mlp_res with the final norm weight (Gemma: ·(1 + w))
	LMHead    // final_norm · Wlmᵀ: the logits, N = vocab (the largest GEMV)
	numStages
)

// Count is the number of stages; arrays indexed by Stage have this length.
const Count = int(numStages)

// info is a stage's name and the attributes reports and traces need.
type info struct {
	name       string
	projection bool // computed by gp_linear, so it has a route
	perHead    bool // the output splits into attention heads
	kvHeads    bool // ... indexed by KV head rather than query head
	head       bool // a stage of the head, after the last layer
}

var infos = [numStages]info{
	XNorm:     {name: "x_norm"},
	QProj:     {name: "q_proj", projection: true, perHead: true},
	KProj:     {name: "k_proj", projection: true, perHead: true, kvHeads: true},
	VProj:     {name: "v_proj", projection: true, perHead: true, kvHeads: true},
	QRope:     {name: "q_rope", perHead: true},
	KRope:     {name: "k_rope", perHead: true, kvHeads: true},
	KVCache:   {name: "kv_cache", perHead: true, kvHeads: true},
	QK:        {name: "qk", perHead: true},
	Softmax:   {name: "softmax", perHead: true},
	PV:        {name: "pv", perHead: true},
	Attn:      {name: "attn", perHead: true},
	AttnOut:   {name: "attn_out", projection: true},
	AttnRes:   {name: "attn_res"},
	PostNorm:  {name: "post_norm"},
	GateProj:  {name: "gate_proj", projection: true},
	UpProj:    {name: "up_proj", projection: true},
	Act:       {name: "act"},
	DownProj:  {name: "down_proj", projection: true},
	MLPRes:    {name: "mlp_res"},
	FinalNorm: {name: "final_norm", head: true},
	LMHead:    {name: "lm_head", projection: true, head: true},
}

// All returns every stage in pipeline order.
func All() []Stage {
	s := make([]Stage, numStages)
	for i := range s {
		s[i] = Stage(i)
	}
	return s
}

// Projections returns the stages computed by gp_linear, in pipeline order.
func Projections() []Stage {
	var out []Stage
	for _, s := range All() {
		if s.IsProjection() {
			out = append(out, s)
		}
	}
	return out
}

// String returns the stage's registry name, e.g. "q_proj".
func (s Stage) String() string {
	if !s.Valid() {
		return fmt.Sprintf("stage(%d)", int(s))
	}
	return infos[s].name
}

// Valid reports whether s is one of the registered stages.
func (s Stage) Valid() bool { return s >= 0 && s < numStages }

// Names returns every stage's name in pipeline order.
func Names() []string {
	out := make([]string, numStages)
	for i := range out {
		out[i] = infos[i].name
	}
	return out
}

// Parse returns the stage named name, or an error listing the valid names.
func Parse(name string) (Stage, error) {
	for i := range infos {
		if infos[i].name == name {
			return Stage(i), nil
		}
	}
	return -1, fmt.Errorf("unknown stage %q (valid: %v)", name, Names())
}

// IsProjection reports whether the stage is computed by gp_linear, and so
// has a route (MFMA or VALU).
func (s Stage) IsProjection() bool { return s.Valid() && infos[s].projection }

// PerHead reports whether the stage's output splits into attention heads
// (query heads for q_*, qk, softmax, pv, attn; KV heads for k_*, v_proj,
// kv_cache). x_norm, attn_out and the MLP block's stages are whole-row
// stages.
func (s Stage) PerHead() bool { return s.Valid() && infos[s].perHead }

// InHead reports whether the stage belongs to the head (final_norm,
// lm_head): it runs once, after the last layer, and only in a case that
// asks for it (the layers mode, -parity.head); a case without the head
// does not count it as a stage it skipped.
func (s Stage) InHead() bool { return s.Valid() && infos[s].head }

// KVHeads reports whether a per-head stage is indexed by KV head rather than
// query head.
func (s Stage) KVHeads() bool { return s.Valid() && infos[s].kvHeads }
