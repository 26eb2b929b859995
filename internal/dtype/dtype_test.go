package dtype

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"testing"

	"github.com/gretacore/parity/internal/parallel"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/x448/float16"
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

// The conversions as they were before the direct bit manipulation (through
// github.com/x448/float16 per element, one element per loop step): the
// oracle the fast ones must match bit for bit.

func oracleRound(d Dtype, v float64) float64 {
	f := float32(v)
	switch d {
	case F16:
		return float64(float16.Fromfloat32(f).Float32())
	case BF16:
		return float64(bf16ToF32(f32ToBF16(f)))
	}
	return float64(f)
}

func oracleEncode(d Dtype, vals []float64) []byte {
	b := make([]byte, len(vals)*d.Size())
	for i, v := range vals {
		f := float32(v)
		switch d {
		case F16:
			binary.LittleEndian.PutUint16(b[2*i:], uint16(float16.Fromfloat32(f)))
		case BF16:
			binary.LittleEndian.PutUint16(b[2*i:], f32ToBF16(f))
		default:
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
		}
	}
	return b
}

func oracleDecode(d Dtype, b []byte) []float64 {
	out := make([]float64, len(b)/d.Size())
	for i := range out {
		switch d {
		case F16:
			out[i] = float64(float16.Frombits(binary.LittleEndian.Uint16(b[2*i:])).Float32())
		case BF16:
			out[i] = float64(bf16ToF32(binary.LittleEndian.Uint16(b[2*i:])))
		default:
			out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
	}
	return out
}

func oraclePoisonBytes(d Dtype, n int) []byte {
	b := make([]byte, n*d.Size())
	for i := 0; i < n; i++ {
		if d == F32 {
			binary.LittleEndian.PutUint32(b[4*i:], d.Poison())
		} else {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(d.Poison()))
		}
	}
	return b
}

// diffBits lists (up to 10 of) the values whose Round or Encode differs
// from the oracle's in any bit (NaN payloads and zero signs included), and
// checks Encode of the whole slice, large enough to run in parallel.
func diffBits(t *testing.T, d Dtype, vals []float64) {
	t.Helper()
	var bad []string
	for _, v := range vals {
		if got, want := d.Round(v), oracleRound(d, v); math.Float64bits(got) != math.Float64bits(want) {
			bad = append(bad, fmt.Sprintf("Round(%v = %#016x) = %#016x, want %#016x", v, math.Float64bits(v), math.Float64bits(got), math.Float64bits(want)))
			if len(bad) == 10 {
				break
			}
		}
	}
	assert.Empty(t, bad, "%v", d)
	got, want := d.Encode(vals), oracleEncode(d, vals)
	if !bytes.Equal(got, want) {
		for i := 0; i < len(vals); i++ {
			if d.Bits(got, i) != d.Bits(want, i) {
				t.Errorf("%v.Encode(%v = %#016x) = %#x, want %#x", d, vals[i], math.Float64bits(vals[i]), d.Bits(got, i), d.Bits(want, i))
				break
			}
		}
	}
}

// TestDecodeMatchesOracle decodes every f16 and bf16 bit pattern (all
// 65536, NaN payloads included) and random f32 bytes, bit for bit as the
// oracle does, through Decode's parallel path (the all-patterns buffer is
// large enough) and through the one-element path.
func TestDecodeMatchesOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	f32 := make([]byte, 4<<20)
	for i := range f32 {
		f32[i] = byte(r.Uint32())
	}
	all16 := make([]byte, 2<<16)
	for h := range 1 << 16 {
		binary.LittleEndian.PutUint16(all16[2*h:], uint16(h))
	}
	for _, c := range []struct {
		d Dtype
		b []byte
	}{{F16, all16}, {BF16, all16}, {F32, f32}} {
		got, want := c.d.Decode(c.b), oracleDecode(c.d, c.b)
		require.Len(t, got, len(want))
		var bad []string
		for i := range got {
			one := c.d.Decode(c.b[i*c.d.Size() : (i+1)*c.d.Size()])[0]
			if math.Float64bits(got[i]) != math.Float64bits(want[i]) || math.Float64bits(one) != math.Float64bits(want[i]) {
				bad = append(bad, fmt.Sprintf("bits %#x: %#016x (alone %#016x), want %#016x", c.d.Bits(c.b, i), math.Float64bits(got[i]), math.Float64bits(one), math.Float64bits(want[i])))
				if len(bad) == 10 {
					break
				}
			}
		}
		assert.Empty(t, bad, "%v.Decode", c.d)
	}
}

// TestRoundNearF16Boundaries checks Round and Encode against the oracle on
// every f32 bit pattern within 64 ulps of each f16 value and of each
// midpoint between neighbouring f16 values (the ties, where ties-to-even
// decides), both signs, subnormals and the overflow boundary 65520
// included: where a wrong shift, mask or carry would show first.
func TestRoundNearF16Boundaries(t *testing.T) {
	var vals []float64
	near := func(f float64) {
		u := math.Float32bits(float32(f))
		for k := uint32(0); k <= 128; k++ {
			b := u - 64 + k
			if u < 64 && k < 64 {
				continue // below zero: wraps to NaN patterns, covered elsewhere
			}
			vals = append(vals, float64(math.Float32frombits(b)), -float64(math.Float32frombits(b)))
		}
	}
	for h := uint16(0); h < 0x7c00; h++ {
		v := float64(float16.Frombits(h).Float32())
		next := 65536.0 // the value past 65504 if the exponent went on
		if h+1 < 0x7c00 {
			next = float64(float16.Frombits(h + 1).Float32())
		}
		near(v)
		near((v + next) / 2) // exact: one bit more than f16 has
	}
	near(65536)
	for _, d := range All {
		diffBits(t, d, vals)
	}
}

// TestRoundRandomMatchesOracle checks Round and Encode against the oracle
// on a few million float64: uniform random bit patterns (every exponent,
// NaN payloads, infinities, float64 subnormals), values of every f16/f32
// magnitude, and the specials one by one.
func TestRoundRandomMatchesOracle(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	vals := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.NaN(), -math.NaN(),
		math.Float64frombits(0x7ff0000000000001), math.Float64frombits(0xfff0000000000001), // signalling NaNs
		math.Float64frombits(0x7ff8000000001234), math.Float64frombits(0x7ffdeadbeef00000), math.Float64frombits(0xfff4000000000000),
		math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, math.MaxFloat64, -math.MaxFloat64,
		math.MaxFloat32, 65504, 65519.99, 65520, 65520.01, 0x1p-24, 0x1p-25, 0x1.0000000000001p-25, 0x1p-14, 0x1p-149, 0x1p-150}
	for range 2_000_000 {
		vals = append(vals, math.Float64frombits(r.Uint64()))
	}
	for range 2_000_000 {
		vals = append(vals, r.NormFloat64()*math.Ldexp(1, r.IntN(190)-160))
	}
	for _, d := range All {
		diffBits(t, d, vals)
	}
}

// TestF32ToF16Exhaustive converts every one of the 2^32 f32 bit patterns to
// f16 and compares with the oracle. About 40 s on two cores: opt in
// with PARITY_EXHAUSTIVE=1 (TestRoundNearF16Boundaries covers every
// rounding boundary in the ordinary run).
func TestF32ToF16Exhaustive(t *testing.T) {
	if os.Getenv("PARITY_EXHAUSTIVE") == "" {
		t.Skip("all 2^32 f32 patterns take about 40 s; set PARITY_EXHAUSTIVE=1 to run")
	}
	var bad atomic.Int64
	parallel.For(1<<16, 1<<20, func(lo, hi int) {
		for hi16 := lo; hi16 < hi; hi16++ {
			for lo16 := range 1 << 16 {
				u := uint32(hi16)<<16 | uint32(lo16)
				f := math.Float32frombits(u)
				w := float16.Fromfloat32(f)
				if f32ToF16(u) != uint16(w) || math.Float32bits(F16.round16(f)) != math.Float32bits(w.Float32()) {
					if bad.Add(1) <= 10 {
						t.Errorf("f32 %#08x: f16 %#04x, round %#08x; want %#04x, %#08x", u, f32ToF16(u), math.Float32bits(F16.round16(f)), uint16(w), math.Float32bits(w.Float32()))
					}
				}
			}
		}
	})
}

// TestPoisonBytesMatchesOracle: the doubling copy writes the pattern into
// every element, for every length up to a few doublings and a large one.
func TestPoisonBytesMatchesOracle(t *testing.T) {
	for _, d := range All {
		for _, n := range append([]int{0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 33, 1000}, 1<<20+3) {
			assert.True(t, bytes.Equal(d.PoisonBytes(n), oraclePoisonBytes(d, n)), "%v.PoisonBytes(%d)", d, n)
		}
	}
}

// benchValues are a million values as the harness makes them: normal
// draws scaled as a projection weight.
func benchValues() []float64 {
	r := rand.New(rand.NewPCG(5, 6))
	v := make([]float64, 1<<20)
	for i := range v {
		v[i] = r.NormFloat64() / 64
	}
	return v
}

// perValue reports the time per value of a benchmark over n values a loop.
func perValue(b *testing.B, n int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/value")
}

// BenchmarkRound compares Round with the oracle's (one core, per value).
func BenchmarkRound(b *testing.B) {
	vals := benchValues()
	out := make([]float64, len(vals))
	for _, d := range All {
		b.Run(fmt.Sprintf("%v/old", d), func(b *testing.B) {
			for b.Loop() {
				for i, v := range vals {
					out[i] = oracleRound(d, v)
				}
			}
			perValue(b, len(vals))
		})
		b.Run(fmt.Sprintf("%v/new", d), func(b *testing.B) {
			for b.Loop() {
				for i, v := range vals {
					out[i] = d.Round(v)
				}
			}
			perValue(b, len(vals))
		})
	}
}

// BenchmarkEncode compares Encode (parallel over GOMAXPROCS) with the
// oracle's serial loop.
func BenchmarkEncode(b *testing.B) {
	vals := benchValues()
	for _, d := range All {
		for _, impl := range []struct {
			name   string
			encode func(Dtype, []float64) []byte
		}{{"old", oracleEncode}, {"new", Dtype.Encode}} {
			b.Run(fmt.Sprintf("%v/%s", d, impl.name), func(b *testing.B) {
				for b.Loop() {
					impl.encode(d, vals)
				}
				perValue(b, len(vals))
			})
		}
	}
}

// BenchmarkDecode compares Decode (parallel) with the oracle's serial loop.
func BenchmarkDecode(b *testing.B) {
	vals := benchValues()
	for _, d := range All {
		enc := d.Encode(vals)
		for _, impl := range []struct {
			name   string
			decode func(Dtype, []byte) []float64
		}{{"old", oracleDecode}, {"new", Dtype.Decode}} {
			b.Run(fmt.Sprintf("%v/%s", d, impl.name), func(b *testing.B) {
				for b.Loop() {
					impl.decode(d, enc)
				}
				perValue(b, len(vals))
			})
		}
	}
}

// BenchmarkPoisonBytes compares the doubling copy with the store loop.
func BenchmarkPoisonBytes(b *testing.B) {
	const n = 1 << 20
	for _, impl := range []struct {
		name   string
		poison func(Dtype, int) []byte
	}{{"old", oraclePoisonBytes}, {"new", Dtype.PoisonBytes}} {
		b.Run("f16/"+impl.name, func(b *testing.B) {
			for b.Loop() {
				impl.poison(F16, n)
			}
			perValue(b, n)
		})
	}
}
