package harness

import (
	"errors"
	"math"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/reference"
	"github.com/gretacore/parity/internal/softkernels"
)

// hostAsDevice is a DeviceReference made of the host's own passes, row by
// row, with a fault to inject: what the audit must accept, and catch.
type hostAsDevice struct {
	calls, multiRow atomic.Int64
	fault           string // "", "ulp" (output 0 of each row one ulp off), "abs-ulp", "error"
}

func (h *hostAsDevice) Linear(x []float64, m int, w, bias []float64, n int, wantAbs bool) (y, a []float64, err error) {
	h.calls.Add(1)
	if m > 1 {
		h.multiRow.Add(1)
	}
	if h.fault == "error" {
		return nil, nil, errors.New("gprd_linear: status 2: hipMalloc(scratch): out of memory")
	}
	k := len(x) / m
	for r := 0; r < m; r++ {
		yr, ar := reference.LinearAbs(x[r*k:(r+1)*k], w, bias, n)
		switch h.fault {
		case "ulp":
			yr[0] = math.Nextafter(yr[0], math.Inf(1))
		case "abs-ulp":
			ar[0] = math.Nextafter(ar[0], math.Inf(1))
		}
		y = append(y, yr...)
		a = append(a, ar...)
	}
	if !wantAbs {
		a = nil
	}
	return y, a, nil
}

// TestDeviceReferenceAudited: with a device reference in use, the
// projections' float64 passes (local, chain rows, propagation) go to it; an
// honest one passes the case; one that is one ulp off in a single output of
// each row, in y or in Σ|x·W|, or that fails, fails the projection stages
// with a message that names the device reference, not the kernels. Not
// parallel: the device reference is the process's.
func TestDeviceReferenceAudited(t *testing.T) {
	saved := deviceRefMinWeights
	deviceRefMinWeights = 0 // the debug shapes' projections are small
	defer func() { deviceRefMinWeights = saved; UseDeviceReference(nil) }()
	lib := softkernels.New()
	for _, name := range []string{"tiny-gqa3", "tiny-qwen"} { // tiny-qwen: QKV bias
		testDeviceReferenceAudited(t, lib, Case{Model: softModel(t, name), S: 9, Steps: 2, Dtype: dtype.F16, Route: gpapi.RouteAuto, Seed: 5})
	}
}

func testDeviceReferenceAudited(t *testing.T, lib *gpapi.Lib, c Case) {
	for _, fault := range []string{"", "ulp", "abs-ulp", "error"} {
		dev := &hostAsDevice{fault: fault}
		UseDeviceReference(dev)
		before := RefStats.Audited.Load()
		res := runSoft(t, lib, c)
		if dev.calls.Load() == 0 || dev.multiRow.Load() == 0 {
			t.Fatalf("fault %q: %d device calls (%d multi-row): the passes did not reach the device reference", fault, dev.calls.Load(), dev.multiRow.Load())
		}
		if fault == "" {
			if !res.Pass() {
				t.Fatalf("honest device reference: the case fails\n%s", res.Summary())
			}
			if RefStats.Audited.Load() == before {
				t.Fatal("honest device reference: nothing audited")
			}
			continue
		}
		if res.Pass() {
			t.Fatalf("%s: device reference with fault %q: the case passes; the audit missed it", c.Name(), fault)
		}
		found := false
		for _, is := range res.Issues {
			if strings.Contains(is.Msg, "float64 reference on the device") && strings.Contains(is.Msg, "not of the kernels under test") {
				found = true
			}
		}
		if !found {
			t.Fatalf("fault %q: no issue names the device reference: %v", fault, res.Issues)
		}
	}
}
