package parity

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/model"
	"github.com/gretacore/parity/internal/tolerance"
)

func allModels(t *testing.T) []model.Shape {
	t.Helper()
	ms, err := model.LoadDir(filepath.Join(moduleRoot(), "fixtures", "models"))
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestCaseNamesUnique: every table case of the CPU default and the full
// GPU matrix has its own subtest path, so testing never appends #01 to
// tell two apart (a name that -run cannot select reliably), and so does
// every mutation.
func TestCaseNamesUnique(t *testing.T) {
	for _, full := range []bool{false, true} {
		seen := map[string]bool{}
		for _, c := range harness.Matrix(allModels(t), full, 1) {
			n := strings.Join(casePath(c), "/")
			if seen[n] {
				t.Errorf("full=%v: two cases named %s", full, n)
			}
			if strings.Contains(n, "#") || strings.Contains(n, " ") {
				t.Errorf("full=%v: %q has a character testing rewrites", full, n)
			}
			seen[n] = true
		}
	}
	seen := map[string]bool{}
	for _, m := range mutations {
		for _, ct := range []tolerance.Contract{tolerance.Strict, tolerance.Engine} {
			n := strings.Join(mutationPath(m, ct), "/")
			if seen[n] {
				t.Errorf("two mutations named %s", n)
			}
			seen[n] = true
		}
	}
}

// TestCaseNamesUnambiguous: no dtype element is a substring of another, so
// -run 'TestParity//fp16/' runs fp16 and not bf16 (as "f16" did); no model
// fixture name is a substring of another (the first debug shape was renamed
// from "tiny", a prefix of tiny-qwen and tiny-gqa3, to tiny-k90), so
// -run 'TestParity/tiny-k90/' runs that model only, and 'TestParity/tiny'
// the debug shapes as a family. No other top-level test's name contains TestParity or
// TestMutations, so -run TestParity/… runs the table only.
func TestCaseNamesUnambiguous(t *testing.T) {
	var models []string
	for _, m := range allModels(t) {
		models = append(models, m.Name)
	}
	var dtypes []string
	for _, d := range dtype.All {
		dtypes = append(dtypes, dtypeElem(d))
	}
	for what, names := range map[string][]string{"model fixture": models, "dtype element": dtypes} {
		for _, a := range names {
			for _, b := range names {
				if a != b && strings.Contains(b, a) {
					t.Errorf("%s %q is a substring of %q: -run %q selects both", what, a, b, a)
				}
			}
		}
	}
	for _, n := range topLevelTests(t) {
		for _, suite := range []string{"TestParity", "TestMutations"} {
			if n != suite && strings.Contains(n, suite) {
				t.Errorf("test %s: -run %s/… runs it too; rename it", n, suite)
			}
		}
	}
	paths := func(pat string) []string {
		run, err := compileFilter(pat)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range harness.Matrix(allModels(t), false, 1) {
			p := append([]string{"TestParity"}, casePath(c)...)
			if selectedBy(p, run, nil) {
				out = append(out, strings.Join(p, "/"))
			}
		}
		return out
	}
	for _, m := range models {
		sel := paths("TestParity/^" + regexp.QuoteMeta(m) + "$/")
		if len(sel) == 0 {
			t.Errorf("-run 'TestParity/^%s$/' selects nothing", m)
		}
		for _, n := range sel {
			if !strings.HasPrefix(n, "TestParity/"+m+"/") {
				t.Errorf("-run 'TestParity/^%s$/' selects %s", m, n)
			}
		}
	}
	fp16 := paths("TestParity//fp16/")
	if len(fp16) == 0 {
		t.Error("-run TestParity//fp16/ selects nothing")
	}
	for _, n := range fp16 {
		if !strings.Contains(n, "/fp16/") {
			t.Errorf("-run TestParity//fp16/ selects %s", n)
		}
	}
}

// topLevelTests are the package's test functions, read from its sources.
func topLevelTests(t *testing.T) []string {
	t.Helper()
	var top []string
	files, _ := filepath.Glob(filepath.Join(moduleRoot(), "parity", "*_test.go"))
	testFunc := regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range testFunc.FindAllStringSubmatch(string(b), -1) {
			top = append(top, m[1])
		}
	}
	if len(top) == 0 {
		t.Fatal("no test function found in parity/*_test.go")
	}
	return top
}

// TestRunFilterLikeTesting checks selectedBy against package testing's
// rules on the cases that matter: per-level unanchored elements,
// alternation, slashes inside parentheses, and -skip.
func TestRunFilterLikeTesting(t *testing.T) {
	p := strings.Split("TestParity/tiny-k90/fp16/S=129/auto_steps=4", "/")
	for _, tc := range []struct {
		run, skip string
		want      bool
	}{
		{"", "", true},
		{"TestParity", "", true},
		{"TestParity/tiny-k90/fp16/S=12", "", true},
		{"^TestParity$/^tiny-k90$/^fp16$/^S=129$/^auto$", "", false},
		{"^TestParity$/^tiny-k90$/^fp16$/^S=129$/^auto_steps=4$", "", true},
		{"TestParity/tiny-k90/f16", "", false},
		{"TestMutations|TestParity/tiny-k90", "", true},
		{"TestParity/(tiny-k90/fp16)", "", false}, // one level: "(tiny-k90/fp16)" never matches "tiny-k90"
		{"TestParity/tiny-k90/fp16/S=129/auto/deeper", "", true},
		{"TestParity", "TestParity/tiny-k90", false},
		{"TestParity", "TestParity/tiny-k90/fp16/S=129/auto_steps=4/deeper", true},
	} {
		run, err := compileFilter(tc.run)
		if err != nil {
			t.Fatal(err)
		}
		skip, err := compileFilter(tc.skip)
		if err != nil {
			t.Fatal(err)
		}
		if got := selectedBy(p, run, skip); got != tc.want {
			t.Errorf("-run %q -skip %q selects %v: %v, want %v", tc.run, tc.skip, p, got, tc.want)
		}
	}
}

// TestListMatchesTheRun: -parity.list prints the names a run
// executes and runs nothing; a real run with the same -run executes
// exactly those leaves. go test -list also prints the case paths.
func TestListMatchesTheRun(t *testing.T) {
	if backendKind != "cpu" {
		t.Skip("runs the CPU test binary's children")
	}
	if os.Getenv("GRETA_FAULT") != "" || os.Getenv("GRETA_GEMM_FORCE") != "" {
		t.Skip("GRETA_FAULT / GRETA_GEMM_FORCE set for the whole run")
	}
	// The children run under the default route expectation
	// (-parity.expect-routes), which a library of another engine (no forced
	// routes) does not meet.
	needCap(t, openLib(t), gpapi.CapRoutes)
	run := "-test.run=^TestParity$/tiny-k90/fp32/^S=9$/|^TestMutations$/^kv_slot_off$"
	out, code := child(t, "", nil, "-parity.list", run)
	if code != 0 {
		t.Fatalf("-parity.list: exit %d\n%s", code, out)
	}
	var listed []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "Test") {
			listed = append(listed, l)
		}
	}
	if strings.Contains(out, "=== RUN") || strings.Contains(out, "--- ") || strings.Contains(out, "parity account") {
		t.Errorf("-parity.list ran something:\n%s", tail(out, 20))
	}
	wantIn(t, "-parity.list", out, "TestParity/tiny-k90/fp32/S=9/auto\n", "TestMutations/kv_slot_off/tiny-k90/fp16/strict\n",
		"parity: "+strconv.Itoa(len(listed))+" case names")
	out, code = child(t, "", nil, "-test.v", run)
	if code != 0 {
		t.Fatalf("the run fails:\n%s", tail(out, 30))
	}
	var ran []string
	for _, m := range regexp.MustCompile(`(?m)^\s*--- (?:PASS|FAIL|SKIP): (\S+)`).FindAllStringSubmatch(out, -1) {
		if d := strings.Count(m[1], "/"); (strings.HasPrefix(m[1], "TestParity/") && d == 4) || (strings.HasPrefix(m[1], "TestMutations/") && d == 4) {
			ran = append(ran, m[1])
		}
	}
	slices.Sort(listed)
	slices.Sort(ran)
	if !slices.Equal(listed, ran) {
		t.Errorf("-parity.list printed\n  %v\nthe run executed\n  %v", listed, ran)
	}
	out, code = child(t, "", nil, "-test.list=^TestMutations$")
	if code != 0 || !strings.Contains(out, "TestMutations\n") || !strings.Contains(out, "TestMutations/gqa_modulo/tiny-k90/fp16/strict\n") || strings.Contains(out, "TestParity/") {
		t.Errorf("go test -list ^TestMutations$ (exit %d) does not list the mutations' paths only:\n%s", code, tail(out, 10))
	}
}

// TestREADMERunPatterns: every `go test ./parity … -run '…'` command in the
// README selects at least one test or case of the matrix it runs on (the
// GPU tags and -parity.full run the full matrix), so no documented example
// ends in an ok that tested nothing.
func TestREADMERunPatterns(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(moduleRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	top := topLevelTests(t)
	// head and layers: the line's -parity.head and -parity.layers=N, which
	// rename the table's leaves (auto_head, auto_layers=3).
	names := func(full, head bool, layers int) [][]string {
		var out [][]string
		for _, n := range top {
			if n != "TestParity" && n != "TestMutations" { // these count by their cases
				out = append(out, []string{n})
			}
		}
		for _, c := range harness.Matrix(allModels(t), full, 1) {
			if layers > 1 {
				c.Layers = layers
			}
			c.Head = head || layers > 1
			out = append(out, append([]string{"TestParity"}, casePath(c)...))
		}
		for _, m := range mutations {
			for _, ct := range []tolerance.Contract{tolerance.Strict, tolerance.Engine} {
				out = append(out, append([]string{"TestMutations"}, mutationPath(m, ct)...))
			}
		}
		return out
	}
	layersRE := regexp.MustCompile(`-parity\.layers[ =](\d+)`)
	cmdRE := regexp.MustCompile(`go test \./parity[^\n` + "`" + `]*?-run[ =]'([^']*)'`)
	found := 0
	for _, line := range strings.Split(string(readme), "\n") {
		for _, m := range cmdRE.FindAllStringSubmatch(line, -1) {
			if m[1] == "^$" { // benchmarks only: selects no test by design
				continue
			}
			found++
			full := strings.Contains(line, "-tags") || strings.Contains(line, "-parity.full")
			run, err := compileFilter(m[1])
			if err != nil {
				t.Errorf("README: -run '%s': %v", m[1], err)
				continue
			}
			layers := 1
			if lm := layersRE.FindStringSubmatch(line); lm != nil {
				layers, _ = strconv.Atoi(lm[1])
			}
			n := 0
			for _, p := range names(full, strings.Contains(line, "-parity.head"), layers) {
				if selectedBy(p, run, nil) {
					n++
				}
			}
			if n == 0 {
				t.Errorf("README: %q selects nothing (full matrix: %v)", strings.TrimSpace(line), full)
			}
		}
	}
	if found == 0 {
		t.Error("no `go test ./parity … -run '…'` command found in the README")
	}
}
