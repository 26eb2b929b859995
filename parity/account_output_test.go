package parity

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	extast "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/text"

	"github.com/gretacore/parity/internal/gpapi"
)

// child runs this test binary with args (testing's flags spelled -test.*)
// in dir ("" = here), with env added to a copy of this environment in
// which GRETA_FAULT, GRETA_GEMM_FORCE and TMPDIR are cleared unless env
// sets them. It returns the combined output and the exit code.
//
// The child tests the parent's library (-parity.lib first, so an explicit
// -parity.lib in args wins): under `make test-go-asan` that is the
// sanitized library, and the default one may not be built.
func child(t *testing.T, dir string, env []string, args ...string) (string, int) {
	t.Helper()
	lib, err := filepath.Abs(libPath())
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], append([]string{"-parity.lib", lib}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GRETA_FAULT=", "GRETA_GEMM_FORCE=", "GITHUB_STEP_SUMMARY=", "TMPDIR="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("%v %v: %v", os.Args[0], args, err)
	return "", -1
}

func wantIn(t *testing.T, what, out string, subs ...string) {
	t.Helper()
	for _, s := range subs {
		if !strings.Contains(out, s) {
			t.Errorf("%s: the output does not say %q:\n%s", what, s, tail(out, 40))
		}
	}
}

// TestNoSilentGreen: every way a run can end "ok" without testing anything,
// or run with a typo in what it should test, is said in the account
// without -v — and the typos fail. A missing library still skips (the
// ok line then reads [no tests to run]) unless -parity.require-device.
func TestNoSilentGreen(t *testing.T) {
	if backendKind != "cpu" {
		t.Skip("runs the CPU test binary's children")
	}
	if os.Getenv("GRETA_FAULT") != "" || os.Getenv("GRETA_GEMM_FORCE") != "" {
		t.Skip("GRETA_FAULT / GRETA_GEMM_FORCE set for the whole run")
	}
	openLib(t)
	one := "-test.run=^TestParity$/^tiny-k90$/^fp32$/^S=2$/^auto$"
	missing := filepath.Join(t.TempDir(), "libnope.so")

	t.Run("missing library", func(t *testing.T) {
		out, code := child(t, "", nil, "-parity.lib", missing, one)
		if code != 0 {
			t.Errorf("exit %d, want 0 (a missing library skips)", code)
		}
		wantIn(t, "missing library", out, "NO PARITY CASE RAN: cpu backend: library not found at "+missing,
			buildHint, "-parity.require-device makes this a failure",
			"\ntesting: warning: no tests to run\n", // go test's ok line: [no tests to run]
			"table (TestParity): 1 selected: 0 passed, 0 failed, 1 skipped")
	})
	t.Run("missing library, require-device", func(t *testing.T) {
		out, code := child(t, "", nil, "-parity.lib", missing, "-parity.require-device", one)
		if code == 0 {
			t.Errorf("exit 0 with -parity.require-device and no library")
		}
		wantIn(t, "require-device", out, "-parity.require-device: cpu backend: library not found")
	})
	t.Run("unknown GRETA_FAULT", func(t *testing.T) {
		out, code := child(t, "", []string{"GRETA_FAULT=nonsense"}, one)
		if code == 0 {
			t.Errorf("exit 0 with GRETA_FAULT=nonsense")
		}
		wantIn(t, "GRETA_FAULT", out, "FAILED before any case: GRETA_FAULT=nonsense", "valid", "rope_wrong_layout", "kv_slot_off")
	})
	t.Run("unknown GRETA_GEMM_FORCE", func(t *testing.T) {
		out, code := child(t, "", []string{"GRETA_GEMM_FORCE=sideways"}, one)
		if code == 0 {
			t.Errorf("exit 0 with GRETA_GEMM_FORCE=sideways")
		}
		wantIn(t, "GRETA_GEMM_FORCE", out, "parity: FAIL: GRETA_GEMM_FORCE=sideways is not a route (valid: MFMA, VALU, BLAS")
	})
	t.Run("unknown model", func(t *testing.T) {
		// Even with no library: the typo is found before anything skips.
		out, code := child(t, "", nil, "-parity.lib", missing, "-parity.models", "tiny-k90,llama-3-8b", one)
		if code == 0 {
			t.Errorf("exit 0 with -parity.models naming no fixture")
		}
		wantIn(t, "-parity.models", out, `unknown fixture "llama-3-8b" (valid: `, "llama3-8b", "tiny-k90")
	})
	t.Run("run selects no case", func(t *testing.T) {
		// The example: f16 (not fp16) on a shape the CPU default
		// does not run at S=129.
		out, code := child(t, "", nil, "-test.run=^TestParity$/llama3-8b/f16/S=129/auto")
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		wantIn(t, "empty selection", out, `NO PARITY CASE RAN: -run "^TestParity$/llama3-8b/f16/S=129/auto" selected none of TestParity's cases`,
			"-parity.list", "\ntesting: warning: no tests to run\n")
	})
	t.Run("run selects no test", func(t *testing.T) {
		out, code := child(t, "", nil, "-test.run=^TestNoSuchTest$")
		if code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		wantIn(t, "no test", out, `no parity case ran: -run "^TestNoSuchTest$" selected no test that runs parity cases`)
	})
}

// TestAccountNoDevice: the account of a run on a machine without a device
// says so first, with the fix, and marks the ok line.
func TestAccountNoDevice(t *testing.T) {
	reason := "rocm backend: no device (gp_device_count = 0, <nil>); run on a machine with a device"
	a := &account{backend: "rocm", lib: "build/libgreta_parity_rocm.so", libSkip: reason,
		tests: []testOutcome{{name: "TestParity", skipped: true}}, tableSelected: 2584, tableRan: true,
		skips: []skipGroup{{reason: reason, names: []string{"TestParity"}}}}
	if !a.nothingTested() {
		t.Error("a run without a device is not 'nothing tested'")
	}
	text := a.text()
	wantIn(t, "no device", text, "NO PARITY CASE RAN: "+reason, "-parity.require-device makes this a failure",
		"table (TestParity): 2584 selected: 0 passed, 0 failed, 2584 skipped", "1 × the library reason above (TestParity)")
}

// TestAccountOfAFailingRun: a run with failures ends with the counts by
// first-divergence stage, the worst cases with their rerun commands and
// summary.md's path in this run's own artifacts folder; a second run gets
// a folder of its own, and -parity.artifacts still chooses the folder.
func TestAccountOfAFailingRun(t *testing.T) {
	if backendKind != "cpu" {
		t.Skip("runs the CPU test binary's children")
	}
	lib := openLib(t)
	needCap(t, lib, "faults")
	// The children run a forced-route column under the default route
	// expectation (-parity.expect-routes): a library of another engine
	// (no forced routes) has neither.
	needCap(t, lib, gpapi.CapRoutes)
	tmp := t.TempDir()
	run := "-test.run=^TestParity$/^tiny-k90$/^fp16$/^S=9$/^(auto|mfma)$"
	out, code := child(t, "", []string{"GRETA_FAULT=rope_pos_zero", "TMPDIR=" + tmp}, run)
	if code == 0 {
		t.Fatalf("a faulty run passed:\n%s", tail(out, 30))
	}
	wantIn(t, "failing run", out, "cases: 2 run: 0 passed, 2 failed", "failed cases by first divergence: q_rope 2",
		"worst failing cases (largest margin first; 2 of 2):",
		"rerun: GRETA_FAULT=rope_pos_zero go test ./parity -count=1 -run '^TestParity$/^tiny-k90$/^fp16$/^S=9$/^auto$'",
		"summary: "+filepath.Join(tmp, "parity-artifacts", "run-"))
	m := regexp.MustCompile(`(?m)^summary: (\S+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary line:\n%s", tail(out, 30))
	}
	first := filepath.Dir(m[1])
	sum, err := os.ReadFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	tables := gfmTables(t, string(sum))
	if len(tables) != 2 || len(tables[1]) != 3 || len(tables[1][0]) != 4 {
		t.Errorf("summary.md: want a margins table and a 4-column table of the 2 failing cases, got %q", tables)
	}
	if _, err := os.Stat(filepath.Join(first, "TestParity_tiny-k90_fp16_S=9_auto", "report.md")); err != nil {
		t.Errorf("the failing case's report is not in the run's folder: %v", err)
	}

	// A second run, passing: its own folder; the first one is untouched.
	out, code = child(t, "", []string{"TMPDIR=" + tmp}, run)
	if code != 0 {
		t.Fatalf("the clean run fails:\n%s", tail(out, 30))
	}
	m2 := regexp.MustCompile(`(?m)^summary: (\S+)$`).FindStringSubmatch(out)
	if m2 == nil || filepath.Dir(m2[1]) == first {
		t.Errorf("the second run's summary %v is not in a folder of its own (first: %s)", m2, first)
	}
	if b, _ := os.ReadFile(m[1]); string(b) != string(sum) {
		t.Errorf("the second run rewrote the first run's summary.md")
	}

	// -parity.artifacts overrides.
	dir := filepath.Join(tmp, "mine")
	out, _ = child(t, "", nil, run, "-parity.artifacts", dir)
	wantIn(t, "-parity.artifacts", out, "summary: "+filepath.Join(dir, "summary.md"))
}

// gfmTables parses markdown as GitHub-flavoured markdown (goldmark with
// its GFM extension, as internal/harness's test of report.md does) and
// returns each table's rows as cell texts, header first; a block that GFM
// does not read as a table is not returned.
func gfmTables(t *testing.T, md string) [][][]string {
	t.Helper()
	src := []byte(md)
	doc := goldmark.New(goldmark.WithExtensions(extension.GFM)).Parser().Parse(text.NewReader(src))
	var tables [][][]string
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		tb, ok := n.(*extast.Table)
		if !entering || !ok {
			return ast.WalkContinue, nil
		}
		var rows [][]string
		for r := tb.FirstChild(); r != nil; r = r.NextSibling() {
			var cells []string
			for c := r.FirstChild(); c != nil; c = c.NextSibling() {
				var b strings.Builder
				_ = ast.Walk(c, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
					if tx, ok := n.(*ast.Text); ok && entering {
						b.Write(tx.Segment.Value(src))
					}
					if cs, ok := n.(*ast.String); ok && entering {
						b.Write(cs.Value)
					}
					return ast.WalkContinue, nil
				})
				cells = append(cells, strings.ReplaceAll(b.String(), `\|`, "|")) // GFM reads \| in a cell as |
			}
			rows = append(rows, cells)
		}
		tables = append(tables, rows)
		return ast.WalkSkipChildren, nil
	})
	return tables
}
