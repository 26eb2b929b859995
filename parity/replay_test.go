package parity

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
)

// TestReplayRoundTrip: -parity.replay reads back exactly the case its
// hint printed.
func TestReplayRoundTrip(t *testing.T) {
	c := harness.Case{Model: modelByName(t, "tiny-qwen"), S: 33, Steps: 2, PosOffset: 4000, Dtype: dtype.BF16,
		Route: gpapi.RouteVALU, Dist: harness.DistOutliers, Seed: 1<<63 + 5}
	got, err := parseReplay(formatReplay(c))
	if err != nil {
		t.Fatal(err)
	}
	if got.Name() != c.Name() || got.Model != c.Model || got.Seed != c.Seed || got.Dist != c.Dist {
		t.Errorf("replay round trip: %+v, want %+v", got, c)
	}
	if _, err := parseReplay(`{"model":{},"s":1,"extra":1}`); err == nil {
		t.Error("parseReplay accepted an unknown field")
	}
}

// TestPropertyReplayHint: a failing property check prints a command that
// replays the failing case, and it works whether or not rapid writes fail
// files: with -rapid.nofailfile (no file) and with fail files (written in
// the child's own folder, not the repo), the printed command reruns that
// one case, which fails with the fault and passes without it.
func TestPropertyReplayHint(t *testing.T) {
	if backendKind != "cpu" {
		t.Skip("runs the CPU test binary's children")
	}
	if os.Getenv("GRETA_FAULT") != "" || os.Getenv("GRETA_GEMM_FORCE") != "" {
		t.Skip("GRETA_FAULT / GRETA_GEMM_FORCE set for the whole run")
	}
	lib := openLib(t)
	needCap(t, lib, gpapi.CapFaults)
	if !slices.Contains(lib.Faults(), "rope_pos_zero") {
		t.Skip("the library has no rope_pos_zero fault")
	}
	// A folder that looks like the module root (go.mod, fixtures), so that
	// rapid's testdata/rapid fail files land there.
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module scratch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(moduleRoot(), "fixtures"), filepath.Join(root, "fixtures")); err != nil {
		t.Fatal(err)
	}
	fault := []string{"GRETA_FAULT=rope_pos_zero"}
	// The child runs in another folder: a relative -parity.lib must not
	// change meaning there.
	libAbs, err := filepath.Abs(libPath())
	if err != nil {
		t.Fatal(err)
	}
	libArg := []string{"-parity.lib", libAbs}
	hint := regexp.MustCompile(`replay this case: (.*) -parity\.replay '([^']*)'`)
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"nofailfile", []string{"-rapid.nofailfile"}},
		{"failfile", nil},
	} {
		t.Run(mode.name, func(t *testing.T) {
			args := append([]string{"-test.run=^TestPropertyParity$", "-rapid.checks=5", "-rapid.shrinktime=1s"}, libArg...)
			out, code := child(t, root, fault, append(args, mode.args...)...)
			if code == 0 {
				t.Fatalf("the property passes with GRETA_FAULT=rope_pos_zero:\n%s", tail(out, 20))
			}
			files, _ := filepath.Glob(filepath.Join(root, "testdata", "rapid", "*", "*.fail"))
			if (len(files) > 0) != (mode.name == "failfile") {
				t.Errorf("%s: fail files %v", mode.name, files)
			}
			m := hint.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no replay command in the failure:\n%s", tail(out, 40))
			}
			if !strings.Contains(m[1], "GRETA_FAULT=rope_pos_zero go test ./parity -count=1 -run '^TestPropertyParity$'") {
				t.Errorf("the replay command %q does not rerun TestPropertyParity with the fault", m[1])
			}
			replay := append([]string{"-test.run=^TestPropertyParity$", "-test.v", "-parity.replay", m[2]}, libArg...)
			out, code = child(t, root, fault, replay...)
			c, err := parseReplay(m[2])
			if err != nil {
				t.Fatal(err)
			}
			if code == 0 || !strings.Contains(out, "replaying "+c.Name()) || !strings.Contains(out, "decode diverges from prefill") {
				t.Errorf("the replay with the fault (exit %d) does not fail on %s:\n%s", code, c.Name(), tail(out, 20))
			}
			if out, code = child(t, root, nil, replay...); code != 0 {
				t.Errorf("the replay without the fault fails:\n%s", tail(out, 20))
			}
		})
	}
}
