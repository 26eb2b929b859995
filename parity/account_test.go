package parity

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// The run's account: TestMain prints it on stderr at the end of every run
// of the package, -v or not, so that a run that tested nothing, skipped
// most of what it selected, or failed across many cases says so in one
// block: cases run / passed / failed / skipped, the skip reasons grouped
// with their fix, the failures counted by first-divergence stage, the worst
// few with their rerun commands, and the artifacts folder and summary.md.

// casesRun counts every case executed (runCase), whichever test judged
// it: the table and checkCase record theirs in the run summary, the
// mutations, properties and other suites judge their own.
var casesRun atomic.Int64

// ledger collects what the account needs besides the run summary's case
// lines (artifacts_test.go): the tests that asked for the library, and the
// skips with their reasons.
var ledger struct {
	sync.Mutex
	tests map[string]*testOutcome
	order []string
	skips map[string]map[string]bool // reason → test names
}

type testOutcome struct {
	name            string
	failed, skipped bool
}

// countTest records a test that needs the library (openLib); its outcome
// is read when it and its subtests are done.
func countTest(t testing.TB) {
	ledger.Lock()
	defer ledger.Unlock()
	if ledger.tests == nil {
		ledger.tests = map[string]*testOutcome{}
	}
	if _, ok := ledger.tests[t.Name()]; ok {
		return
	}
	o := &testOutcome{name: t.Name()}
	ledger.tests[t.Name()] = o
	ledger.order = append(ledger.order, t.Name())
	t.Cleanup(func() {
		ledger.Lock()
		defer ledger.Unlock()
		o.failed, o.skipped = t.Failed(), t.Skipped()
	})
}

// recordSkip records why t skips (called just before t.Skip).
func recordSkip(t testing.TB, reason string) {
	ledger.Lock()
	defer ledger.Unlock()
	if ledger.skips == nil {
		ledger.skips = map[string]map[string]bool{}
	}
	if ledger.skips[reason] == nil {
		ledger.skips[reason] = map[string]bool{}
	}
	ledger.skips[reason][t.Name()] = true
}

// recordError records a case that could not run to a verdict (a kernel
// error, an out-of-bounds write, a watchdog timeout) as a failed case.
func recordError(t testing.TB, err error) {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if len(msg) > 160 {
		msg = msg[:160] + "…"
	}
	summary.Lock()
	defer summary.Unlock()
	summary.cases = append(summary.cases, caseLine{name: t.Name(), verdict: "ERROR", first: "error",
		detail: msg, margin: math.Inf(1), rerun: rerunCommand(t)})
}

// account is a snapshot of the run for its closing block.
type account struct {
	backend, lib      string
	ref               string // refdevAccount's line
	held              string // how long the run held the library
	libSkip, libFail  string
	runPattern        string
	executed          int // cases run by any test (casesRun)
	cases             []caseLine
	tests             []testOutcome
	skips             []skipGroup
	tableSelected     int // table cases -run selects (-1: unknown)
	tableRan          bool
	summaryPath, arts string
}

type skipGroup struct {
	reason string
	names  []string
}

// takeAccount snapshots the run (after m.Run).
func takeAccount() *account {
	a := &account{backend: backendKind, lib: suite.path, libSkip: suite.skip, libFail: suite.fail, ref: refdevAccount(suite.ref),
		held:       heldAccount() + timingAccount(),
		runPattern: testFlag("test.run"), tableSelected: -1, arts: artifactsDir(), executed: int(casesRun.Load())}
	summary.Lock()
	a.cases = append(a.cases, summary.cases...)
	a.summaryPath = summary.written
	summary.Unlock()
	ledger.Lock()
	for _, n := range ledger.order {
		a.tests = append(a.tests, *ledger.tests[n])
		if n == "TestParity" {
			a.tableRan = true
		}
	}
	for r, names := range ledger.skips {
		g := skipGroup{reason: r}
		for n := range names {
			g.names = append(g.names, n)
		}
		sort.Strings(g.names)
		a.skips = append(a.skips, g)
	}
	ledger.Unlock()
	sort.Slice(a.skips, func(i, j int) bool {
		if len(a.skips[i].names) != len(a.skips[j].names) {
			return len(a.skips[i].names) > len(a.skips[j].names)
		}
		return a.skips[i].reason < a.skips[j].reason
	})
	if names, err := listedNames(); err == nil {
		a.tableSelected = 0
		for _, n := range names {
			if strings.HasPrefix(n, "TestParity/") {
				a.tableSelected++
			}
		}
	}
	return a
}

// nothingTested reports a run that selected parity cases, or tests that
// need the library, and ran no case: the library is missing, there is no
// device, or -run selected no table case. Its ok line must not look like
// a plain ok.
func (a *account) nothingTested() bool {
	if len(a.cases) > 0 || a.executed > 0 {
		return false
	}
	return (a.libSkip != "" && len(a.tests) > 0) || (a.tableRan && a.tableSelected == 0)
}

// fixFor is the hint that goes with a skip reason.
func fixFor(reason string) string {
	switch {
	case strings.Contains(reason, "lacks capability"):
		c := ""
		if i := strings.Index(reason, "lacks capability "); i >= 0 {
			c = strings.Fields(reason[i+len("lacks capability "):])[0]
		}
		return fmt.Sprintf("what it needs is not in the library; -parity.require=%s makes this a failure", c)
	case strings.Contains(reason, "backend:"):
		return "-parity.require-device makes this a failure"
	}
	return ""
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// text renders the account block.
func (a *account) text() string {
	var b strings.Builder
	lib := a.lib
	if lib == "" {
		lib = "not opened"
	}
	fmt.Fprintf(&b, "\n=== parity account (%s backend; library: %s) ===\n", a.backend, lib)
	b.WriteString(a.ref)
	b.WriteString(a.held)

	var pass, fail, tablePass, tableFail int
	byStage := map[string]int{}
	var failed []caseLine
	for _, c := range a.cases {
		table := strings.HasPrefix(c.name, "TestParity/")
		if c.verdict == "pass" {
			pass++
			if table {
				tablePass++
			}
			continue
		}
		fail++
		if table {
			tableFail++
		}
		byStage[c.stage()]++
		failed = append(failed, c)
	}

	// The first line says whether anything was tested.
	nothing := len(a.cases) == 0 && a.executed == 0
	switch {
	case a.libFail != "":
		fmt.Fprintf(&b, "FAILED before any case: %s\n", a.libFail)
	case nothing && a.libSkip != "" && len(a.tests) > 0:
		fmt.Fprintf(&b, "NO PARITY CASE RAN: %s\n", a.libSkip)
		fmt.Fprintf(&b, "  %s; the tests below skipped (go test's ok line reads [no tests to run])\n", fixFor(a.libSkip))
	case nothing && a.tableRan && a.tableSelected == 0 && a.runPattern != "":
		fmt.Fprintf(&b, "NO PARITY CASE RAN: -run %q selected none of TestParity's cases (see the names with: go test ./parity -parity.list -v)\n", a.runPattern)
	case nothing && a.tableRan && a.tableSelected == 0:
		b.WriteString("NO PARITY CASE RAN: -parity.models, -short and -parity.shard leave none of TestParity's cases\n")
	case nothing && len(a.tests) == 0:
		if a.runPattern != "" {
			fmt.Fprintf(&b, "no parity case ran: -run %q selected no test that runs parity cases\n", a.runPattern)
		} else {
			b.WriteString("no parity case ran: no test that runs parity cases was selected\n")
		}
	case nothing:
		b.WriteString("no parity case ran (the selected tests run none)\n")
	case len(a.cases) == 0:
		fmt.Fprintf(&b, "cases run: %d, by tests that judge their own (mutations, properties, determinism, …)\n", a.executed)
	default:
		fmt.Fprintf(&b, "cases: %d run: %d passed, %d failed", len(a.cases), pass, fail)
		if more := a.executed - len(a.cases); more > 0 {
			fmt.Fprintf(&b, "; %d more run by tests that judge their own (mutations, properties, determinism, …)", more)
		}
		b.WriteString("\n")
	}
	if a.tableRan && a.tableSelected >= 0 {
		ran := tablePass + tableFail
		skipped := a.tableSelected - ran
		if skipped < 0 {
			skipped = 0
		}
		fmt.Fprintf(&b, "table (TestParity): %d selected: %d passed, %d failed, %d skipped\n", a.tableSelected, tablePass, tableFail, skipped)
	}
	if len(a.tests) > 0 {
		var tf, ts []string
		for _, t := range a.tests {
			switch {
			case t.failed:
				tf = append(tf, t.name)
			case t.skipped:
				ts = append(ts, t.name)
			}
		}
		fmt.Fprintf(&b, "tests that use the library: %d: %d passed, %d failed, %d skipped\n",
			len(a.tests), len(a.tests)-len(tf)-len(ts), len(tf), len(ts))
		if len(tf) > 0 {
			fmt.Fprintf(&b, "  failed: %s\n", strings.Join(tf, ", "))
		}
	}
	if len(a.skips) > 0 {
		n := 0
		for _, g := range a.skips {
			n += len(g.names)
		}
		fmt.Fprintf(&b, "skipped (%s), by reason:\n", plural(n, "test", "tests"))
		for i, g := range a.skips {
			if i == 8 {
				fmt.Fprintf(&b, "  … %d more reasons (go test -v shows them)\n", len(a.skips)-i)
				break
			}
			ex := g.names[0]
			if len(g.names) > 1 {
				ex += ", …"
			}
			if g.reason == a.libSkip {
				fmt.Fprintf(&b, "  %d × the library reason above (%s)\n", len(g.names), ex)
				continue
			}
			fmt.Fprintf(&b, "  %d × %s  (%s)\n", len(g.names), g.reason, ex)
			if f := fixFor(g.reason); f != "" {
				fmt.Fprintf(&b, "      fix: %s\n", f)
			}
		}
	}
	if fail > 0 {
		stages := make([]string, 0, len(byStage))
		for st := range byStage {
			stages = append(stages, st)
		}
		sort.Slice(stages, func(i, j int) bool {
			if byStage[stages[i]] != byStage[stages[j]] {
				return byStage[stages[i]] > byStage[stages[j]]
			}
			return stages[i] < stages[j]
		})
		parts := make([]string, len(stages))
		for i, st := range stages {
			parts[i] = fmt.Sprintf("%s %d", st, byStage[st])
		}
		fmt.Fprintf(&b, "failed cases by first divergence: %s\n", strings.Join(parts, ", "))
		sort.SliceStable(failed, func(i, j int) bool { return failed[i].margin > failed[j].margin })
		const worst = 5
		fmt.Fprintf(&b, "worst failing cases (largest margin first; %d of %d):\n", min(worst, len(failed)), len(failed))
		for _, c := range failed[:min(worst, len(failed))] {
			fmt.Fprintf(&b, "  %s: %s\n    rerun: %s\n", c.name, c.describe(), c.rerun)
		}
	}
	switch {
	case a.summaryPath != "":
		fmt.Fprintf(&b, "summary: %s\n", a.summaryPath)
		if fail > 0 {
			fmt.Fprintf(&b, "artifacts of the failing cases (report.md, trace.jsonl, heatmap): %s\n", filepath.Dir(a.summaryPath))
		}
	case len(a.cases) > 0:
		fmt.Fprintf(&b, "artifacts: %s (not written)\n", a.arts)
	}
	return b.String()
}

// heldAccount is the account's lines on the library's held time (one
// caller at a time, the ABI's rule, so it bounds the run's wall time from
// below) and on how copies moved: through the reference library's
// page-locked chunks (gpapi.Lib.StageThrough) or from Go memory.
func heldAccount() string {
	if suite.lib == nil {
		return ""
	}
	copies := suite.lib.StagedSummary()
	if suite.stageFail != "" {
		copies += ": " + suite.stageFail
	}
	return "library held: " + suite.lib.HeldSummary() + "\ncopies: " + copies + "\n"
}
