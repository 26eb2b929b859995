// Package adaptertest holds what the engine adapters' own test packages
// (adapters/torch/torchtest, adapters/ggml/ggmltest) share: finding the
// module root and the fixtures, and opening an adapter library with a
// visible skip naming the build command when it is missing or has no
// device.
package adaptertest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/model"
)

// ModuleRoot is the nearest folder above the working directory holding
// go.mod (the working directory itself if there is none).
func ModuleRoot() string {
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

// OpenLib opens the adapter library at path, else $GRETA_KERNELS_LIB,
// else build/<file> under the module root; a library that cannot load or
// has no device skips the test, naming the adapter and build, the command
// that makes it.
func OpenLib(t *testing.T, path, file, adapter, build string) *gpapi.Lib {
	t.Helper()
	if path == "" {
		path = os.Getenv("GRETA_KERNELS_LIB")
	}
	if path == "" {
		path = filepath.Join(ModuleRoot(), "build", file)
	}
	lib, err := gpapi.Open(path)
	if err != nil {
		t.Skipf("%s adapter: %v (%s)", adapter, err, build)
	}
	if n, err := lib.DeviceCount(); err != nil || n == 0 {
		t.Skipf("%s adapter %s: no device (%d, %v)", adapter, lib.Backend, n, err)
	}
	return lib
}

// Shape is the fixture named name (fixtures/models), or a fatal error.
func Shape(t *testing.T, name string) model.Shape {
	t.Helper()
	all, err := model.LoadDir(filepath.Join(ModuleRoot(), "fixtures", "models"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range all {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no fixture %s", name)
	return model.Shape{}
}
