package harness

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/gretacore/parity/internal/reference"
	"github.com/gretacore/parity/internal/stage"
)

// DeviceReference runs the projections' float64 pass somewhere other than
// the host's cores: refdev.Lib, the reference library on the GPU
// (kernels/refdev). Linear must return reference.LinearAbs's values bit for
// bit (y, and a when wantAbs) for each of the m rows of x.
type DeviceReference interface {
	Linear(x []float64, m int, w, bias []float64, n int, wantAbs bool) (y, a []float64, err error)
}

// devRef is the device reference in use; nil runs every pass on the host.
var devRef atomic.Pointer[DeviceReference]

// UseDeviceReference sends the projections' float64 passes of every later
// Evaluate to r (nil: back to the host). On a real model's table those
// passes are most of the host's time: every compared row walks every
// projection's weights in float64, 240 M values a row on an 8B model.
func UseDeviceReference(r DeviceReference) {
	if r == nil {
		devRef.Store(nil)
		return
	}
	devRef.Store(&r)
}

// RefStats counts the device reference's work since the process started:
// calls, the outputs it computed, and those the host recomputed to audit it.
var RefStats struct {
	Calls, Outputs, Audited, Mismatches atomic.Int64
}

// deviceRefMinWeights: a pass over fewer weights stays on the host, where
// it takes well under a millisecond, less than a GPU round trip with its
// copies (the debug shapes' projections).
var deviceRefMinWeights = 1 << 20

// auditPerRow is the number of outputs of each row (auditRows rows of a
// multi-row call) the host recomputes after every device call: the first,
// the last and random ones in between. A device pass that read the wrong
// weights, a stale buffer or another row, or summed in another order, is
// wrong in nearly every output and cannot pass; the cost is auditPerRow·k
// multiply-adds against the pass's n·k.
const (
	auditPerRow = 8
	auditRows   = 4
)

// refIssues collects the device reference's failures of one Evaluate: each
// fails its stage (CheckIssue), and the host's values are used instead.
type refIssues struct {
	mu     sync.Mutex
	issues []Issue
}

func (k *ctx) refFail(st stage.Stage, format string, args ...any) {
	k.ref.mu.Lock()
	defer k.ref.mu.Unlock()
	k.ref.issues = append(k.ref.issues, Issue{st, Chained, 0, "float64 reference on the device: " + fmt.Sprintf(format, args...) +
		"; the host's values are used; a fault of the reference library or the GPU, not of the kernels under test (-parity.refdev=off runs the host's)"})
}

// linearRef is reference.LinearAbs (wantAbs) or reference.Linear of one row
// for stage st, on the device when one is in use and W is large.
func (k *ctx) linearRef(st stage.Stage, x, w, bias []float64, n int, wantAbs bool) (y, a []float64) {
	if d := devRef.Load(); d != nil && len(w) >= deviceRefMinWeights {
		if y, a, ok := k.deviceLinear(*d, st, x, 1, w, bias, n, wantAbs); ok {
			return y, a
		}
	}
	if wantAbs {
		return reference.LinearAbs(x, w, bias, n)
	}
	return reference.Linear(x, w, bias, n), nil
}

// linearRowsRef is reference.LinearRows (the chain reference's rows) for
// stage st, on the device when one is in use and W is large. The device
// adds each output in order, gonum's GEMM in its blocked order: the two
// agree to float64 rounding, far inside every bound.
func (k *ctx) linearRowsRef(st stage.Stage, x []float64, rows, kdim int, w, bias []float64, n int) []float64 {
	if d := devRef.Load(); d != nil && len(w) >= deviceRefMinWeights {
		if y, _, ok := k.deviceLinear(*d, st, x, rows, w, bias, n, false); ok {
			return y
		}
	}
	return reference.LinearRows(x, rows, kdim, w, bias, n)
}

// linearPropRef is tolerance.LinearProp's Σ_k |dx_k·W_jk| on the device
// when one is in use: the dense in-order sum over every k equals the
// sparse one over the nonzero dx_k bit for bit (each skipped term is
// |0·W_jk| = +0, and s + (+0) = s for the non-negative partial sums).
func (k *ctx) linearPropRef(st stage.Stage, dx, w []float64, n int, host func() []float64) []float64 {
	if d := devRef.Load(); d != nil && len(w) >= deviceRefMinWeights && anyNonzero(dx) {
		if _, a, ok := k.deviceLinear(*d, st, dx, 1, w, nil, n, true); ok {
			return a
		}
	}
	return host()
}

func anyNonzero(v []float64) bool {
	for _, x := range v {
		if x != 0 {
			return true
		}
	}
	return false
}

// deviceLinear runs the pass on d and audits it: sampled outputs of up to
// auditRows rows are recomputed on the host (reference.LinearAt) and must
// be equal bit for bit. ok is false, with the failure recorded against st,
// when the call fails or the audit does.
func (k *ctx) deviceLinear(d DeviceReference, st stage.Stage, x []float64, rows int, w, bias []float64, n int, wantAbs bool) (y, a []float64, ok bool) {
	y, a, err := d.Linear(x, rows, w, bias, n, wantAbs)
	RefStats.Calls.Add(1)
	if err != nil {
		k.refFail(st, "%v", err)
		return nil, nil, false
	}
	RefStats.Outputs.Add(int64(rows * n))
	kdim := len(x) / rows
	r := rand.New(rand.NewPCG(uint64(RefStats.Calls.Load()), uint64(n)))
	for _, row := range auditSample(r, rows, auditRows) {
		xr := x[row*kdim : (row+1)*kdim]
		for _, j := range auditSample(r, n, auditPerRow) {
			wy, wa := reference.LinearAt(xr, w, bias, j)
			gy := y[row*n+j]
			ga := wa
			if wantAbs {
				ga = a[row*n+j]
			}
			RefStats.Audited.Add(1)
			if !sameFloat(gy, wy) || !sameFloat(ga, wa) {
				RefStats.Mismatches.Add(1)
				k.refFail(st, "row %d output %d of %d is %v (Σ|x·W| %v), the host's in-order sum is %v (%v)", row, j, n, gy, ga, wy, wa)
				return nil, nil, false
			}
		}
	}
	return y, a, true
}

// sameFloat: equal bits, or both NaN.
func sameFloat(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || math.IsNaN(a) && math.IsNaN(b)
}

// auditSample returns up to count distinct indices of [0, n): 0, n-1 and
// random ones between.
func auditSample(r *rand.Rand, n, count int) []int {
	if n <= count {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	out := []int{0, n - 1}
	seen := map[int]bool{0: true, n - 1: true}
	for len(out) < count {
		if j := r.IntN(n); !seen[j] {
			seen[j] = true
			out = append(out, j)
		}
	}
	return out
}
