//go:build ggmladapter

// Package ggml_test holds the ggml adapter's own tests (make
// adapter-ggml-test builds build/ggml.test; scripts/gpu-ggml.sh runs it).
// The parity suite itself runs on the adapter unchanged (TestParity,
// TestMutations, TestPropertyParity, TestSensitivityFloor take a library
// without forced routes); what is ggml's own is here:
//
//   - TestGgmlKernels: every stage attests a kernel on both paths, and on
//     CUDA the kernel families ggml's dispatch rules give for the decode and
//     prefill shapes (mat-vec vs cuBLAS projections, vector vs MMA flash
//     attention; ggml_dispatch.cpp), so a change of those rules at another
//     ggml commit shows up here rather than as a silently wrong attestation.
//   - TestGgmlNMSE: for one case (-ggml.nmse-case), the normalized MSE
//     test-backend-ops would compute between decode and prefill and between
//     each path and the float64 reference, per stage, against that op's
//     test-backend-ops threshold: whether llama.cpp's own op test would
//     have seen a finding (docs/ENGINES.md).
//
// The files carry the build tag ggmladapter so that `go test ./...` (make
// test) never builds them; without the library the tests skip with the
// reason.
package ggml_test

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gretacore/parity/internal/adaptertest"
	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/model"
	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/tolerance"
)

var (
	flagLib      = flag.String("ggml.lib", "", "adapter library (default: $GRETA_KERNELS_LIB, then build/libgreta_parity_ggml.so under the module root)")
	flagTimeout  = flag.Duration("ggml.timeout", 2*time.Minute, "watchdog per kernel call")
	flagNMSECase = flag.String("ggml.nmse-case", "tiny-qwen/f16/256/normal", "MODEL/DTYPE/S/DIST of TestGgmlNMSE")
)

func openLib(t *testing.T) *gpapi.Lib {
	t.Helper()
	return adaptertest.OpenLib(t, *flagLib, "libgreta_parity_ggml.so", "ggml", "make adapter-ggml GGML_DIR=...")
}

func shape(t *testing.T, name string) model.Shape {
	t.Helper()
	return adaptertest.Shape(t, name)
}

func run(t *testing.T, lib *gpapi.Lib, c harness.Case) *harness.Result {
	t.Helper()
	if err := c.Validate(); err != nil {
		t.Fatalf("invalid case %s: %v", c.Name(), err)
	}
	in := harness.NewInputs(c)
	tr, err := harness.Execute(lib, c, in, *flagTimeout)
	if err != nil {
		t.Fatalf("case %s: %v", c.Name(), err)
	}
	res := harness.Evaluate(c, in, tr)
	res.Backend = lib.Backend
	return res
}

// TestGgmlKernels checks the attestation: a kernel name for every stage
// that ran, on both paths, and on CUDA the families of ggml's dispatch at
// the pinned commit for S = 129 (prefill M = 129 > 16: cuBLAS; decode
// M = 1: mmvf; flash attention with the keys padded to 256: the vector
// kernel for one query at head_dim % 64 == 0, MMA for 129; head_dim 16 is
// no CUDA flash-attention instance, so the scheduler runs it on the CPU).
func TestGgmlKernels(t *testing.T) {
	lib := openLib(t)
	cuda := strings.Contains(lib.Backend, "CUDA")
	models := []string{"tiny-k90"}
	if cuda {
		models = append(models, "llama3-8b")
	}
	for _, name := range models {
		m := shape(t, name)
		c := harness.Case{Model: m, S: 129, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, Dist: harness.DistNormal, Seed: 5, Contract: tolerance.Engine}
		res := run(t, lib, c)
		var b strings.Builder
		for _, st := range stage.All() {
			if !res.Ran[st] {
				continue
			}
			p, d := res.Prefill[st].Kernel, res.Decode[st].Kernel
			fmt.Fprintf(&b, "\n  %-9s prefill %-48q decode %q", st, p, d)
			if p == "" || d == "" {
				t.Errorf("%s: %s attests no kernel (prefill %q, decode %q)", c.Name(), st, p, d)
			}
		}
		t.Logf("%s on %s:%s", c.Name(), lib.Backend, b.String())
		if !cuda {
			continue
		}
		want := func(st stage.Stage, path, got, prefix string) {
			if !strings.HasPrefix(got, prefix) {
				t.Errorf("%s: %s %s attests %q, want %q… (ggml's dispatch at the pinned commit; ggml_dispatch.cpp)", c.Name(), path, st, got, prefix)
			}
		}
		want(stage.QProj, "decode", res.Decode[stage.QProj].Kernel, "mmvf f16")
		want(stage.QProj, "prefill", res.Prefill[stage.QProj].Kernel, "cublas f16 compute16F")
		if m.HeadDim%64 == 0 {
			want(stage.Attn, "decode", res.Decode[stage.Attn].Kernel, "fattn vec")
			want(stage.Attn, "prefill", res.Prefill[stage.Attn].Kernel, "fattn mma_f16")
		} else {
			want(stage.Attn, "decode", res.Decode[stage.Attn].Kernel, "ggml-cpu flash_attn_ext")
		}
	}
}

// TestGgmlNMSE prints, for -ggml.nmse-case, per stage: test-backend-ops'
// NMSE of decode against prefill (isolated mode, step 0: both on the same
// inputs) and of each path against the float64 chain reference (chained
// mode), with the op's threshold. It fails only if a stage has nothing to
// measure; the numbers are the evidence ENGINES.md quotes.
func TestGgmlNMSE(t *testing.T) {
	lib := openLib(t)
	parts := strings.Split(*flagNMSECase, "/")
	if len(parts) != 4 {
		t.Fatalf("-ggml.nmse-case=%q: want MODEL/DTYPE/S/DIST", *flagNMSECase)
	}
	dt, err := dtype.Parse(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	s, err := strconv.Atoi(parts[2])
	if err != nil {
		t.Fatalf("-ggml.nmse-case: S=%q: %v", parts[2], err)
	}
	c := harness.Case{Model: shape(t, parts[0]), S: s, Steps: 1, Dtype: dt, Route: gpapi.RouteAuto, Dist: harness.Dist(parts[3]), Seed: 1, Contract: tolerance.Engine}
	res := run(t, lib, c)
	pre, iso := res.Rows(0, harness.Isolated)
	_, chained := res.Rows(0, harness.Chained)
	if pre == nil || iso == nil || chained == nil || len(res.Chain) == 0 {
		t.Fatalf("%s: the trace has no decode rows to measure", c.Name())
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| stage | op | threshold | nmse(prefill, decode) | nmse(ref, decode) | nmse(ref, prefill) | test-backend-ops would see decode≠prefill |\n|---|---|---:|---:|---:|---:|---|\n")
	for _, st := range stage.All() {
		if !res.Ran[st] {
			continue
		}
		if len(pre.Out[st]) == 0 || len(iso.Out[st]) == 0 {
			t.Errorf("%s: %s has no output rows to measure", c.Name(), st)
			continue
		}
		op, th := backendOpsThreshold(st)
		dp, nf1 := nmse(pre.Out[st], iso.Out[st])
		rd, nf2 := nmse(res.Chain[0][st], chained.Out[st])
		rp, nf3 := nmse(res.Chain[0][st], pre.Out[st])
		// test-backend-ops compares two backends on the same inputs: the
		// decode/prefill pair is that comparison; the reference columns
		// are context (the dtype's own rounding shows there).
		seen := "no"
		if dp > th {
			seen = "yes"
		}
		if nf := nf1 + nf2 + nf3; nf > 0 {
			seen += fmt.Sprintf(" (%d non-finite left out)", nf)
		}
		fmt.Fprintf(&b, "| %s | %s | %.0e | %.3g | %.3g | %.3g | %s |\n", st, op, th, dp, rd, rp, seen)
	}
	t.Logf("%s on %s (pass: %v); NMSE = sum((a-b)^2)/sum(a^2), a the first argument (test-backend-ops: a = the CPU backend):\n%s", c.Name(), lib.Backend, res.Pass(), b.String())
}
