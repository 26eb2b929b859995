package harness

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/model"
	"github.com/gretacore/parity/internal/softkernels"
	"github.com/gretacore/parity/internal/stage"
)

// These tests run the harness end to end on internal/softkernels, the
// pure-Go library (float64 math rounded once per store): no gcc, no .so.
// The tests in ../../parity still go through a real shared library.

var softModels struct {
	once sync.Once
	m    []model.Shape
	err  error
}

func softModel(t *testing.T, name string) model.Shape {
	t.Helper()
	softModels.once.Do(func() { softModels.m, softModels.err = model.LoadDir("../../fixtures/models") })
	if softModels.err != nil {
		t.Fatal(softModels.err)
	}
	for _, m := range softModels.m {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no model fixture %q in ../../fixtures/models", name)
	return model.Shape{}
}

// runSoft executes and evaluates c on lib.
func runSoft(t *testing.T, lib *gpapi.Lib, c Case) *Result {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("invalid case %s: %v", c.Name(), err)
	}
	in := NewInputs(c)
	tr, err := Execute(lib, c, in, time.Minute)
	if err != nil {
		t.Fatalf("case %s: %v", c.Name(), err)
	}
	res := Evaluate(c, in, tr)
	res.Backend, res.Fault = lib.Backend, lib.ActiveFault()
	return res
}

// TestSoftKernelsParity: every case of tiny-k90 and tiny-gqa3 at S = 2, 9, 65,
// 129 × f32/f16/bf16 × auto/mfma/valu passes on the pure-Go library,
// forced routes bit for bit (it declares every stage batch invariant), and
// the attestation shows AUTO ran MFMA for prefill and VALU for decode.
func TestSoftKernelsParity(t *testing.T) {
	lib := softkernels.New()
	for _, c := range []gpapi.Capability{gpapi.CapFaults, gpapi.CapAttestation, gpapi.CapD2D, gpapi.CapRoutes, gpapi.CapUnfused, gpapi.CapFused, gpapi.CapInvariance} {
		if !lib.Has(c) {
			t.Fatalf("softkernels lacks capability %s", c)
		}
	}
	for _, name := range []string{"tiny-k90", "tiny-gqa3"} {
		m := softModel(t, name)
		for _, dt := range dtype.All {
			for _, s := range []int{2, 9, 65, 129} {
				for _, route := range []gpapi.Route{gpapi.RouteAuto, gpapi.RouteMFMA, gpapi.RouteVALU} {
					c := Case{Model: m, S: s, Steps: 1, Dtype: dt, Route: route, Seed: 11}
					t.Run(c.Name(), func(t *testing.T) {
						t.Parallel()
						res := runSoft(t, lib, c)
						if !res.Pass() {
							t.Fatalf("decode diverges from prefill on softkernels\n%s\n%s", res.Summary(), res.Table())
						}
						if len(res.NotInvariant) > 0 {
							t.Errorf("stages not held to bitwise: %v", res.NotInvariant)
						}
						wantPre, wantDec := route, route
						if route == gpapi.RouteAuto {
							wantPre, wantDec = gpapi.RouteMFMA, gpapi.RouteVALU
						}
						for _, st := range []stage.Stage{stage.QProj, stage.KProj, stage.VProj, stage.AttnOut} {
							if res.Prefill[st].Route != wantPre || res.Decode[st].Route != wantDec {
								t.Errorf("%s ran %v (prefill) / %v (decode), want %v / %v", st, res.Prefill[st], res.Decode[st], wantPre, wantDec)
							}
						}
						for _, st := range []stage.Stage{stage.QK, stage.Softmax, stage.PV, stage.Attn} {
							if !res.Ran[st] {
								t.Errorf("stage %s did not run: softkernels has both attention capabilities", st)
							}
						}
					})
				}
			}
		}
	}
	// Multi-step decode (reads its own cache writes), every input
	// distribution, a large position offset, QKV bias with MQA and
	// interleaved RoPE (tiny-qwen), the fused-only plan.
	qwen := softModel(t, "tiny-qwen")
	extra := []Case{
		{Model: qwen, S: 5, Steps: 3, Dtype: dtype.BF16, Route: gpapi.RouteAuto, Seed: 3},
		{Model: qwen, S: 33, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteVALU, Seed: 3, PosOffset: 4000},
		{Model: softModel(t, "tiny-k90"), S: 9, Steps: 2, Dtype: dtype.F16, Route: gpapi.RouteMFMA, Seed: 3, FusedOnly: true},
	}
	for _, d := range Dists {
		extra = append(extra, Case{Model: qwen, S: 17, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, Dist: d, Seed: 5})
	}
	for _, c := range extra {
		t.Run(c.Name(), func(t *testing.T) {
			t.Parallel()
			if res := runSoft(t, lib, c); !res.Pass() {
				t.Errorf("decode diverges from prefill on softkernels\n%s\n%s", res.Summary(), res.Table())
			}
		})
	}
}

// TestSoftKernelsFaults: each fault softkernels implements is caught and
// blamed on its stage (first chained divergence, and failing in isolation);
// with the fault off the same case passes.
func TestSoftKernelsFaults(t *testing.T) {
	lib := softkernels.New()
	cases := []struct {
		fault, model string
		dt           dtype.Dtype
		s            int
		first        stage.Stage
	}{
		{"rope_pos_prev", "tiny-k90", dtype.F16, 17, stage.QRope},
		{"kv_slot_off", "tiny-k90", dtype.F16, 9, stage.KVCache},
		{"scale_missing", "tiny-k90", dtype.F16, 9, stage.QK},
		{"bias_skipped", "tiny-qwen", dtype.F16, 9, stage.QProj},
		{"gqa_modulo", "tiny-k90", dtype.F16, 9, stage.QK},
		{"gqa_modulo", "tiny-gqa3", dtype.F32, 9, stage.QK},
		{"attn_causal_prev", "tiny-k90", dtype.BF16, 17, stage.Attn},
		{"residual_twice", "tiny-k90", dtype.F16, 9, stage.AttnRes},
		{"act_wrong_half", "tiny-k90", dtype.BF16, 9, stage.Act},
		{"act_wrong_half", "tiny-gqa3", dtype.F16, 9, stage.Act},
		{"post_norm_no_offset", "tiny-gqa3", dtype.F16, 9, stage.PostNorm},
	}
	var tested []string
	for _, fc := range cases {
		tested = append(tested, fc.fault)
		t.Run(fc.fault+"/"+fc.model+"/"+fc.dt.String(), func(t *testing.T) {
			c := Case{Model: softModel(t, fc.model), S: fc.s, Steps: 1, Dtype: fc.dt, Route: gpapi.RouteAuto, Seed: 7}
			if err := lib.SetFault(""); err != nil {
				t.Fatal(err)
			}
			if ctrl := runSoft(t, lib, c); !ctrl.Pass() {
				t.Fatalf("negative control (no fault) fails:\n%s\n%s", ctrl.Summary(), ctrl.Table())
			}
			if err := lib.SetFault(fc.fault); err != nil {
				t.Fatal(err)
			}
			defer lib.SetFault("")
			res := runSoft(t, lib, c)
			first := res.FirstDivergence()
			switch {
			case res.Fault != fc.fault:
				t.Errorf("active fault %q, want %q", res.Fault, fc.fault)
			case res.Pass():
				t.Errorf("fault %s was NOT caught\n%s\n%s", fc.fault, res.Summary(), res.Table())
			case first == nil || first.Stage != fc.first:
				t.Errorf("fault %s: first divergence %v, want %v\n%s\n%s", fc.fault, first, fc.first, res.Summary(), res.Table())
			case !slices.Contains(res.IsolatedFailures(), fc.first):
				t.Errorf("fault %s: %v does not fail in isolation (%v)\n%s", fc.fault, fc.first, res.IsolatedFailures(), res.Summary())
			}
		})
	}
	tested = append(tested, modeFaults...) // TestSoftChunkedAndBatched tests them
	slices.Sort(tested)
	have := slices.Clone(lib.Faults())
	slices.Sort(have)
	if !slices.Equal(slices.Compact(tested), have) {
		t.Errorf("faults tested %v, softkernels implements %v", slices.Compact(tested), have)
	}
	// A shipped fault softkernels does not implement is refused by name.
	if err := lib.SetFault("gemv_f16_acc"); err == nil || !strings.Contains(err.Error(), "gemv_f16_acc") {
		t.Errorf("SetFault(gemv_f16_acc) = %v, want an unknown-fault error naming it", err)
	}
	if f := lib.ActiveFault(); f != "none" {
		t.Errorf("a refused fault left %q active", f)
	}
}

// TestSoftKernelsGuardsAndPoison is parity's TestGuardsAndPoison without
// gcc: Go wrappers around softkernels' funcs (gpapi.NewFromFuncs) play the
// buggy kernels. A decode gp_rmsnorm that writes one element past the end
// of y lands in the buffer's guard region and is reported as an
// out-of-bounds write naming x_norm and the buffer; a decode gp_linear
// that leaves the last element of y unwritten (it still holds the poison)
// fails q_proj on integrity.
func TestSoftKernelsGuardsAndPoison(t *testing.T) {
	c := Case{Model: softModel(t, "tiny-k90"), S: 4, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, Seed: 1}
	sz := uint64(c.Dtype.Size())

	f := softkernels.Funcs()
	rms := f.RMSNorm
	f.RMSNorm = func(dt int32, x, w, y uintptr, rows, dim int32, eps float32) int32 {
		if st := rms(dt, x, w, y, rows, dim, eps); st != 0 || rows != 1 {
			return st
		}
		one := make([]byte, sz)
		return f.MemcpyH2D(y+uintptr(rows*dim)*uintptr(sz), &one[0], sz)
	}
	oob, err := gpapi.NewFromFuncs("softkernels+oob_write", f)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Execute(oob, c, NewInputs(c), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "x_norm (decode chained, step 0)") || !strings.Contains(err.Error(), "out-of-bounds write past the end of decode chained x_norm") {
		t.Errorf("an out-of-bounds decode write gave %v; want an out-of-bounds error naming x_norm and its buffer", err)
	}

	f = softkernels.Funcs()
	lin := f.Linear
	f.Linear = func(dt, route int32, x, w, bias, y uintptr, m, n, k int32) int32 {
		if m != 1 {
			return lin(dt, route, x, w, bias, y, m, n, k)
		}
		last := y + uintptr(n-1)*uintptr(sz)
		keep := make([]byte, sz)
		if st := f.MemcpyD2H(&keep[0], last, sz); st != 0 {
			return st
		}
		if st := lin(dt, route, x, w, bias, y, m, n, k); st != 0 {
			return st
		}
		return f.MemcpyH2D(last, &keep[0], sz)
	}
	skip, err := gpapi.NewFromFuncs("softkernels+skip_write", f)
	if err != nil {
		t.Fatal(err)
	}
	in := NewInputs(c)
	tr, err := Execute(skip, c, in, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	res := Evaluate(c, in, tr)
	first := res.FirstDivergence()
	if first == nil || first.Stage != stage.QProj || !slices.Contains(first.Fails, CheckIssue) ||
		!strings.Contains(strings.Join(first.Notes, " "), "never written") {
		t.Errorf("an unwritten decode element: first divergence %+v; want q_proj failing integrity (never written)\n%s", first, res.Summary())
	}
}
