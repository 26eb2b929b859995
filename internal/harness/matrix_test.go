package harness

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/model"
)

// tablePath is the table's subtest path of a case (parity/table_test.go).
func tablePath(c Case) []string {
	return []string{c.Model.Name, c.Dtype.String(), fmt.Sprintf("S=%d", c.S), c.Leaf()}
}

// TestMatrix checks the table in both modes: every case valid and inside
// its model's context, names and subtest paths unique, each path prefix
// contiguous (else the subtest tree renames the second run "S=2#01"), and
// the tiers the issue asked for present: every input distribution, start
// positions past 2048, KV lengths across the attention splits, a GQA
// fixture whose group size is not its KV head count, bf16 on AUTO for a
// real shape, and in full mode more than 512 keys with the long-context
// tier on the fused stage only.
func TestMatrix(t *testing.T) {
	models, err := model.LoadDir("../../fixtures/models")
	if err != nil {
		t.Fatal(err)
	}
	for _, full := range []bool{false, true} {
		t.Run(fmt.Sprintf("full=%v", full), func(t *testing.T) {
			cases := Matrix(models, full, 1)
			if len(cases) == 0 {
				t.Fatal("empty matrix")
			}
			names, paths := map[string]bool{}, map[string]bool{}
			dists := map[Dist]bool{}
			splits := map[int]bool{}
			var maxPos0, maxS int
			gqa, realBF16Auto, realPos := false, false, false
			for _, c := range cases {
				n := c.Name()
				if err := c.Validate(); err != nil {
					t.Errorf("%s: %v", n, err)
				}
				if c.Model.MaxPosition <= 0 || c.PosOffset+c.P() > c.Model.MaxPosition {
					t.Errorf("%s: pos0 %d + P %d is outside the context %d", n, c.PosOffset, c.P(), c.Model.MaxPosition)
				}
				if c.Seed != 1 {
					t.Errorf("%s: seed %d, want the table's 1", n, c.Seed)
				}
				if names[n] {
					t.Errorf("duplicate name %s", n)
				}
				names[n] = true
				p := strings.Join(tablePath(c), "/")
				if paths[p] {
					t.Errorf("duplicate subtest path %s", p)
				}
				paths[p] = true
				if c.Dist == DistNormal && c.PosOffset == 0 && !c.FusedOnly {
					// The leaf of the cases the table had before these
					// tiers: unchanged.
					old := c.Route.String()
					if c.Steps > 1 {
						old += fmt.Sprintf("_steps=%d", c.Steps)
					}
					if c.AttnOnly {
						// A real shape's CPU case that skips the MLP
						// (all but S=2) says so.
						old += "_attn-only"
					}
					if c.Leaf() != old {
						t.Errorf("%s: leaf %q, want the old %q", n, c.Leaf(), old)
					}
				}
				dists[c.Dist] = true
				maxPos0, maxS = max(maxPos0, c.PosOffset), max(maxS, c.S)
				if nkv := c.Model.NKVHeads; nkv > 1 && c.Model.NHeads/nkv != nkv {
					gqa = true
				}
				small := c.Model.Hidden*c.Model.QDim() <= 1<<16
				if small && c.Route == gpapi.RouteAuto && c.Dist == DistNormal && c.PosOffset == 0 && c.Steps == 1 {
					splits[c.S] = true
				}
				if !small && c.Dtype == dtype.BF16 && c.Route == gpapi.RouteAuto {
					realBF16Auto = true
				}
				if !small && c.PosOffset > 2048 {
					realPos = true
				}
				if c.FusedOnly != (c.S >= 4096) {
					t.Errorf("%s: FusedOnly=%v, want it exactly on the long-context tier (S >= 4096)", n, c.FusedOnly)
				}
				if !full && (c.FusedOnly || c.S > 1024) {
					t.Errorf("%s: a long-context case in the CPU default subset", n)
				}
			}
			checkContiguous(t, cases)
			for _, d := range Dists {
				if !dists[d] {
					t.Errorf("no case draws dist %s", d)
				}
			}
			if maxPos0 <= 2048 {
				t.Errorf("largest pos0 %d: want start positions past 2048", maxPos0)
			}
			for _, s := range AttnSplitS {
				if !splits[s] {
					t.Errorf("no debug-shape case reads %d keys (AttnSplitS)", s)
				}
			}
			if !gqa {
				t.Error("no case on a fixture whose GQA group size (n_heads/n_kv_heads) differs from its KV head count (> 1)")
			}
			if !realBF16Auto {
				t.Error("no real shape runs bf16 on AUTO")
			}
			if !realPos {
				t.Error("no real shape starts past position 2048")
			}
			if full {
				if maxS <= 512 {
					t.Errorf("full mode: largest S %d, want more than 512 keys", maxS)
				}
				if maxS != LongS[len(LongS)-1] {
					t.Errorf("full mode: largest S %d, want the long tier's %d", maxS, LongS[len(LongS)-1])
				}
			}
			t.Logf("full=%v: %d cases", full, len(cases))
		})
	}
}

// checkContiguous checks that cases sharing a subtest path prefix (model;
// model/dtype; model/dtype/S) are consecutive.
func checkContiguous(t *testing.T, cases []Case) {
	t.Helper()
	for level := 1; level <= 3; level++ {
		done := map[string]bool{}
		prev := ""
		for _, c := range cases {
			k := strings.Join(tablePath(c)[:level], "/")
			if k != prev && done[k] {
				t.Errorf("subtest prefix %s is split: its cases are not consecutive", k)
			}
			done[k], prev = true, k
		}
	}
}

// TestMatrixKeepsNames checks that cases the table had before the new
// tiers keep their names.
func TestMatrixKeepsNames(t *testing.T) {
	models, err := model.LoadDir("../../fixtures/models")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range Matrix(models, false, 1) {
		names[c.Name()] = true
	}
	// The real shapes' CPU cases other than S=2 run the attention block
	// only since the MLP stages came (their leaf says attn-only).
	for _, n := range []string{"tiny-k90/f16/S=129/auto", "tiny-k90/f32/S=2/auto/steps=4", "tiny-k90/bf16/S=512/valu",
		"tiny-qwen/f16/S=9/auto/steps=3", "tiny-qwen/bf16/S=65/mfma", "llama3-8b/f16/S=2/auto",
		"llama3-8b/f16/S=17/auto/attn-only", "llama3-8b/bf16/S=9/mfma/attn-only", "llama3-8b/f32/S=5/auto/steps=2/attn-only"} {
		if !names[n] {
			t.Errorf("case %s is gone from the default matrix", n)
		}
	}
}

func TestCaseLeafAndName(t *testing.T) {
	m := model.Shape{Name: "m"}
	for _, tc := range []struct {
		c          Case
		leaf, name string
	}{
		{Case{Model: m, S: 9, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, Dist: DistNormal}, "auto", "m/f16/S=9/auto"},
		{Case{Model: m, S: 9, Steps: 4, Dtype: dtype.F16, Route: gpapi.RouteAuto}, "auto_steps=4", "m/f16/S=9/auto/steps=4"},
		{Case{Model: m, S: 9, Steps: 1, Dtype: dtype.BF16, Route: gpapi.RouteAuto, Dist: DistLargeQK}, "auto_dist=large_qk", "m/bf16/S=9/auto/dist=large_qk"},
		{Case{Model: m, S: 17, Steps: 1, Dtype: dtype.F32, Route: gpapi.RouteMFMA, PosOffset: 4095}, "mfma_pos0=4095", "m/f32/S=17/mfma/pos0=4095"},
		{Case{Model: m, S: 4097, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, PosOffset: 28671, FusedOnly: true},
			"auto_pos0=28671_fused-only", "m/f16/S=4097/auto/pos0=28671/fused-only"},
		{Case{Model: m, S: 5, Steps: 3, Dtype: dtype.F16, Route: gpapi.RouteAuto, Dist: DistOutliers, Bitwise: true, Fault: "x"},
			"auto_steps=3_dist=outliers", "m/f16/S=5/auto/steps=3/dist=outliers/bitwise/fault=x"},
	} {
		if got := tc.c.Leaf(); got != tc.leaf {
			t.Errorf("Leaf() = %q, want %q", got, tc.leaf)
		}
		if got := tc.c.Name(); got != tc.name {
			t.Errorf("Name() = %q, want %q", got, tc.name)
		}
	}
}

// TestValidateContext checks that a case must keep its positions inside
// its model's context (and inside int32 when the shape states none).
func TestValidateContext(t *testing.T) {
	m := model.Shape{Name: "m", Hidden: 8, NHeads: 4, NKVHeads: 2, HeadDim: 16, RopeTheta: 1e4,
		RopeLayout: "neox", MaxPosition: 4096}
	c := Case{Model: m, S: 2, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, PosOffset: 4094}
	if err := c.Validate(); err != nil {
		t.Errorf("pos0 4094 + P 2 = 4096 fits the context: %v", err)
	}
	c.Steps = 2
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "max_position=4096") {
		t.Errorf("pos0 4094 + P 3 past the context 4096: %v, want an error naming it", err)
	}
	c.Model.MaxPosition, c.PosOffset = 0, 1<<31-2
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "int32") {
		t.Errorf("positions past int32: %v, want an error", err)
	}
	c.PosOffset = 30000
	if err := c.Validate(); err != nil {
		t.Errorf("a shape without a context (generated) at pos0 30000: %v", err)
	}
}

func TestPosOffsets(t *testing.T) {
	for _, tc := range []struct {
		ctx, p int
		want   []int
	}{
		{8192, 2, []int{2047, 4095, 8190}},
		{4096, 2, []int{2047, 4094}},
		{4096, 1, []int{2047, 4095}},
		{2048, 9, []int{2039}},
		{0, 9, []int{2047, 4095}},
	} {
		if got := posOffsets(model.Shape{MaxPosition: tc.ctx}, tc.p); !slices.Equal(got, tc.want) {
			t.Errorf("posOffsets(context %d, P %d) = %v, want %v", tc.ctx, tc.p, got, tc.want)
		}
	}
}
