// Package harness runs one parity case: it draws the inputs, runs the
// prefill path over P = S+steps-1 tokens and the decode path token by token
// (chained and isolated) through a kernel library, and compares every
// sub-stage of every decode step with prefill's row, and both with the
// float64 reference (see internal/tolerance for the error model).
package harness

import (
	"fmt"
	"math"
	"os"
	"strings"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/model"
	"github.com/gretacore/parity/internal/tolerance"
)

// Dist names a value distribution of the generated inputs.
type Dist string

// Distributions. Zero-centred normal is the default; positive-only inputs
// make partial sums grow monotonically (vLLM's warning: they "may be giving
// false matches" for symmetric-error kernels); outlier channels imitate LLM
// activations; large QK drives scores towards the f16 range, where a
// softmax without max subtraction overflows.
const (
	DistNormal   Dist = "normal"
	DistPositive Dist = "positive"
	DistOutliers Dist = "outliers"
	DistLargeQK  Dist = "large_qk"
)

// Dists lists every distribution.
var Dists = []Dist{DistNormal, DistPositive, DistOutliers, DistLargeQK}

// Case is one parity case. Both paths run on Route (AUTO lets the library
// pick by M: the engine's real behaviour).
type Case struct {
	Model     model.Shape
	S         int // decode token S-1 against prefill row S-1 (S >= 2)
	Steps     int // decode steps (>= 1); prefill runs S+Steps-1 tokens
	Dtype     dtype.Dtype
	Route     gpapi.Route
	Dist      Dist
	Seed      uint64
	PosOffset int    // RoPE position of token 0
	Fault     string // library fault to activate ("" = none)
	// Bitwise requires decode to equal prefill bit for bit. It is implied
	// when Route is forced (MFMA or VALU): the same kernel on the same
	// inputs must give the same bits whatever M is.
	Bitwise bool
	// Contract is the accuracy contract the local bounds follow
	// (tolerance.Strict unless -parity.contract says otherwise).
	Contract tolerance.Contract
	// FusedOnly runs only the fused attention stage: the unfused path's
	// [n_heads, P, P] f32 score matrix would be gigabytes at long context.
	FusedOnly bool
	// AttnOnly runs the attention block only, not the MLP stages: the CPU
	// table's real shapes run their 14336-wide MLP on one case each, the
	// rest of their cases on the attention block.
	AttnOnly bool
	// Layers is the depth of a layers-mode case (-parity.layers): the
	// case chains Layers layers, each with its own weights and KV cache,
	// and the head after the last (ExecuteLayers). 0 or 1: one layer, as
	// before the layers mode (its name unchanged).
	Layers int
	// Layer is which layer of a layers-mode case this one is (0-based):
	// its weights are drawn from LayerSeed(Seed, Layer). ExecuteLayers
	// sets it; 0 is the one-layer case's own weights.
	Layer int
	// Head runs the head (final_norm, lm_head: the logits) after the
	// layer; ExecuteLayers sets it on the last layer. Needs the MLP.
	Head bool
}

// RunsHead reports whether the case runs the head stages (the library
// must also have the "mlp" capability: final_norm reads mlp_res).
func (c Case) RunsHead() bool { return c.Head && c.RunsMLP() && c.Model.HasHead() }

// Depth is the number of layers the case chains (1 for a one-layer case).
func (c Case) Depth() int { return max(1, c.Layers) }

// RunsMLP reports whether the case runs the MLP stages (the library must
// also have the "mlp" capability).
func (c Case) RunsMLP() bool { return c.Model.HasMLP() && !c.AttnOnly }

// P is the number of prefill tokens.
func (c Case) P() int { return c.S + c.Steps - 1 }

// RequireBitwise reports whether the case must match bit for bit (at the
// stages the library declares batch invariant). The vendor BLAS route is
// never bitwise: the library picks its kernel by M.
func (c Case) RequireBitwise() bool {
	return c.Bitwise || (c.Route != gpapi.RouteAuto && c.Route != gpapi.RouteBLAS)
}

// Name is the subtest name, e.g. "llama3-8b/f16/S=129/auto"; options that
// differ from the defaults are appended ("/steps=3", "/dist=outliers",
// "/pos0=4095", "/fused-only", "/attn-only", "/bitwise", "/fault=...").
func (c Case) Name() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s/S=%d/%s", c.Model.Name, c.Dtype, c.S, caseOptions(c, "/"))
	if c.Bitwise && c.Route == gpapi.RouteAuto {
		b.WriteString("/bitwise")
	}
	if c.Fault != "" {
		fmt.Fprintf(&b, "/fault=%s", c.Fault)
	}
	return b.String()
}

// Leaf is the last element of the table's subtest path [model, dtype,
// "S=..", leaf]: the route, then the options that differ from the defaults,
// joined by "_" ("auto", "auto_steps=4", "auto_dist=outliers",
// "mfma_pos0=4095", "auto_fused-only", "auto_attn-only"). Bitwise and Fault are left out: the
// table sets them for a whole run, not per case.
func (c Case) Leaf() string { return caseOptions(c, "_") }

// Validate reports the first invalid field.
func (c Case) Validate() error {
	if err := c.Model.Validate(); err != nil {
		return fmt.Errorf("model %q: %w", c.Model.Name, err)
	}
	switch {
	case c.S < 2:
		return fmt.Errorf("S=%d must be >= 2 (decode compares with prefill row S-1 of S > 1 rows)", c.S)
	case c.Steps < 1:
		return fmt.Errorf("steps=%d must be >= 1", c.Steps)
	case c.PosOffset < 0:
		return fmt.Errorf("pos0=%d must be >= 0", c.PosOffset)
	case c.Dtype < dtype.F32 || c.Dtype > dtype.BF16:
		return fmt.Errorf("dtype %v is unknown", c.Dtype)
	case c.Route < gpapi.RouteAuto || c.Route > gpapi.RouteBLAS:
		return fmt.Errorf("route %v is unknown", c.Route)
	case c.PosOffset > math.MaxInt32-c.P():
		return fmt.Errorf("pos0=%d + P=%d overflows the int32 positions", c.PosOffset, c.P())
	case c.Model.MaxPosition > 0 && c.PosOffset+c.P() > c.Model.MaxPosition:
		return fmt.Errorf("pos0=%d + P=%d exceeds the context of %s (max_position=%d)",
			c.PosOffset, c.P(), c.Model.Name, c.Model.MaxPosition)
	}
	switch c.Dist {
	case "", DistNormal, DistPositive, DistOutliers, DistLargeQK:
	default:
		return fmt.Errorf("dist %q is unknown (valid: %v)", c.Dist, Dists)
	}
	return nil
}

// ForcedRoute returns the route GRETA_GEMM_FORCE selects (MFMA, VALU, or
// BLAS: the vendor GEMM on both paths, compared in tolerance mode because a
// vendor library is not batch invariant), or RouteAuto when it is unset.
// An invalid value is an error.
func ForcedRoute() (gpapi.Route, error) {
	v := os.Getenv("GRETA_GEMM_FORCE")
	if v == "" {
		return gpapi.RouteAuto, nil
	}
	if strings.EqualFold(v, gpapi.RouteBLAS.String()) {
		return gpapi.RouteBLAS, nil
	}
	r, err := gpapi.ParseRoute(v)
	if err != nil {
		return 0, fmt.Errorf("GRETA_GEMM_FORCE: %w (or blas)", err)
	}
	return r, nil
}
