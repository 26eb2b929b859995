package parity

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/refdev"
	"github.com/gretacore/parity/internal/reference"
)

var flagRefdev = flag.String("parity.refdev", "auto",
	"where the float64 reference's projection passes run: auto (the GPU reference library beside the library under test, "+
		"when one is built and loads; else the host), host, or the path of a reference library (the run fails if it cannot load); "+
		"every device result is audited on the host, sampled outputs bit for bit")

// openRefdev puts the float64 reference's projection passes on the GPU
// library -parity.refdev names, once the library under test is open on a
// device. It returns the account's description of where the reference
// runs, and a failure when an explicitly named library cannot be used.
func openRefdev(libPath string) (desc, fail string) {
	path := *flagRefdev
	switch path {
	case "host":
		return "host (-parity.refdev=host)", ""
	case "auto":
		if refdevName == "" {
			return fmt.Sprintf("host (the %s backend has no reference library)", backendKind), ""
		}
		path = filepath.Join(filepath.Dir(libPath), refdevName)
		if _, err := os.Stat(path); err != nil {
			return fmt.Sprintf("host (no %s beside the library; `%s` builds it)", refdevName, buildHint), ""
		}
	}
	l, err := refdev.Open(path)
	if err != nil {
		if *flagRefdev == "auto" {
			return fmt.Sprintf("host (%v)", err), ""
		}
		return "", fmt.Sprintf("-parity.refdev=%s: %v", *flagRefdev, err)
	}
	harness.UseDeviceReference(l)
	suite.refdev = l
	return fmt.Sprintf("device (%s, %s)", l.Path, l.Backend), ""
}

// refdevAccount is the account's line on the float64 reference: where it
// ran and, on the device, how much of it the host audited.
func refdevAccount(desc string) string {
	if desc == "" {
		return ""
	}
	s := &harness.RefStats
	if s.Calls.Load() == 0 {
		return "float64 reference: " + desc + "\n"
	}
	line := fmt.Sprintf("float64 reference: %s: %d passes, %d outputs, %d audited on the host bit for bit, %d mismatches",
		desc, s.Calls.Load(), s.Outputs.Load(), s.Audited.Load(), s.Mismatches.Load())
	if l := suite.refdev; l != nil {
		up, upT, passT, waitT := l.Stats()
		line += fmt.Sprintf("; %d weight uploads %.1f s, passes %.1f s, callers waited %.1f s", up, upT.Seconds(), passT.Seconds(), waitT.Seconds())
	}
	return line + "\n"
}

// TestDeviceReferenceMatchesHost: the reference library's pass equals the
// host's (reference.LinearAbs) bit for bit in every output, not just the
// audited sample: one and several rows, with and without bias and Σ|x·W|,
// K not a multiple of the kernel's 64-wide tile, N not a multiple of its
// 64 outputs, weights of every storage dtype's precision, and weights
// written in several upload chunks (4096×4096 and 1000×14336: four chunks
// of 4 M values, the second's boundaries inside a row).
func TestDeviceReferenceMatchesHost(t *testing.T) {
	openLib(t)
	l := suite.refdev
	if l == nil {
		t.Skipf("the float64 reference runs on the %s", suite.ref)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, sz := range []struct{ m, n, k int }{{1, 4096, 4096}, {1, 1000, 14336}, {5, 130, 100}, {64, 1024, 4096}, {3, 7, 1}} {
		x := make([]float64, sz.m*sz.k)
		for i := range x {
			x[i] = r.NormFloat64() * math.Exp2(float64(r.IntN(20)-10))
		}
		w := make([]float64, sz.n*sz.k)
		for i := range w {
			w[i] = float64(float32(r.NormFloat64() / 64))
		}
		bias := make([]float64, sz.n)
		for i := range bias {
			bias[i] = r.NormFloat64()
		}
		for _, b := range [][]float64{nil, bias} {
			y, a, err := l.Linear(x, sz.m, w, b, sz.n, true)
			if err != nil {
				t.Fatalf("m=%d n=%d k=%d: %v", sz.m, sz.n, sz.k, err)
			}
			for row := 0; row < sz.m; row++ {
				wy, wa := reference.LinearAbs(x[row*sz.k:(row+1)*sz.k], w, b, sz.n)
				for j := range wy {
					if got, gotA := y[row*sz.n+j], a[row*sz.n+j]; got != wy[j] || gotA != wa[j] {
						t.Fatalf("m=%d n=%d k=%d bias=%v: row %d output %d: device %v / %v, host %v / %v",
							sz.m, sz.n, sz.k, b != nil, row, j, got, gotA, wy[j], wa[j])
					}
				}
			}
		}
	}
	// Passes at once on every lane, over weights uploaded at once: each
	// output still the host's.
	var wg sync.WaitGroup
	errs := make(chan error, 4*refdev.Lanes)
	for g := range 4 * refdev.Lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 9))
			n, k := 256+r.IntN(700), 1+r.IntN(3000)
			x, w := make([]float64, k), make([]float64, n*k)
			for i := range x {
				x[i] = r.NormFloat64()
			}
			for i := range w {
				w[i] = float64(float32(r.NormFloat64()))
			}
			y, a, err := l.Linear(x, 1, w, nil, n, true)
			if err != nil {
				errs <- err
				return
			}
			wy, wa := reference.LinearAbs(x, w, nil, n)
			for j := range wy {
				if y[j] != wy[j] || a[j] != wa[j] {
					errs <- fmt.Errorf("concurrent pass %d (n=%d k=%d): output %d: device %v / %v, host %v / %v", g, n, k, j, y[j], a[j], wy[j], wa[j])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, _, err := l.Linear(make([]float64, 10), 3, make([]float64, 10), nil, 1, false); err == nil {
		t.Error("refdev.Linear accepted 10 x values for 3 rows")
	}
}
