package parity

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/model"
	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/tolerance"
)

// mutation is a shipped fault (gp_set_fault), a case that exposes it, and
// the stage where the suite must first see it. Faults act on the decode
// shape only (row count 1), as real decode-path bugs do.
type mutation struct {
	fault  string
	model  string
	dt     dtype.Dtype
	s      int
	dist   harness.Dist
	bitwis bool        // a one-ulp fault: both paths forced onto MFMA, so bitwise is required
	first  stage.Stage // first divergence in chained mode
	why    string      // the real bug it stands for (the real bug it imitates)
}

// mutations is the fault table; README.md lists it with the same stages.
var mutations = []mutation{
	{"gemv_f16_acc", "tiny-k90", dtype.F32, 9, harness.DistNormal, false, stage.QProj, "fp16 accumulation on the decode GEMV only (ik_llama.cpp #344)"},
	{"gemv_f16_acc", "llama2-7b", dtype.F16, 2, harness.DistNormal, false, stage.QProj, "the same at a real shape in f16 storage"},
	{"rope_wrong_layout", "tiny-k90", dtype.F16, 9, harness.DistNormal, false, stage.QRope, "neox vs interleaved RoPE (TinyLlama #24): the field report's q and k far off, v clean"},
	{"rope_pos_prev", "tiny-k90", dtype.F16, 17, harness.DistNormal, false, stage.QRope, "decode RoPE at position S-2 (offset taken before the cache concat)"},
	{"rope_pos_zero", "tiny-k90", dtype.BF16, 17, harness.DistNormal, false, stage.QRope, "decode RoPE always at position 0 (mlx-vlm #1983)"},
	{"gqa_modulo", "tiny-k90", dtype.F16, 9, harness.DistNormal, false, stage.QK, "GQA head mapping h % n_kv instead of h / group"},
	{"gqa_modulo", "tiny-gqa3", dtype.BF16, 9, harness.DistNormal, false, stage.QK, "the same where group size (3) differs from the KV head count (2)"},
	{"kv_slot_off", "tiny-k90", dtype.F16, 9, harness.DistNormal, false, stage.KVCache, "KV cache written one slot off"},
	{"scale_missing", "tiny-k90", dtype.F16, 9, harness.DistNormal, false, stage.QK, "softmax scale 1/sqrt(d) missing on decode"},
	{"scale_twice", "tiny-k90", dtype.F16, 9, harness.DistNormal, false, stage.QK, "softmax scale applied twice on decode"},
	{"mask_off_by_one", "tiny-k90", dtype.F16, 9, harness.DistNormal, false, stage.QK, "causal mask off by one: decode attends to one key fewer"},
	{"splitk_drop_tail", "tiny-k90", dtype.F16, 9, harness.DistNormal, false, stage.QProj, "split-K GEMV drops the K tail (K=90, split 4)"},
	{"softmax_no_max", "tiny-k90", dtype.F16, 9, harness.DistLargeQK, false, stage.Softmax, "softmax without max subtraction, scores near the f16 range"},
	{"bias_skipped", "tiny-qwen", dtype.F16, 9, harness.DistNormal, false, stage.QProj, "QKV bias skipped on decode (Qwen shapes)"},
	{"round_truncate", "tiny-k90", dtype.F16, 9, harness.DistNormal, true, stage.QProj, "decode output truncated instead of rounded: one ulp, bitwise mode"},
	{"attn_no_rescale", "tiny-k90", dtype.F16, 129, harness.DistNormal, false, stage.Attn, "split-KV partials combined without rescaling by the running max (flash-decoding combine)"},
	{"attn_lse_off_by_one", "tiny-k90", dtype.F16, 129, harness.DistNormal, false, stage.Attn, "the LSE combine stops one split early: output right, LSE wrong"},
	{"attn_causal_prev", "tiny-k90", dtype.BF16, 17, harness.DistNormal, false, stage.Attn, "fused decode attention's causal limit at q_pos0 + i - 1: the query's own key dropped"},
	{"attn_gqa_modulo", "tiny-gqa3", dtype.F16, 9, harness.DistNormal, false, stage.Attn, "fused attention maps head h to KV head h % n_kv_heads (group 3, 2 KV heads)"},
	{"residual_twice", "tiny-k90", dtype.F16, 9, harness.DistNormal, false, stage.AttnRes, "the attention branch added to the residual stream twice on decode"},
	{"act_wrong_half", "tiny-k90", dtype.F16, 9, harness.DistNormal, false, stage.Act, "SwiGLU applied to the up half of a fused gate/up pair (silu(up)·gate)"},
	{"act_wrong_half", "tiny-gqa3", dtype.BF16, 9, harness.DistNormal, false, stage.Act, "the same with Gemma's tanh-GELU"},
	{"post_norm_no_offset", "tiny-gqa3", dtype.F16, 9, harness.DistNormal, false, stage.PostNorm, "Gemma's RMSNorm weight 1 + w loaded as w (a Llama norm kernel on Gemma weights)"},
	{"gemv_skip_last_k_tile", "tiny-k90", dtype.F16, 9, harness.DistNormal, false, stage.DownProj, "the decode GEMV drops its last K tile: on the debug shape only down_proj's K (290) exceeds the 256-element tile"},
	{"gemv_skip_last_k_tile", "llama2-7b", dtype.F16, 2, harness.DistNormal, false, stage.QProj, "the same at a real shape: every projection has K > 256, q_proj is hit first"},
}

func modelByName(t *testing.T, name string) model.Shape {
	t.Helper()
	for _, m := range loadModels(t) {
		if m.Name == name {
			return m
		}
	}
	t.Skipf("model %s not selected by -parity.models", name)
	return model.Shape{}
}

// TestMutations proves the suite catches each shipped fault and blames the
// right stage, under both accuracy contracts: with the fault off the case
// passes (negative control); with it on the case fails, the first chained
// divergence is the expected stage, and that stage also fails in isolation
// (it is faulty in its own right). A library without faults skips it; a
// fault whose stage the library does not run (a qk fault on a fused-only
// library) skips with the missing capability.
func TestMutations(t *testing.T) {
	lib := openLib(t)
	needCap(t, lib, gpapi.CapFaults)
	if f := os.Getenv("GRETA_FAULT"); f != "" {
		t.Skipf("GRETA_FAULT=%s is set for the whole run; TestMutations selects faults itself", f)
	}
	have := lib.Faults()
	for _, m := range mutations {
		for _, ct := range []tolerance.Contract{tolerance.Strict, tolerance.Engine} {
			name := strings.Join(mutationPath(m, ct), "/")
			t.Run(name, func(t *testing.T) { checkMutation(t, lib, have, m, ct) })
		}
	}
}

// checkMutation runs one fault under one contract (see TestMutations).
func checkMutation(t *testing.T, lib *gpapi.Lib, have []string, m mutation, ct tolerance.Contract) {
	if cap := stageCapability(m.first); cap != "" {
		needCap(t, lib, cap)
	}
	needFault(t, lib, have, m.fault)
	c := harness.Case{Model: modelByName(t, m.model), S: m.s, Steps: 1, Dtype: m.dt,
		Route: gpapi.RouteAuto, Dist: m.dist, Seed: 7, Contract: ct}
	if m.first < stage.AttnRes && c.Model.Hidden*c.Model.QDim() > 1<<16 {
		// A real shape's fault blamed in the attention block: its MLP
		// (three 4096×11008 GEMVs) adds seconds on the CPU and nothing to
		// the blame, which is decided before the MLP.
		c.AttnOnly = true
	}
	if m.bitwis {
		// On AUTO the GPU's decode GEMV and prefill GEMM may
		// legitimately differ by one ulp, so a bitwise control would
		// pass only by luck: force both onto one kernel instead.
		needCap(t, lib, gpapi.CapRoutes)
		needCap(t, lib, gpapi.CapInvariance)
		c.Route = gpapi.RouteMFMA
	}
	mustSetFault(t, lib, "")
	ctrl, err := runCase(t, lib, c)
	if err != nil {
		t.Fatalf("negative control: %v\nrerun: %s", err, rerunCommand(t))
	}
	if !ctrl.Pass() {
		// An engine that needs the engine contract fails the strict
		// control without any fault: that is TestParity's finding, and
		// the fault cannot be judged under strict. Under the contract the
		// run selected (-parity.contract), a failing control is a failure.
		if ct != contract(t) {
			t.Skipf("negative control (no fault) fails under %s, which this run does not select (-parity.contract=%s): the fault is judged under %s only\n%s", ct, contract(t), contract(t), ctrl.Summary())
		}
		t.Fatalf("negative control (no fault) fails:\n%s\n%s\nrerun: %s", ctrl.Summary(), ctrl.Table(), rerunCommand(t))
	}
	mustSetFault(t, lib, m.fault)
	defer mustSetFault(t, lib, "")
	res, err := runCase(t, lib, c)
	if err != nil {
		t.Fatalf("fault %s: %v\nrerun: %s", m.fault, err, rerunCommand(t))
	}
	if res.Fault != m.fault {
		t.Errorf("the report says fault %q is active, want %q", res.Fault, m.fault)
	}
	first := res.FirstDivergence()
	switch {
	case res.Pass():
		t.Errorf("fault %s (%s) was NOT caught\n%s\n%s\nrerun: %s", m.fault, m.why, res.Summary(), res.Table(), rerunCommand(t))
	case first == nil || first.Stage != m.first:
		t.Errorf("fault %s: first divergence %v, want %v\n%s\n%s\nrerun: %s", m.fault, first, m.first, res.Summary(), res.Table(), rerunCommand(t))
	case !slices.Contains(res.IsolatedFailures(), m.first):
		t.Errorf("fault %s: %v does not fail in isolation (%v)\n%s\n%s\nrerun: %s", m.fault, m.first, res.IsolatedFailures(), res.Summary(), res.Table(), rerunCommand(t))
	default:
		t.Logf("caught %s: first divergence %s at decode%d (%v), isolated %v", m.fault, first.Stage, first.Step, first.Fails, res.IsolatedFailures())
	}
	if m.bitwis {
		// A one-ulp fault is below the tolerance model's floor by
		// design (two correct paths may differ by one rounding);
		// say whether the tolerance mode sees it anyway.
		c.Route = gpapi.RouteAuto
		tol, err := runCase(t, lib, c)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s in tolerance mode (no bitwise): caught=%v (README: the tolerance mode is not expected to see a one-ulp fault)", m.fault, !tol.Pass())
	}
}

// stageCapability is the capability a stage needs beyond the core ("" for
// core stages).
func stageCapability(st stage.Stage) gpapi.Capability {
	switch st {
	case stage.QK, stage.Softmax, stage.PV:
		return gpapi.CapUnfused
	case stage.Attn:
		return gpapi.CapFused
	case stage.AttnRes, stage.PostNorm, stage.GateProj, stage.UpProj, stage.Act, stage.DownProj, stage.MLPRes:
		return gpapi.CapMLP
	}
	return ""
}

func mustSetFault(t *testing.T, lib *gpapi.Lib, f string) {
	t.Helper()
	if err := lib.SetFault(f); err != nil {
		t.Fatal(err)
	}
	if want := f; want != "" && lib.ActiveFault() != want {
		t.Fatalf("gp_active_fault() = %q after gp_set_fault(%q)", lib.ActiveFault(), f)
	}
}

// needFault skips t when the library does not implement fault: an engine
// adapter implements the faults its glue can express. This repo's backends
// implement all of them, so under -parity.require=faults it fails instead.
func needFault(t *testing.T, lib *gpapi.Lib, have []string, fault string) {
	t.Helper()
	if slices.Contains(have, fault) {
		return
	}
	msg := fmt.Sprintf("library %q does not implement fault %q (it has %v)", lib.Backend, fault, have)
	if slices.Contains(required(t), gpapi.CapFaults) {
		t.Fatalf("-parity.require=faults: %s", msg)
	}
	t.Skip(msg)
}
