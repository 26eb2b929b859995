package parity

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/gpapi"
)

// coreOnlyLib is the CPU backend linked to export only the ABI 3 core and
// fused attention (kernels/cpu/core_only.map): what a minimal engine
// adapter implements.
const coreOnlyLib = "build/libgreta_parity_cpu_core.so"

// TestCoreOnlyLibrary runs this test binary's TestParity, TestMutations and
// TestCapabilities against the core-only library in a child process and
// requires: no failure, table cases that pass, and skips that name what the
// library lacks (gp_forced_routes for the forced-route columns, gp_set_fault
// for the mutations). It proves the suite works on a library that has none
// of the optional capabilities but fused attention.
func TestCoreOnlyLibrary(t *testing.T) {
	if backendKind != "cpu" {
		t.Skip("the core-only library is a CPU build; GPU tags test their own library")
	}
	lib := filepath.Join(moduleRoot(), coreOnlyLib)
	l, err := gpapi.Open(lib)
	if err != nil {
		if *flagRequireDevice || strings.Contains(*flagRequire, "all") {
			t.Fatalf("%v (build it with `make kernels-cpu-core`)", err)
		}
		t.Skipf("%v (build it with `make kernels-cpu-core`)", err)
	}
	for _, c := range gpapi.Capabilities {
		if c != gpapi.CapFused && l.Has(c) {
			t.Errorf("%s exports capability %s; it must export only the core and gp_attention", lib, c)
		}
	}
	if !l.Has(gpapi.CapFused) {
		t.Fatalf("%s lacks gp_attention", lib)
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^(TestParity|TestMutations|TestCapabilities)$", "-test.v", "-test.count=1",
		"-parity.lib", lib, "-parity.models", "tiny-k90,tiny-gqa3", "-parity.artifacts", t.TempDir())
	cmd.Env = append(os.Environ(), "GRETA_FAULT=", "GRETA_GEMM_FORCE=")
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		t.Fatalf("the suite fails on the core-only library: %v\n%s", err, tail(text, 60))
	}
	pass := regexp.MustCompile(`(?m)^\s*--- PASS: TestParity/tiny-k90/\S+/S=\d+/auto`).FindAllString(text, -1)
	if len(pass) == 0 {
		t.Errorf("no AUTO table case passed on the core-only library:\n%s", tail(text, 60))
	}
	for _, want := range []string{
		"lacks capability routes (does not export gp_forced_routes)",
		"lacks capability faults (does not export gp_set_fault",
		"lacks capability unfused (does not export gp_attn_scores",
		"lacks capability attestation (does not export gp_last_launch)",
		"lacks capability mlp (does not export gp_residual_add, gp_rmsnorm_offset, gp_gated_act)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("the core-only run never says %q:\n%s", want, tail(text, 60))
		}
	}
	if strings.Contains(text, "--- FAIL") {
		t.Errorf("failures on the core-only library:\n%s", tail(text, 60))
	}
	t.Logf("core-only library: %d AUTO table cases passed", len(pass))
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
