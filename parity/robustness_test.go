package parity

import (
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/stage"
)

// TestWatchdog builds the CPU backend with a decode RMSNorm that never
// returns and requires the harness to fail within the deadline, naming the
// stage and path, instead of hanging the test run.
func TestWatchdog(t *testing.T) {
	if backendKind != "cpu" {
		t.Skip("builds a hanging variant of the CPU backend; the GPU tags test their own library")
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found")
	}
	root := moduleRoot()
	dir := t.TempDir()
	shim := filepath.Join(dir, "shim.o")
	if b, err := exec.Command(cc, "-c", "-fPIC", "-o", shim, filepath.Join("testdata", "hang_rmsnorm.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	srcs, _ := filepath.Glob(filepath.Join(root, "kernels", "cpu", "*.c"))
	lib := filepath.Join(dir, "libhang.so")
	args := append([]string{"-std=c11", "-O1", "-shared", "-fPIC", "-Dgp_rmsnorm=gp_rmsnorm_real",
		"-I" + filepath.Join(root, "kernels", "include"), "-I" + filepath.Join(root, "kernels", "common"), "-o", lib},
		append(srcs, filepath.Join(root, "kernels", "common", "gp_common.c"), shim, "-lm")...)
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	l, err := gpapi.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	c := harness.Case{Model: modelByName(t, "tiny"), S: 4, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, Seed: 1}
	start := time.Now()
	_, err = harness.Execute(l, c, harness.NewInputs(c), 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "x_norm (decode chained, step 0)") || !strings.Contains(err.Error(), "did not return within 2s") {
		t.Fatalf("Execute on a hanging kernel = %v; want a watchdog error naming x_norm (decode chained, step 0)", err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the watchdog took %v", d)
	}
	// The library is now unusable (its call never returns): later cases
	// must fail fast, not queue behind it.
	_, err = harness.Execute(l, c, harness.NewInputs(c), 2*time.Second)
	if err == nil || !strings.Contains(err.Error(), "an earlier kernel hung") {
		t.Errorf("a case after a hang = %v; want it refused", err)
	}
}

// TestNonFiniteInputsNeverPass puts a NaN and an Inf into the inputs: the
// stage table must report them as non-finite, never as a pass (NaN == NaN
// is false, and an equal-looking pair of NaNs is still a failure).
func TestNonFiniteInputsNeverPass(t *testing.T) {
	lib := openLib(t)
	for _, bad := range []float64{math.NaN(), math.Inf(1)} {
		c := harness.Case{Model: modelByName(t, "tiny"), S: 5, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteMFMA, Seed: 2}
		in := harness.NewInputs(c)
		x := slices.Clone(in.X)
		x[(c.S-1)*c.Model.Hidden+3] = bad // the decoded token's row
		in = &harness.Inputs{W: in.W, X: x}
		tr, err := harness.Execute(lib, c, in, *flagTimeout)
		if err != nil {
			t.Fatal(err)
		}
		res := harness.Evaluate(c, in, tr)
		first := res.FirstDivergence()
		if res.Pass() || first == nil || first.Stage != stage.XNorm || !slices.Contains(first.Fails, harness.CheckNonFinite) {
			t.Errorf("input %v: first divergence %v; want x_norm failing non-finite\n%s\nrerun: %s", bad, first, res.Table(), rerunCommand(t))
		}
	}
}
