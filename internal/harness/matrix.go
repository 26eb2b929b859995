package harness

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/model"
)

// BoundaryS are the prompt lengths of the table: each side of the route
// boundary (M=1 vs M>1 is decode vs prefill; S=2..5 hit the skinny-GEMM
// regions of real engines), of 8/16-row tiles (8/9, 16/17), of the 32- and
// 64-wide MFMA/wavefront tiles (64/65, 96/97, 128/129), and a long prompt.
var BoundaryS = []int{2, 3, 4, 5, 8, 9, 16, 17, 64, 65, 96, 97, 128, 129, 512}

// AttnSplitS are KV lengths (decode step 0 of a case reads S keys) at and
// across the attention kernels' key splits: the fused attention stage's
// splits of 64 keys and its 128-key tiles (63/64/65 … 191/192/193), the
// scores kernel's 64-key blocks, and P·V's 256-key chunks
// (GP_ATTN_PV_CHUNK_KEYS: 255/256/257, 511/512/513; 383/384/385 falls
// inside one). A split-KV decode that drops or counts twice its last,
// partial chunk is wrong only at such lengths.
var AttnSplitS = []int{63, 64, 65, 127, 128, 129, 191, 192, 193, 255, 256, 257, 383, 384, 385, 511, 512, 513}

// LongS are the long-context tier's KV lengths (full mode, debug shapes
// whose context holds them): each side of 4096 keys, then 16384 and 32768.
// These cases run the fused attention stage only (Case.FusedOnly).
var LongS = []int{4096, 4097, 16384, 32768}

// PosOffsets are the table's RoPE start positions (pos0) besides 0 and the
// end of each model's context (pos0 = max_position - P): each side of 2048,
// past which f16 no longer holds every integer (a decode RoPE that keeps its
// position in f16 is wrong there), and of 4096, where the f16 spacing is 4.
// bf16 holds integers only up to 256, so these catch a bf16 position too.
var PosOffsets = []int{2047, 4095}

// Routes are the route columns of the table: the engine's own choice, and
// both paths forced onto each kernel family (bitwise required).
var Routes = []gpapi.Route{gpapi.RouteAuto, gpapi.RouteMFMA, gpapi.RouteVALU}

// sSteps is a prompt length and a number of decode steps.
type sSteps struct{ s, steps int }

// Matrix returns the table's cases for the given models. full is every
// model × BoundaryS × dtype × route plus multi-step decode; the default
// (CPU) subset keeps real-model shapes to a few short prompts, since a CPU
// GEMM over 4096×4096 weights takes seconds, and runs the small debug
// shapes through everything.
//
// On top of those route and tile boundaries, every debug shape, in both
// modes, runs each input distribution (Dists) on a few S, the KV lengths of
// AttnSplitS, and start positions past 2048 up to its context (PosOffsets,
// on AUTO and both forced routes). In full mode the debug shapes add the
// long-context tier (LongS, fused attention only) and the real shapes get
// the same tiers on fewer lengths; in the default subset a real shape adds
// bf16 on AUTO and one f16 case ending at the last position of its context.
//
// Cases come grouped by model, then dtype (in order of first appearance),
// then S ascending, so that the table's subtest tree [model, dtype, "S=..",
// Case.Leaf] holds each path once. Names (Case.Name) are unique: a case
// already in the matrix is not added twice, nor one whose positions would
// run past its model's context.
func Matrix(models []model.Shape, full bool, seed uint64) []Case {
	mb := matrixBuilder{seed: seed, seen: map[string]bool{}}
	auto := gpapi.RouteAuto
	for _, m := range models {
		add := func(s, steps int, dt dtype.Dtype, r gpapi.Route) {
			mb.add(Case{Model: m, S: s, Steps: steps, Dtype: dt, Route: r})
		}
		small := m.Hidden*m.QDim() <= 1<<16
		switch {
		case full || (small && m.Name == "tiny-k90"):
			for _, dt := range dtype.All {
				for _, s := range BoundaryS {
					for _, r := range Routes {
						add(s, 1, dt, r)
					}
				}
				for _, s := range []int{2, 17, 129} {
					add(s, 4, dt, auto)
				}
			}
		case small:
			for _, dt := range dtype.All {
				for _, s := range []int{2, 5, 9, 17, 65, 129} {
					for _, r := range Routes {
						add(s, 1, dt, r)
					}
				}
				add(9, 3, dt, auto)
			}
		default:
			// The MLP of a real shape triples the weights and the CPU
			// time of a case: it runs on S=2 only, the other cases run
			// the attention block (Case.AttnOnly).
			add(2, 1, dtype.F16, auto)
			mb.attnOnly = m.HasMLP()
			add(17, 1, dtype.F16, auto)
			add(9, 1, dtype.BF16, gpapi.RouteMFMA)
			add(5, 2, dtype.F32, auto)
		}

		switch {
		case small:
			// Debug shapes are cheap: every tier on every dtype.
			distS, posS := []int{2, 9, 65, 129}, []sSteps{{2, 1}, {9, 1}, {17, 1}, {65, 1}, {5, 3}}
			if full {
				distS = append(distS, 513)
				posS = append(posS, sSteps{513, 1}, sSteps{129, 4})
			}
			mb.dists(m, dtype.All, distS, full)
			mb.splits(m, dtype.All)
			mb.positions(m, dtype.All, posS, Routes[:1])
			mb.positions(m, dtype.All, []sSteps{{17, 1}}, Routes[1:])
			if full {
				mb.long(m)
			}
		case full:
			// Real shapes on a GPU: the float64 references of a real
			// shape cost seconds on the host, so fewer lengths.
			mb.dists(m, dtype.All, []int{2, 129}, false)
			mb.splits(m, []dtype.Dtype{dtype.F16})
			mb.positions(m, dtype.All, []sSteps{{2, 1}, {17, 1}, {5, 3}}, Routes[:1])
			mb.positions(m, dtype.All, []sSteps{{17, 1}}, Routes[1:])
		default:
			// Real shapes on the CPU: bf16 on AUTO, and the real RoPE
			// (theta, layout, head_dim) at the last position of the context.
			add(3, 1, dtype.BF16, auto)
			if m.MaxPosition > 2 {
				mb.add(Case{Model: m, S: 2, Steps: 1, Dtype: dtype.F16, Route: auto, PosOffset: m.MaxPosition - 2})
			}
		}
		mb.attnOnly = false
	}
	mb.group()
	return mb.out
}

// matrixBuilder collects the table's cases, each name once.
type matrixBuilder struct {
	seed     uint64
	seen     map[string]bool
	out      []Case
	attnOnly bool // cases added now run the attention block only
}

// add appends c with the table's seed (and DistNormal for an unset Dist)
// unless a case of the same name is already there or c's positions would
// run past its model's context (a LongS length beyond a short context).
func (mb *matrixBuilder) add(c Case) {
	c.Seed = mb.seed
	c.AttnOnly = mb.attnOnly
	if c.Dist == "" {
		c.Dist = DistNormal
	}
	if c.Model.MaxPosition > 0 && c.PosOffset+c.P() > c.Model.MaxPosition {
		return
	}
	if n := c.Name(); !mb.seen[n] {
		mb.seen[n] = true
		mb.out = append(mb.out, c)
	}
}

// dists adds every distribution but the default (normal) at each S on AUTO,
// and with steps a 4-step decode at S=17 for each.
func (mb *matrixBuilder) dists(m model.Shape, dts []dtype.Dtype, ss []int, steps bool) {
	for _, dt := range dts {
		for _, d := range Dists {
			if d == DistNormal {
				continue
			}
			for _, s := range ss {
				mb.add(Case{Model: m, S: s, Steps: 1, Dtype: dt, Route: gpapi.RouteAuto, Dist: d})
			}
			if steps {
				mb.add(Case{Model: m, S: 17, Steps: 4, Dtype: dt, Route: gpapi.RouteAuto, Dist: d})
			}
		}
	}
}

// splits adds the KV lengths of AttnSplitS on AUTO (the attention kernels
// do not depend on the projection route).
func (mb *matrixBuilder) splits(m model.Shape, dts []dtype.Dtype) {
	for _, dt := range dts {
		for _, s := range AttnSplitS {
			mb.add(Case{Model: m, S: s, Steps: 1, Dtype: dt, Route: gpapi.RouteAuto})
		}
	}
}

// positions adds each (S, steps) on each route at every start position of
// posOffsets.
func (mb *matrixBuilder) positions(m model.Shape, dts []dtype.Dtype, ss []sSteps, routes []gpapi.Route) {
	for _, dt := range dts {
		for _, p := range ss {
			for _, off := range posOffsets(m, p.s+p.steps-1) {
				for _, r := range routes {
					mb.add(Case{Model: m, S: p.s, Steps: p.steps, Dtype: dt, Route: r, PosOffset: off})
				}
			}
		}
	}
}

// long adds the long-context tier, fused attention only: every LongS on
// f16, 4097 keys (one past a 4096 boundary) on f32 and bf16 too, and 4097
// keys ending at the last position of the context.
func (mb *matrixBuilder) long(m model.Shape) {
	long := func(s int, dt dtype.Dtype, pos0 int) {
		mb.add(Case{Model: m, S: s, Steps: 1, Dtype: dt, Route: gpapi.RouteAuto, PosOffset: pos0, FusedOnly: true})
	}
	for _, s := range LongS {
		long(s, dtype.F16, 0)
	}
	long(4097, dtype.F32, 0)
	long(4097, dtype.BF16, 0)
	if off := m.MaxPosition - 4097; off > 0 {
		long(4097, dtype.F16, off)
	}
}

// posOffsets returns the start positions for p prefill tokens on m:
// PosOffsets and the end of the context (max_position - p), those that
// keep every position inside the context, ascending.
func posOffsets(m model.Shape, p int) []int {
	cands := slices.Clone(PosOffsets)
	if m.MaxPosition > 0 {
		cands = append(cands, m.MaxPosition-p)
	}
	var out []int
	for _, off := range cands {
		if off > 0 && (m.MaxPosition == 0 || off+p <= m.MaxPosition) && !slices.Contains(out, off) {
			out = append(out, off)
		}
	}
	slices.Sort(out)
	return out
}

// group orders the cases by model, then dtype (each in order of first
// appearance), then S, keeping the order of the rest: the table's subtest
// tree runs consecutive cases with a common prefix under one subtest, and a
// prefix split in two would run twice, the second time renamed "S=2#01".
func (mb *matrixBuilder) group() {
	type md struct {
		model string
		dt    dtype.Dtype
	}
	mi, di := map[string]int{}, map[md]int{}
	for _, c := range mb.out {
		if _, ok := mi[c.Model.Name]; !ok {
			mi[c.Model.Name] = len(mi)
		}
		if _, ok := di[md{c.Model.Name, c.Dtype}]; !ok {
			di[md{c.Model.Name, c.Dtype}] = len(di)
		}
	}
	slices.SortStableFunc(mb.out, func(a, b Case) int {
		return cmp.Or(
			cmp.Compare(mi[a.Model.Name], mi[b.Model.Name]),
			cmp.Compare(di[md{a.Model.Name, a.Dtype}], di[md{b.Model.Name, b.Dtype}]),
			cmp.Compare(a.S, b.S))
	})
}

// caseOptions is a case's route followed by the options that differ from
// the defaults (steps, dist, pos0, fused-only, attn-only), joined by sep: the tail of
// Case.Name ("/") and the table's leaf, Case.Leaf ("_").
func caseOptions(c Case, sep string) string {
	parts := []string{c.Route.String()}
	if c.Steps > 1 {
		parts = append(parts, fmt.Sprintf("steps=%d", c.Steps))
	}
	if c.Dist != "" && c.Dist != DistNormal {
		parts = append(parts, fmt.Sprintf("dist=%s", c.Dist))
	}
	if c.PosOffset != 0 {
		parts = append(parts, fmt.Sprintf("pos0=%d", c.PosOffset))
	}
	if c.FusedOnly {
		parts = append(parts, "fused-only")
	}
	if c.AttnOnly {
		parts = append(parts, "attn-only")
	}
	if c.Layers > 1 {
		parts = append(parts, fmt.Sprintf("layers=%d", c.Layers))
	} else if c.Head {
		parts = append(parts, "head")
	}
	return strings.Join(parts, sep)
}
