package parity

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/model"
	"github.com/gretacore/parity/internal/refdev"
	"github.com/gretacore/parity/internal/tolerance"
)

// TestMain checks the run's configuration before any test (an unknown
// GRETA_GEMM_FORCE, -parity.models name, contract, capability, route
// expectation or shard fails the package, listing the valid values),
// answers -parity.list (and extends go test -list with the case paths)
// without running a case, and ends every run with the account on stderr
// (account_test.go): what ran, what was skipped and why, what failed and how to
// rerun it, and where the artifacts are.
func TestMain(m *testing.M) {
	flag.Parse()
	if err := checkConfig(); err != nil {
		fmt.Fprintf(os.Stderr, "parity: FAIL: %v\n", err)
		os.Exit(1)
	}
	if *flagList {
		os.Exit(printList(os.Stdout, os.Stderr))
	}
	widenParallel()
	code := m.Run()
	if testListPattern() != "" { // go test -list: testing printed the top-level tests
		if code == 0 {
			code = printList(os.Stdout, os.Stderr)
		}
		os.Exit(code)
	}
	if err := writeRunSummary(); err != nil {
		fmt.Fprintln(os.Stderr, "parity: run summary:", err)
	}
	a := takeAccount()
	fmt.Fprint(os.Stderr, a.text())
	if code == 0 && a.nothingTested() {
		// go test shows a passing package's output only with -v; its ok
		// line, though, says "[no tests to run]" when the output holds
		// testing's own warning: so that nothing tested never reads as a
		// plain ok.
		fmt.Println("\ntesting: warning: no tests to run")
	}
	os.Exit(code)
}

// moduleRoot walks up from the working directory to go.mod, so default
// paths work from `go test ./parity` and from a test binary run at the root.
func moduleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// libPath resolves the library: -parity.lib, then GRETA_KERNELS_LIB, then
// the backend's default under the module root.
func libPath() string {
	if *flagLib != "" {
		return *flagLib
	}
	if p := os.Getenv("GRETA_KERNELS_LIB"); p != "" {
		return p
	}
	return filepath.Join(moduleRoot(), defaultLib)
}

var suite struct {
	once sync.Once
	lib  *gpapi.Lib
	skip string // why the backend cannot run, if it cannot
	fail string // why the run cannot go on (an unknown GRETA_FAULT)
	path string // the library path tried
	ref  string // where the float64 reference runs (refdev_test.go)
	// refdev is the float64 reference's GPU library, nil on the host.
	refdev *refdev.Lib
	// stageFail says why copies are not staged through page-locked
	// memory, when the reference library is open and staging failed.
	stageFail string
}

// openLib returns the library under test, or skips the test with the
// reason (no device / library not found at PATH / ABI mismatch) and the
// fix; with -parity.require-device the skip is a failure. An unknown
// GRETA_FAULT is always a failure, listing the library's faults. Every
// test that calls it is counted in the run's account.
func openLib(t testing.TB) *gpapi.Lib {
	t.Helper()
	suite.once.Do(func() {
		path := libPath()
		suite.path = path
		lib, err := gpapi.Open(path)
		var le *gpapi.LoadError
		switch {
		case errors.As(err, &le):
			suite.skip = fmt.Sprintf("%s backend: %s at %s (%v); build it with `%s` or point -parity.lib / GRETA_KERNELS_LIB at a library",
				backendKind, le.Reason, path, le.Err, buildHint)
			return
		case err != nil:
			suite.skip = err.Error()
			return
		}
		n, err := lib.DeviceCount()
		if err != nil || n == 0 {
			suite.skip = fmt.Sprintf("%s backend: no device (gp_device_count = %d, %v); run on a machine with a device", backendKind, n, err)
			return
		}
		if f := os.Getenv("GRETA_FAULT"); f != "" {
			if err := lib.SetFault(f); err != nil {
				suite.fail = fmt.Sprintf("GRETA_FAULT=%s: %v", f, err)
				if !strings.Contains(err.Error(), "valid") {
					suite.fail += fmt.Sprintf(" (valid: %s)", strings.Join(lib.Faults(), ", "))
				}
				if len(lib.Faults()) == 0 {
					suite.fail = fmt.Sprintf("GRETA_FAULT=%s: %v (library %q has no faults)", f, err, lib.Backend)
				}
				return
			}
			fmt.Fprintf(os.Stderr, "\n!!! parity: FAULT ACTIVE: GRETA_FAULT=%s — the library is deliberately broken; failures are expected !!!\n\n", f)
		}
		if suite.ref, suite.fail = openRefdev(path); suite.fail != "" {
			return
		}
		if suite.refdev != nil {
			if err := lib.StageThrough(suite.refdev, gpapi.StageChunks, gpapi.StageChunkBytes); err != nil {
				suite.stageFail = err.Error()
			}
		}
		suite.lib = lib
	})
	countTest(t)
	if suite.fail != "" {
		t.Fatal(suite.fail)
	}
	if suite.lib == nil {
		if *flagRequireDevice {
			t.Fatalf("-parity.require-device: %s", suite.skip)
		}
		recordSkip(t, suite.skip)
		t.Skip(suite.skip)
	}
	return suite.lib
}

// rerunCommand is the one command that reruns just this test.
func rerunCommand(t testing.TB) string {
	parts := strings.Split(t.Name(), "/")
	for i, p := range parts {
		parts[i] = "^" + regexp.QuoteMeta(p) + "$"
	}
	var b strings.Builder
	if f := os.Getenv("GRETA_FAULT"); f != "" {
		fmt.Fprintf(&b, "GRETA_FAULT=%s ", f)
	}
	if f := os.Getenv("GRETA_GEMM_FORCE"); f != "" {
		fmt.Fprintf(&b, "GRETA_GEMM_FORCE=%s ", f)
	}
	b.WriteString("go test ./parity")
	if backendKind != "cpu" {
		b.WriteString(" -tags " + backendKind)
	}
	fmt.Fprintf(&b, " -count=1 -run '%s'", strings.Join(parts, "/"))
	if *flagLib != "" {
		fmt.Fprintf(&b, " -parity.lib %s", *flagLib)
	}
	if *flagBitwise {
		b.WriteString(" -parity.bitwise")
	}
	if *flagFull && backendKind == "cpu" {
		b.WriteString(" -parity.full")
	}
	if *flagSeed != 1 {
		fmt.Fprintf(&b, " -parity.seed %d", *flagSeed)
	}
	if *flagContract != "strict" {
		fmt.Fprintf(&b, " -parity.contract %s", *flagContract)
	}
	if *flagRequire != "" {
		fmt.Fprintf(&b, " -parity.require %s", *flagRequire)
	}
	if *flagRefdev != "auto" {
		fmt.Fprintf(&b, " -parity.refdev %s", *flagRefdev)
	}
	if *flagExpectRoutes != flag.Lookup("parity.expect-routes").DefValue {
		fmt.Fprintf(&b, " -parity.expect-routes '%s'", *flagExpectRoutes)
	}
	b.WriteString(layersFlags()) // layers_test.go
	return b.String()
}

// loadModels returns the model fixtures, filtered by -parity.models.
func loadModels(t testing.TB) []model.Shape {
	t.Helper()
	ms, err := selectedModels()
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// selectedModels returns the model fixtures -parity.models selects (all by
// default); a name that is not a fixture is an error listing the valid ones.
func selectedModels() ([]model.Shape, error) {
	all, err := model.LoadDir(filepath.Join(moduleRoot(), "fixtures", "models"))
	if err != nil {
		return nil, err
	}
	if *flagModels == "" {
		return all, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(*flagModels, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var out []model.Shape
	var valid []string
	for _, m := range all {
		valid = append(valid, m.Name)
		if want[m.Name] {
			out = append(out, m)
			delete(want, m.Name)
		}
	}
	if len(want) > 0 {
		unknown := make([]string, 0, len(want))
		for n := range want {
			unknown = append(unknown, fmt.Sprintf("%q", n))
		}
		sort.Strings(unknown)
		return nil, fmt.Errorf("-parity.models=%s: unknown fixture %s (valid: %s)", *flagModels, strings.Join(unknown, ", "), strings.Join(valid, ", "))
	}
	return out, nil
}

// checkConfig validates the flags and environment variables that select
// what the run tests, before any test runs: a typo must fail the run, not
// skip or silently run the defaults. GRETA_FAULT is checked against the
// library's own faults when it loads (openLib).
func checkConfig() error {
	var errs []error
	if _, err := harness.ForcedRoute(); err != nil {
		errs = append(errs, fmt.Errorf("GRETA_GEMM_FORCE=%s is not a route (valid: MFMA, VALU, BLAS; unset for AUTO)", os.Getenv("GRETA_GEMM_FORCE")))
	}
	if _, err := selectedModels(); err != nil {
		errs = append(errs, err)
	}
	if _, err := tolerance.ParseContract(*flagContract); err != nil {
		errs = append(errs, fmt.Errorf("-parity.contract: %v (valid: strict, engine)", err))
	}
	if _, err := gpapi.ParseCapabilities(*flagRequire); err != nil {
		errs = append(errs, fmt.Errorf("-parity.require: %v", err))
	}
	if _, err := parseExpectRoutes(*flagExpectRoutes); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseShard(*flagShard); err != nil {
		errs = append(errs, err)
	}
	if err := checkLayersConfig(); err != nil { // layers_test.go
		errs = append(errs, err)
	}
	for _, f := range []string{"test.run", "test.skip"} {
		if _, err := compileFilter(testFlag(f)); err != nil {
			errs = append(errs, fmt.Errorf("-%s: %v", strings.TrimPrefix(f, "test."), err))
		}
	}
	return errors.Join(errs...)
}

// runCase executes and evaluates one case and returns the result; an
// execution error (a kernel's error status, an out-of-bounds write, a
// watchdog timeout) fails the test with the rerun command.
func runCase(t interface{ Helper() }, lib *gpapi.Lib, c harness.Case) (*harness.Result, error) {
	t.Helper()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid case %s: %w", c.Name(), err)
	}
	casesRun.Add(1)
	in := harness.NewInputs(c)
	tr, err := harness.Execute(lib, c, in, *flagTimeout)
	if err != nil {
		return nil, fmt.Errorf("case %s on %s: %w", c.Name(), lib.Backend, err)
	}
	res := harness.Evaluate(c, in, tr)
	res.Backend, res.Fault = lib.Backend, lib.ActiveFault()
	return res, nil
}

// checkCase runs a case that must pass; a failure prints the report and
// the rerun command, and leaves artifacts.
func checkCase(t *testing.T, lib *gpapi.Lib, c harness.Case) *harness.Result {
	t.Helper()
	if layered(c) {
		return checkLayers(t, lib, c) // layers_test.go
	}
	res, err := runCase(t, lib, c)
	if err != nil {
		recordError(t, err)
		t.Fatalf("%v\nrerun: %s", err, rerunCommand(t))
	}
	recordResult(t, res)
	if !res.Pass() {
		causes := likelyCauses(res) // signature_test.go
		where := writeArtifacts(t, res, []string{causes})
		t.Errorf("decode diverges from prefill\n%s\n%s%s%s\nrerun: %s", res.Summary(), res.Table(), causes, where, rerunCommand(t))
	}
	return res
}

// widenParallel lets 8×GOMAXPROCS parallel cases run at once on a GPU
// backend, unless -test.parallel is given: a case there mostly waits, on
// the library (one caller at a time, as the ABI says) or on the device,
// and testing's default of GOMAXPROCS running subtests left the host's
// cores idle behind those waits (on an H100 host the table's goroutines
// spent most of their time in testing's waitParallel). On a 16-core H200
// host the strict table took 47 s at 64 and 41 s at 128, the host's
// memory the same (50 GB: the weight caches bound it, not the cases).
func widenParallel() {
	if backendKind == "cpu" {
		return
	}
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	if !set {
		flag.Set("test.parallel", strconv.Itoa(8*runtime.GOMAXPROCS(0)))
	}
}
