package parity

import (
	"fmt"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/model"
	"pgregory.net/rapid"
)

// sAround are prompt lengths straddling the route and tile boundaries of
// harness.BoundaryS, drawn besides the small lengths where skinny-GEMM
// regions switch.
var sAround = []int{31, 32, 33, 63, 64, 65, 95, 96, 97, 127, 128, 129}

// shapeGen draws a layer: GQA/MQA/MHA head counts, head_dim in {64, 80, 96,
// 128, 256}, a hidden size K that is usually not a multiple of the GEMM K
// tile (32) nor of the split-K factor (4), and an MLP of either activation
// and norm variant. maxHidden bounds the cost on the CPU backend.
func shapeGen(maxHidden int) *rapid.Generator[model.Shape] {
	return rapid.Custom(func(t *rapid.T) model.Shape {
		nkv := rapid.SampledFrom([]int{1, 2, 4}).Draw(t, "n_kv_heads")
		group := rapid.SampledFrom([]int{1, 2, 3, 4, 7}).Draw(t, "group")
		s := model.Shape{
			Name:       "gen",
			NKVHeads:   nkv,
			NHeads:     nkv * group,
			HeadDim:    rapid.SampledFrom([]int{64, 80, 96, 128, 256}).Draw(t, "head_dim"),
			Hidden:     rapid.IntRange(16, maxHidden).Draw(t, "hidden"),
			RopeTheta:  rapid.SampledFrom([]float64{1e4, 5e5, 1e6}).Draw(t, "rope_theta"),
			RopeLayout: rapid.SampledFrom([]string{"neox", "interleaved"}).Draw(t, "rope_layout"),
			QKVBias:    rapid.Bool().Draw(t, "qkv_bias"),
			RMSEps:     rapid.SampledFrom([]float64{1e-5, 1e-6}).Draw(t, "rms_eps"),
			// The MLP: an intermediate size around the 256-element K
			// tile and the 64-wide tiles, either activation and norm.
			IntermediateSize: rapid.IntRange(16, 3*maxHidden).Draw(t, "intermediate_size"),
			Activation:       rapid.SampledFrom([]string{model.ActSwiGLU, model.ActGeluTanh}).Draw(t, "activation"),
			NormWeightOffset: rapid.SampledFrom([]float64{0, 1}).Draw(t, "norm_weight_offset"),
		}
		s.Name = fmt.Sprintf("gen-h%d-q%d-kv%d-d%d-i%d", s.Hidden, s.NHeads, s.NKVHeads, s.HeadDim, s.IntermediateSize)
		return s
	})
}

// caseGen draws a whole case: shape, S and steps straddling boundaries, a
// RoPE position offset (large positions stress the f32 angle), dtype,
// route (of those the library accepts), value distribution and seed.
func caseGen(maxHidden, maxS int, routes []gpapi.Route) *rapid.Generator[harness.Case] {
	var around []int
	for _, s := range sAround {
		if s <= maxS {
			around = append(around, s)
		}
	}
	return rapid.Custom(func(t *rapid.T) harness.Case {
		return harness.Case{
			Model:     shapeGen(maxHidden).Draw(t, "shape"),
			S:         rapid.OneOf(rapid.IntRange(2, 20), rapid.SampledFrom(around)).Draw(t, "S"),
			Steps:     rapid.IntRange(1, 3).Draw(t, "steps"),
			PosOffset: rapid.OneOf(rapid.Just(0), rapid.IntRange(0, 30000)).Draw(t, "pos0"),
			Dtype:     rapid.SampledFrom(dtype.All).Draw(t, "dtype"),
			Route:     rapid.SampledFrom(routes).Draw(t, "route"),
			Dist:      rapid.SampledFrom(harness.Dists).Draw(t, "dist"),
			Seed:      rapid.Uint64().Draw(t, "seed"),
		}
	})
}

// libRoutes are the table routes (harness.Routes) the library accepts: AUTO
// always, the forced ones only with the routes capability.
func libRoutes(lib *gpapi.Lib) []gpapi.Route {
	var out []gpapi.Route
	for _, r := range harness.Routes {
		if lib.SupportsRoute(r) {
			out = append(out, r)
		}
	}
	return out
}
