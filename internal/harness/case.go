// Package harness runs one parity case: it draws the inputs, runs the
// prefill path over P = S+steps-1 tokens and the decode path token by token
// (chained and isolated) through a kernel library, and compares every
// sub-stage of every decode step with prefill's row, and both with the
// float64 reference (see internal/tolerance for the error model).
package harness

import (
	"fmt"
	"os"
	"strings"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/model"
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
}

// P is the number of prefill tokens.
func (c Case) P() int { return c.S + c.Steps - 1 }

// RequireBitwise reports whether the case must match bit for bit.
func (c Case) RequireBitwise() bool { return c.Bitwise || c.Route != gpapi.RouteAuto }

// Name is the subtest name, e.g. "llama3-8b/f16/S=129/auto"; options that
// differ from the defaults are appended ("/steps=3", "/dist=outliers").
func (c Case) Name() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s/S=%d/%s", c.Model.Name, c.Dtype, c.S, c.Route)
	if c.Steps > 1 {
		fmt.Fprintf(&b, "/steps=%d", c.Steps)
	}
	if c.Dist != "" && c.Dist != DistNormal {
		fmt.Fprintf(&b, "/dist=%s", c.Dist)
	}
	if c.PosOffset != 0 {
		fmt.Fprintf(&b, "/pos0=%d", c.PosOffset)
	}
	if c.Bitwise && c.Route == gpapi.RouteAuto {
		b.WriteString("/bitwise")
	}
	if c.Fault != "" {
		fmt.Fprintf(&b, "/fault=%s", c.Fault)
	}
	return b.String()
}

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
	case c.Route < gpapi.RouteAuto || c.Route > gpapi.RouteVALU:
		return fmt.Errorf("route %v is unknown", c.Route)
	}
	switch c.Dist {
	case "", DistNormal, DistPositive, DistOutliers, DistLargeQK:
	default:
		return fmt.Errorf("dist %q is unknown (valid: %v)", c.Dist, Dists)
	}
	return nil
}

// ForcedRoute returns the route GRETA_GEMM_FORCE selects (MFMA or VALU),
// or RouteAuto when it is unset. An invalid value is an error.
func ForcedRoute() (gpapi.Route, error) {
	v := os.Getenv("GRETA_GEMM_FORCE")
	if v == "" {
		return gpapi.RouteAuto, nil
	}
	r, err := gpapi.ParseRoute(v)
	if err != nil {
		return 0, fmt.Errorf("GRETA_GEMM_FORCE: %w", err)
	}
	return r, nil
}
