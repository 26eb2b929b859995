package harness

import (
	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/model"
)

// BoundaryS are the prompt lengths of the table: each side of the route
// boundary (M=1 vs M>1 is decode vs prefill; S=2..5 hit the skinny-GEMM
// regions of real engines), of 8/16-row tiles (8/9, 16/17), of the 32- and
// 64-wide MFMA/wavefront tiles (64/65, 96/97, 128/129), and a long prompt.
var BoundaryS = []int{2, 3, 4, 5, 8, 9, 16, 17, 64, 65, 96, 97, 128, 129, 512}

// Routes are the route columns of the table: the engine's own choice, and
// both paths forced onto each kernel family (bitwise required).
var Routes = []gpapi.Route{gpapi.RouteAuto, gpapi.RouteMFMA, gpapi.RouteVALU}

// Matrix returns the table's cases for the given models. full is every
// model × BoundaryS × dtype × route plus multi-step decode; the default
// (CPU) subset keeps real-model shapes to a few short prompts, since a CPU
// GEMM over 4096×4096 weights takes seconds, and runs the small debug
// shapes through everything.
func Matrix(models []model.Shape, full bool, seed uint64) []Case {
	var out []Case
	add := func(m model.Shape, s, steps int, dt dtype.Dtype, r gpapi.Route) {
		out = append(out, Case{Model: m, S: s, Steps: steps, Dtype: dt, Route: r, Dist: DistNormal, Seed: seed})
	}
	for _, m := range models {
		small := m.Hidden*m.QDim() <= 1<<16
		switch {
		case full || (small && m.Name == "tiny"):
			for _, dt := range dtype.All {
				for _, s := range BoundaryS {
					for _, r := range Routes {
						add(m, s, 1, dt, r)
					}
				}
				for _, s := range []int{2, 17, 129} {
					add(m, s, 4, dt, gpapi.RouteAuto)
				}
			}
		case small:
			for _, dt := range dtype.All {
				for _, s := range []int{2, 5, 9, 17, 65, 129} {
					for _, r := range Routes {
						add(m, s, 1, dt, r)
					}
				}
				add(m, 9, 3, dt, gpapi.RouteAuto)
			}
		default:
			add(m, 2, 1, dtype.F16, gpapi.RouteAuto)
			add(m, 17, 1, dtype.F16, gpapi.RouteAuto)
			add(m, 9, 1, dtype.BF16, gpapi.RouteMFMA)
			add(m, 5, 2, dtype.F32, gpapi.RouteAuto)
		}
	}
	return out
}
