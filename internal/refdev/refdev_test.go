package refdev

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenErrors: a missing file and a file that is not a shared library
// are errors naming the path and the reason, never a panic. (The GPU tags'
// TestDeviceReferenceMatchesHost, in ../../parity, checks a real library.)
func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	notLib := filepath.Join(dir, "libgreta_parity_refdev_cuda.so")
	if err := os.WriteFile(notLib, []byte("not an ELF file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.so"), "not found"},
		{notLib, "cannot load"},
	} {
		l, err := Open(tc.path)
		if err == nil || l != nil {
			t.Fatalf("Open(%s) = %v, %v; want an error", tc.path, l, err)
		}
		if !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%s): %q does not name the path and %q", tc.path, err, tc.want)
		}
	}
}
