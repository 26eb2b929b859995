package parity

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/gpapi"
)

// buildStub compiles testdata/name.c (with the -D defines) into a shared
// library with gcc, or skips when there is no C compiler.
func buildStub(t *testing.T, name string, defines ...string) string {
	t.Helper()
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot build the stub library")
	}
	out := filepath.Join(t.TempDir(), name+".so")
	inc := "-I" + filepath.Join(moduleRoot(), "kernels", "include")
	args := append([]string{"-shared", "-fPIC", inc, "-o", out, filepath.Join("testdata", name+".c")}, defines...)
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return out
}

// TestLoadErrors checks that every way a library can be unusable is an
// error naming the path and the reason, never a panic.
func TestLoadErrors(t *testing.T) {
	notELF := filepath.Join(t.TempDir(), "not-a-library.so")
	if err := os.WriteFile(notELF, []byte("this is not an ELF file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, reason, detail string
	}{
		{"missing", filepath.Join(t.TempDir(), "libnope.so"), "library not found", "no such file"},
		{"not-a-shared-library", notELF, "cannot load shared library", ""},
		{"abi-mismatch", buildStub(t, "abi_mismatch"), "ABI mismatch", "gp_abi_version() = 999"},
		{"missing-symbol", buildStub(t, "missing_symbol"), "missing symbol gp_backend_name", "undefined symbol"},
		{"no-attention", buildStub(t, "core_stub"), "no attention", "neither unfused attention (gp_attn_scores, gp_softmax, gp_attn_pv) nor fused attention (gp_attention)"},
		{"partial-capability", buildStub(t, "core_stub", "-DPARTIAL_FAULTS"), "partial capability faults",
			"exports gp_set_fault, gp_active_fault but not gp_fault_count, gp_fault_name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lib, err := gpapi.Open(c.path)
			var le *gpapi.LoadError
			if lib != nil || !errors.As(err, &le) {
				t.Fatalf("Open(%s) = %v, %v; want a *LoadError", c.path, lib, err)
			}
			msg := err.Error()
			if le.Reason != c.reason || !strings.Contains(msg, c.path) || !strings.Contains(strings.ToLower(msg), strings.ToLower(c.detail)) {
				t.Errorf("Open(%s) error %q: want reason %q, the path and %q", c.path, msg, c.reason, c.detail)
			}
		})
	}
}

// TestBadArguments calls every entry point with invalid arguments: each
// must return its error status with a message naming the argument, and a
// valid call afterwards must still work (no crash, no corrupted state).
func TestBadArguments(t *testing.T) {
	lib := openLib(t)
	buf := func(n int) uintptr {
		b, err := lib.Alloc("scratch", n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Free() })
		return b.Ptr
	}
	x, w, y, pos := buf(4096), buf(4096), buf(4096), buf(64)
	f16, f32 := int32(1), int32(0)
	nan := float32(math.NaN())
	type call struct {
		name   string
		status gpapi.Status
		arg    string // the message must name it
		f      func() (gpapi.Launch, error)
	}
	cases := []call{
		{"linear M=0", gpapi.ErrInvalidArg, "M", func() (gpapi.Launch, error) { return lib.Linear(f16, 0, x, w, 0, y, 0, 4, 4) }},
		{"linear N<0", gpapi.ErrInvalidArg, "N", func() (gpapi.Launch, error) { return lib.Linear(f16, 0, x, w, 0, y, 1, -4, 4) }},
		{"linear K=0", gpapi.ErrInvalidArg, "K", func() (gpapi.Launch, error) { return lib.Linear(f16, 0, x, w, 0, y, 1, 4, 0) }},
		{"linear unknown dtype", gpapi.ErrInvalidArg, "dtype", func() (gpapi.Launch, error) { return lib.Linear(7, 0, x, w, 0, y, 1, 4, 4) }},
		{"linear unknown route", gpapi.ErrInvalidArg, "route", func() (gpapi.Launch, error) { return lib.Linear(f16, 9, x, w, 0, y, 1, 4, 4) }},
		{"linear null x", gpapi.ErrNullPointer, "x", func() (gpapi.Launch, error) { return lib.Linear(f16, 0, 0, w, 0, y, 1, 4, 4) }},
		{"linear null y", gpapi.ErrNullPointer, "y", func() (gpapi.Launch, error) { return lib.Linear(f16, 0, x, w, 0, 0, 1, 4, 4) }},
		{"rmsnorm NaN eps", gpapi.ErrInvalidArg, "eps", func() (gpapi.Launch, error) { return lib.RMSNorm(f16, x, w, y, 1, 8, nan) }},
		{"rmsnorm rows above GP_MAX_SEQ", gpapi.ErrInvalidArg, "rows", func() (gpapi.Launch, error) { return lib.RMSNorm(f16, x, w, y, 1<<20, 8, 1e-5) }},
		{"rope odd head_dim", gpapi.ErrInvalidArg, "head_dim", func() (gpapi.Launch, error) { return lib.Rope(f16, 0, x, y, pos, 1, 2, 15, 1e4) }},
		{"rope unknown layout", gpapi.ErrInvalidArg, "layout", func() (gpapi.Launch, error) { return lib.Rope(f16, 5, x, y, pos, 1, 2, 16, 1e4) }},
		{"rope theta 0", gpapi.ErrInvalidArg, "theta", func() (gpapi.Launch, error) { return lib.Rope(f16, 0, x, y, pos, 1, 2, 16, 0) }},
		{"rope null positions", gpapi.ErrNullPointer, "pos", func() (gpapi.Launch, error) { return lib.Rope(f16, 0, x, y, 0, 1, 2, 16, 1e4) }},
		{"kv append past capacity", gpapi.ErrInvalidArg, "slot", func() (gpapi.Launch, error) { return lib.KVAppend(f16, x, x, y, w, 2, 8, 7, 8) }},
		{"kv append negative slot", gpapi.ErrInvalidArg, "slot", func() (gpapi.Launch, error) { return lib.KVAppend(f16, x, x, y, w, 1, 8, -1, 8) }},
		{"scores heads not divisible by kv heads", gpapi.ErrInvalidArg, "n_kv_heads", func() (gpapi.Launch, error) {
			return lib.AttnScores(f16, x, w, y, 1, 4, 6, 4, 16, 3, 0.25, true)
		}},
		{"scores query offset beyond the cache", gpapi.ErrInvalidArg, "q_pos0", func() (gpapi.Launch, error) {
			return lib.AttnScores(f16, x, w, y, 1, 4, 2, 1, 16, 4, 0.25, true)
		}},
		{"scores head_dim not a multiple of 8", gpapi.ErrInvalidArg, "head_dim", func() (gpapi.Launch, error) {
			return lib.AttnScores(f16, x, w, y, 1, 4, 2, 1, 12, 3, 0.25, true)
		}},
		{"softmax n_kv=0", gpapi.ErrInvalidArg, "n_kv", func() (gpapi.Launch, error) { return lib.Softmax(x, y, 2, 1, 0) }},
		{"pv null probs", gpapi.ErrNullPointer, "probs", func() (gpapi.Launch, error) { return lib.AttnPV(f16, 0, w, y, 1, 4, 2, 1, 16) }},
		{"pv zero kv heads", gpapi.ErrInvalidArg, "n_kv_heads", func() (gpapi.Launch, error) { return lib.AttnPV(f32, x, w, y, 1, 4, 2, 0, 16) }},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			_, err := c.f()
			var e *gpapi.Error
			if !errors.As(err, &e) {
				t.Fatalf("%s: got %v, want a *gpapi.Error\nrerun: %s", c.name, err, rerunCommand(t))
			}
			if e.Status != c.status || !strings.Contains(e.Msg, c.arg) {
				t.Errorf("%s: %v; want status %d and a message naming %q\nrerun: %s", c.name, err, c.status, c.arg, rerunCommand(t))
			}
			// A valid call still works afterwards.
			if _, err := lib.Linear(f32, 0, x, w, 0, y, 2, 4, 4); err != nil {
				t.Errorf("a valid gp_linear after %s failed: %v", c.name, err)
			}
		})
	}
	t.Run("unknown_fault", func(t *testing.T) {
		err := lib.SetFault("no_such_fault")
		var e *gpapi.Error
		if !errors.As(err, &e) || e.Status != gpapi.ErrUnknownFault || !strings.Contains(e.Msg, "no_such_fault") {
			t.Errorf("SetFault(no_such_fault) = %v, want status %d naming it", err, gpapi.ErrUnknownFault)
		}
		if f := lib.ActiveFault(); f != "none" && os.Getenv("GRETA_FAULT") == "" {
			t.Errorf("a rejected fault left %q active", f)
		}
	})
}
