package harness

import (
	"math"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/softkernels"
	"github.com/gretacore/parity/internal/stage"
)

// mlpStages are the stages of the "mlp" capability, in table order.
var mlpStages = []stage.Stage{stage.AttnRes, stage.PostNorm, stage.GateProj, stage.UpProj, stage.Act, stage.DownProj, stage.MLPRes}

// TestMLPSkippedWithoutCapability: a library without "mlp" (softkernels
// with its three funcs removed, as the PyTorch adapter exports them) runs
// the attention block as before, passes, and its report names the skipped
// MLP stages and the missing symbols. An attn-only case says so instead.
func TestMLPSkippedWithoutCapability(t *testing.T) {
	f := softkernels.Funcs()
	f.ResidualAdd, f.RMSNormOffset, f.GatedAct = nil, nil, nil
	lib, err := gpapi.NewFromFuncs("no-mlp", f)
	if err != nil {
		t.Fatal(err)
	}
	if lib.Has(gpapi.CapMLP) {
		t.Fatal("the library without the three funcs has capability mlp")
	}
	c := Case{Model: softModel(t, "tiny-k90"), S: 9, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, Seed: 5}
	res := runSoft(t, lib, c)
	if !res.Pass() {
		t.Fatalf("the attention block fails without mlp:\n%s\n%s", res.Summary(), res.Table())
	}
	for _, st := range mlpStages {
		if res.Ran[st] {
			t.Errorf("%s ran on a library without mlp", st)
		}
	}
	if !res.Ran[stage.AttnOut] {
		t.Error("attn_out did not run")
	}
	want := `MLP stages skipped (library "softkernels" lacks capability mlp (does not export gp_residual_add, gp_rmsnorm_offset, gp_gated_act)): attn_res post_norm gate_proj up_proj act down_proj mlp_res`
	if s := res.Summary(); !strings.Contains(s, want) {
		t.Errorf("summary lacks %q:\n%s", want, s)
	}
	c.AttnOnly = true
	res = runSoft(t, softkernels.New(), c)
	if s := res.Summary(); !res.Pass() || !strings.Contains(s, "MLP stages skipped (attn-only case): attn_res") {
		t.Errorf("attn-only case: pass=%v, summary:\n%s", res.Pass(), s)
	}
}

// TestMLPChainedAndIsolated: with residual_twice (decode's attn_res adds
// attn_out twice) chained mode carries the difference through every later
// stage of the MLP, while isolated mode feeds each stage prefill's row of
// its inputs, so on softkernels (batch invariant by construction) every
// isolated MLP stage but attn_res and mlp_res (the two residual adds, both
// faulty) equals prefill bit for bit.
func TestMLPChainedAndIsolated(t *testing.T) {
	lib := softkernels.New()
	if err := lib.SetFault("residual_twice"); err != nil {
		t.Fatal(err)
	}
	defer lib.SetFault("")
	c := Case{Model: softModel(t, "tiny-k90"), S: 9, Steps: 2, Dtype: dtype.F32, Route: gpapi.RouteAuto, Seed: 5}
	res := runSoft(t, lib, c)
	for step := 0; step < c.Steps; step++ {
		pre, ch := res.Rows(step, Chained)
		_, iso := res.Rows(step, Isolated)
		for _, st := range mlpStages {
			same := func(row *Row) bool {
				for i, b := range row.Bits[st] {
					if b != pre.Bits[st][i] {
						return false
					}
				}
				return len(row.Bits[st]) == len(pre.Bits[st]) && len(pre.Bits[st]) > 0
			}
			faulty := st == stage.AttnRes || st == stage.MLPRes
			if got := same(iso); got == faulty {
				t.Errorf("step %d, isolated %s equals prefill: %v, want %v", step, st, got, !faulty)
			}
			if same(ch) {
				t.Errorf("step %d, chained %s equals prefill: it must carry attn_res's difference", step, st)
			}
		}
	}
	if f := res.FirstDivergence(); f == nil || f.Stage != stage.AttnRes {
		t.Errorf("first divergence %v, want attn_res\n%s", f, res.Summary())
	}
	// The chain reference covers every MLP stage of every step.
	for step := range res.Chain {
		for _, st := range mlpStages {
			if len(res.Chain[step][st]) == 0 || math.IsNaN(res.Chain[step][st][0]) {
				t.Errorf("chain reference of %s at step %d missing", st, step)
			}
		}
	}
}
