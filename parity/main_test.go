package parity

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/model"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := writeRunSummary(); err != nil {
		fmt.Fprintln(os.Stderr, "parity: run summary:", err)
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
}

// openLib returns the library under test, or skips the test with the
// reason (no device / library not found at PATH / ABI mismatch); with
// -parity.require-device the skip is a failure.
func openLib(t testing.TB) *gpapi.Lib {
	t.Helper()
	suite.once.Do(func() {
		path := libPath()
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
			suite.skip = fmt.Sprintf("%s backend: no device (gp_device_count = %d, %v)", backendKind, n, err)
			return
		}
		if f := os.Getenv("GRETA_FAULT"); f != "" {
			if err := lib.SetFault(f); err != nil {
				suite.skip = fmt.Sprintf("GRETA_FAULT=%s: %v", f, err)
				return
			}
			fmt.Fprintf(os.Stderr, "\n!!! parity: FAULT ACTIVE: GRETA_FAULT=%s — the library is deliberately broken; failures are expected !!!\n\n", f)
		}
		suite.lib = lib
	})
	if suite.lib == nil {
		if *flagRequireDevice {
			t.Fatalf("-parity.require-device: %s", suite.skip)
		}
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
	if *flagExpectRoutes != flag.Lookup("parity.expect-routes").DefValue {
		fmt.Fprintf(&b, " -parity.expect-routes '%s'", *flagExpectRoutes)
	}
	return b.String()
}

// loadModels returns the model fixtures, filtered by -parity.models.
func loadModels(t testing.TB) []model.Shape {
	t.Helper()
	all, err := model.LoadDir(filepath.Join(moduleRoot(), "fixtures", "models"))
	if err != nil {
		t.Fatal(err)
	}
	if *flagModels == "" {
		return all
	}
	want := map[string]bool{}
	for _, n := range strings.Split(*flagModels, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var out []model.Shape
	for _, m := range all {
		if want[m.Name] {
			out = append(out, m)
			delete(want, m.Name)
		}
	}
	if len(want) > 0 {
		t.Fatalf("-parity.models names unknown fixtures: %v", want)
	}
	return out
}

// runCase executes and evaluates one case and returns the result; an
// execution error (a kernel's error status, an out-of-bounds write, a
// watchdog timeout) fails the test with the rerun command.
func runCase(t interface{ Helper() }, lib *gpapi.Lib, c harness.Case) (*harness.Result, error) {
	t.Helper()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid case %s: %w", c.Name(), err)
	}
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
	res, err := runCase(t, lib, c)
	if err != nil {
		t.Fatalf("%v\nrerun: %s", err, rerunCommand(t))
	}
	recordResult(t, res)
	if !res.Pass() {
		where := writeArtifacts(t, res, nil)
		t.Errorf("decode diverges from prefill\n%s\n%s%s\nrerun: %s", res.Summary(), res.Table(), where, rerunCommand(t))
	}
	return res
}
