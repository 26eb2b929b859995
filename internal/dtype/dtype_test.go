package dtype

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestRoundTripAllBits checks, for every 16-bit pattern, that decoding then
// encoding returns the same bits (NaNs excepted: any NaN may come back).
func TestRoundTripAllBits(t *testing.T) {
	for _, d := range []Dtype{F16, BF16} {
		var bad []string // every pattern that fails, not just the first
		for bits := 0; bits < 1<<16; bits++ {
			b := []byte{byte(bits), byte(bits >> 8)}
			v := d.Decode(b)[0]
			if math.IsNaN(v) {
				continue
			}
			if got := d.Encode([]float64{v}); got[0] != b[0] || got[1] != b[1] {
				bad = append(bad, fmt.Sprintf("bits %#04x -> %v -> %#02x%02x", bits, v, got[1], got[0]))
			}
			if r := d.Round(v); r != v {
				bad = append(bad, fmt.Sprintf("Round(%v) = %v, want it unchanged (representable)", v, r))
			}
		}
		assert.Empty(t, bad, "%v", d)
	}
}

// TestRoundNearestEven checks ties and the error bound u·|v|.
func TestRoundNearestEven(t *testing.T) {
	cases := []struct {
		d    Dtype
		in   float64
		want float64
	}{
		{F16, 1 + 0x1p-11, 1},               // tie -> even (1)
		{F16, 1 + 3*0x1p-11, 1 + 2*0x1p-10}, // tie -> even (upper)
		{F16, 65520, math.Inf(1)},           // rounds past max
		{F16, 65519, 65504},
		{BF16, 1 + 0x1p-8, 1},
		{BF16, 1 + 3*0x1p-8, 1 + 0x1p-6},
		{F32, 1 + 0x1p-24, 1},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, c.d.Round(c.in), "%v.Round(%v)", c.d, c.in)
	}
	for _, d := range All {
		for _, v := range []float64{0.1, 3.3, -1234.567, 1e-3} {
			assert.LessOrEqual(t, math.Abs(d.Round(v)-v), d.UnitRoundoff()*math.Abs(v), "%v.Round(%v): error within u|v|", d, v)
		}
	}
}

func TestPoisonIsNaN(t *testing.T) {
	for _, d := range All {
		b := d.PoisonBytes(3)
		for i, v := range d.Decode(b) {
			assert.True(t, math.IsNaN(v), "%v poison element %d decodes to %v, want NaN", d, i, v)
		}
		assert.Equal(t, d.Poison(), d.Bits(b, 2), "%v: Bits of the poison", d)
	}
}
