package dtype

import (
	"math"
	"testing"
)

// TestRoundTripAllBits checks, for every 16-bit pattern, that decoding then
// encoding returns the same bits (NaNs excepted: any NaN may come back).
func TestRoundTripAllBits(t *testing.T) {
	for _, d := range []Dtype{F16, BF16} {
		for bits := 0; bits < 1<<16; bits++ {
			b := []byte{byte(bits), byte(bits >> 8)}
			v := d.Decode(b)[0]
			if math.IsNaN(v) {
				continue
			}
			got := d.Encode([]float64{v})
			if got[0] != b[0] || got[1] != b[1] {
				t.Fatalf("%v: bits %#04x -> %v -> %#02x%02x", d, bits, v, got[1], got[0])
			}
			if d.Round(v) != v {
				t.Fatalf("%v: Round(%v) = %v, want it unchanged (representable)", d, v, d.Round(v))
			}
		}
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
		if got := c.d.Round(c.in); got != c.want {
			t.Errorf("%v.Round(%v) = %v, want %v", c.d, c.in, got, c.want)
		}
	}
	for _, d := range All {
		for _, v := range []float64{0.1, 3.3, -1234.567, 1e-3} {
			if err := math.Abs(d.Round(v) - v); err > d.UnitRoundoff()*math.Abs(v) {
				t.Errorf("%v.Round(%v) error %v > u|v|", d, v, err)
			}
		}
	}
}

func TestPoisonIsNaN(t *testing.T) {
	for _, d := range All {
		b := d.PoisonBytes(3)
		for _, v := range d.Decode(b) {
			if !math.IsNaN(v) {
				t.Errorf("%v poison decodes to %v, want NaN", d, v)
			}
		}
		if d.Bits(b, 2) != d.Poison() {
			t.Errorf("%v: Bits = %#x, want %#x", d, d.Bits(b, 2), d.Poison())
		}
	}
}
