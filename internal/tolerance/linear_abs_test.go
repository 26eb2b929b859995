package tolerance

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/reference"
)

// TestLinearFromAbsMatchesLinear: the projections' one-pass reference and
// bound (reference.LinearAbs + LinearFromAbs, what the harness uses) give
// bit for bit the values of the two-pass reference.Linear + Linear, with
// and without a bias, so switching between them can change no verdict.
func TestLinearFromAbsMatchesLinear(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const k, n = 301, 67
	x, w, b := make([]float64, k), make([]float64, n*k), make([]float64, n)
	for _, v := range [][]float64{x, w, b} {
		for i := range v {
			v[i] = r.NormFloat64() * math.Exp2(float64(r.IntN(20)-10))
		}
	}
	for _, bias := range [][]float64{nil, b} {
		for _, dt := range dtype.All {
			ref := reference.Linear(x, w, bias, n)
			want := Linear(x, w, bias, ref, dt)
			y, abs := reference.LinearAbs(x, w, bias, n)
			got := LinearFromAbs(abs, y, k, dt)
			for j := 0; j < n; j++ {
				if math.Float64bits(y[j]) != math.Float64bits(ref[j]) {
					t.Fatalf("%v bias=%v: LinearAbs y[%d] = %v, Linear %v", dt, bias != nil, j, y[j], ref[j])
				}
				if math.Float64bits(got[j]) != math.Float64bits(want[j]) {
					t.Fatalf("%v bias=%v: LinearFromAbs[%d] = %v, Linear %v", dt, bias != nil, j, got[j], want[j])
				}
			}
		}
	}
}
