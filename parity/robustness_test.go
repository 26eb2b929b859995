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
	"github.com/gretacore/parity/internal/model"
	"github.com/gretacore/parity/internal/stage"
)

// buildCPUVariant compiles the CPU backend with some entry points renamed
// *_real and wrapped by testdata/shim (a misbehaving kernel), or skips
// where there is no gcc or the backend under test is not the CPU one.
func buildCPUVariant(t *testing.T, shim string, rename []string, defines ...string) *gpapi.Lib {
	t.Helper()
	if backendKind != "cpu" {
		t.Skip("builds a broken variant of the CPU backend; the GPU tags test their own library")
	}
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found")
	}
	root := moduleRoot()
	dir := t.TempDir()
	obj := filepath.Join(dir, "shim.o")
	args := append([]string{"-c", "-fPIC", "-I" + filepath.Join(root, "kernels", "include"), "-o", obj, filepath.Join("testdata", shim)}, defines...)
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	srcs, _ := filepath.Glob(filepath.Join(root, "kernels", "cpu", "*.c"))
	lib := filepath.Join(dir, "libvariant.so")
	args = []string{"-std=c11", "-O1", "-shared", "-fPIC",
		"-I" + filepath.Join(root, "kernels", "include"), "-I" + filepath.Join(root, "kernels", "common"), "-o", lib}
	for _, r := range rename {
		args = append(args, "-D"+r+"="+r+"_real")
	}
	args = append(append(args, srcs...), filepath.Join(root, "kernels", "common", "gp_common.c"), obj, "-lm")
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	l, err := gpapi.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestWatchdog builds the CPU backend with a decode RMSNorm that never
// returns and requires the harness to fail within the deadline, naming the
// stage and path, instead of hanging the test run.
func TestWatchdog(t *testing.T) {
	l := buildCPUVariant(t, "hang_rmsnorm.c", []string{"gp_rmsnorm"})
	c := harness.Case{Model: modelByName(t, "tiny-k90"), S: 4, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, Seed: 1}
	start := time.Now()
	_, err := harness.Execute(l, c, harness.NewInputs(c), 2*time.Second)
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

// TestGuardsAndPoison proves the memory checks fire: a decode kernel that
// writes one element past its output is an out-of-bounds error naming the
// stage and buffer; one that leaves an output element unwritten (it still
// holds the poison NaN) fails that stage as an integrity issue.
func TestGuardsAndPoison(t *testing.T) {
	c := harness.Case{Model: modelByName(t, "tiny-k90"), S: 4, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, Seed: 1}
	oob := buildCPUVariant(t, "bad_writes.c", []string{"gp_rmsnorm", "gp_linear"}, "-DOOB_WRITE")
	_, err := harness.Execute(oob, c, harness.NewInputs(c), time.Minute)
	if err == nil || !strings.Contains(err.Error(), "x_norm (decode chained, step 0)") || !strings.Contains(err.Error(), "out-of-bounds write past the end of decode chained x_norm") {
		t.Errorf("an out-of-bounds decode write gave %v; want an out-of-bounds error naming x_norm and its buffer", err)
	}
	skip := buildCPUVariant(t, "bad_writes.c", []string{"gp_rmsnorm", "gp_linear"}, "-DSKIP_WRITE")
	in := harness.NewInputs(c)
	tr, err := harness.Execute(skip, c, in, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	res := harness.Evaluate(c, in, tr)
	first := res.FirstDivergence()
	if first == nil || first.Stage != stage.QProj || !slices.Contains(first.Fails, harness.CheckIssue) ||
		!strings.Contains(strings.Join(first.Notes, " "), "never written") {
		t.Errorf("an unwritten decode element: first divergence %+v; want q_proj failing integrity (never written)\n%s", first, res.Summary())
	}
}

// TestNonFiniteInputsNeverPass puts a NaN and an Inf into the inputs: the
// stage table must report them as non-finite, never as a pass (NaN == NaN
// is false, and an equal-looking pair of NaNs is still a failure).
func TestNonFiniteInputsNeverPass(t *testing.T) {
	lib := openLib(t)
	for _, bad := range []float64{math.NaN(), math.Inf(1)} {
		// A forced route where the library has one: the same kernel on both
		// paths, so any difference is the non-finite input's.
		route := gpapi.RouteMFMA
		if !lib.SupportsRoute(route) {
			route = gpapi.RouteAuto
		}
		c := harness.Case{Model: modelByName(t, "tiny-k90"), S: 5, Steps: 1, Dtype: dtype.F16, Route: route, Seed: 2}
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

// TestBatchInvarianceDeclaration proves that bitwise equality is required
// exactly where the library declares batch invariance: a decode softmax
// that sums in reverse key order (legal under the header) fails a
// forced-route case when softmax is declared batch invariant, with a
// verdict naming the stage and the declaration, and passes when it is not
// declared (the tolerance checks still apply to it).
func TestBatchInvarianceDeclaration(t *testing.T) {
	c := harness.Case{Model: modelByName(t, "tiny-k90"), S: 33, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteMFMA, Seed: 4}
	run := func(lib *gpapi.Lib) *harness.Result {
		in := harness.NewInputs(c)
		tr, err := harness.Execute(lib, c, in, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return harness.Evaluate(c, in, tr)
	}
	declared := run(buildCPUVariant(t, "reverse_softmax.c", []string{"gp_softmax", "gp_batch_invariant_stages"}, "-DDECLARE_ALL"))
	var sm *harness.StageResult
	for i := range declared.Stages {
		if s := &declared.Stages[i]; s.Stage == stage.Softmax && s.Mode == harness.Isolated {
			sm = s
		}
	}
	switch {
	case sm == nil:
		t.Fatalf("no isolated softmax result:\n%s", declared.Summary())
	case sm.Bitwise:
		t.Fatalf("the reverse-order softmax gave the same bits as prefill; the test needs a case where it differs:\n%s", declared.Table())
	case !slices.Contains(sm.Fails, harness.CheckBitwise) || sm.Fails[0] != harness.CheckBitwise || len(sm.Fails) != 1:
		t.Errorf("softmax declared batch invariant but not bitwise: fails %v, want only [bitwise]\n%s", sm.Fails, declared.Table())
	case !strings.Contains(declared.Summary(), "softmax: declared batch invariant (gp_batch_invariant_stages) but decode differs from prefill bit for bit"):
		t.Errorf("the summary does not name the broken declaration:\n%s", declared.Summary())
	}
	undeclared := run(buildCPUVariant(t, "reverse_softmax.c", []string{"gp_softmax", "gp_batch_invariant_stages"}))
	if !undeclared.Pass() || !slices.Contains(undeclared.NotInvariant, stage.Softmax) {
		t.Errorf("softmax not declared batch invariant: pass=%v not-invariant=%v, want a pass that says softmax was not held to bitwise\n%s\n%s",
			undeclared.Pass(), undeclared.NotInvariant, undeclared.Summary(), undeclared.Table())
	}
}

// TestCoverageTiers proves the table's coverage tiers are there for a
// reason: two decode bugs that the plain tiers (normal inputs, position 0,
// at most 512 keys) cannot see are caught by the start-position tier (a
// RoPE position held in f16, wrong above 2048) and by the split-boundary
// tier (a split-KV decode dropping its last chunk beyond 512 keys), each
// blamed on its stage.
func TestCoverageTiers(t *testing.T) {
	m := modelByName(t, "tiny-k90")
	for _, tc := range []struct {
		define string
		rename []string
		tier   func(harness.Case) bool
		blame  stage.Stage
	}{
		{"-DROPE_POS_F16", []string{"gp_rope"}, func(c harness.Case) bool { return c.PosOffset > 2048 }, stage.QRope},
		{"-DDROP_LAST_SPLIT", []string{"gp_attention"}, func(c harness.Case) bool { return c.S+c.Steps-1 > 512 }, stage.Attn},
	} {
		t.Run(strings.TrimPrefix(tc.define, "-D"), func(t *testing.T) {
			lib := buildCPUVariant(t, "hidden_bugs.c", tc.rename, tc.define)
			var plain, caught, tier int
			for _, c := range harness.Matrix([]model.Shape{m}, false, 1) {
				if c.Route != gpapi.RouteAuto || c.Dtype != dtype.F32 {
					continue
				}
				in := harness.NewInputs(c)
				tr, err := harness.Execute(lib, c, in, time.Minute)
				if err != nil {
					t.Fatalf("%s: %v", c.Name(), err)
				}
				res := harness.Evaluate(c, in, tr)
				inTier := tc.tier(c)
				isPlain := !inTier && c.PosOffset == 0 && (c.Dist == "" || c.Dist == harness.DistNormal)
				switch {
				case inTier:
					tier++
					if f := res.FirstDivergence(); f != nil && f.Stage == tc.blame {
						caught++
					}
				case isPlain:
					plain++
					if !res.Pass() {
						t.Errorf("%s: the bug shows outside its tier (the test's premise is wrong):\n%s", c.Name(), res.Summary())
					}
				}
			}
			if tier == 0 || caught == 0 {
				t.Fatalf("the tier has %d cases, %d caught the bug at %s; want at least one", tier, caught, tc.blame)
			}
			t.Logf("%s: %d plain cases pass, %d of %d tier cases catch it at %s", tc.define, plain, caught, tier, tc.blame)
		})
	}
}
