// Package dtype describes the storage types the kernels read and write
// (f32, f16, bf16): their ABI codes, unit roundoff, and exact conversions
// between float64 values and the bytes a GPU stores.
//
// Conversions to f16 and bf16 round to nearest, ties to even, as a GPU store
// (__float2half_rn, __float2bfloat16_rn) does; the harness relies on that to
// make every generated input exactly representable in its storage type.
package dtype

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/gretacore/parity/internal/parallel"
)

// Dtype is a storage type. Its values are the ABI's gp_dtype codes.
type Dtype int32

const (
	F32  Dtype = 0 // GP_DTYPE_F32
	F16  Dtype = 1 // GP_DTYPE_F16
	BF16 Dtype = 2 // GP_DTYPE_BF16
)

// All lists the storage types in ABI order.
var All = []Dtype{F32, F16, BF16}

// String returns "f32", "f16" or "bf16".
func (d Dtype) String() string {
	switch d {
	case F32:
		return "f32"
	case F16:
		return "f16"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// Parse returns the Dtype named s ("f32", "f16", "bf16").
func Parse(s string) (Dtype, error) {
	for _, d := range All {
		if d.String() == s {
			return d, nil
		}
	}
	return -1, fmt.Errorf("unknown dtype %q (valid: f32, f16, bf16)", s)
}

// Size is the number of bytes of one element.
func (d Dtype) Size() int {
	if d == F32 {
		return 4
	}
	return 2
}

// UnitRoundoff is u = 2^-p, half the distance from 1 to the next value, for
// round-to-nearest storage: 2^-24 (f32), 2^-11 (f16), 2^-8 (bf16). Rounding
// a value v to the type changes it by at most u·|v| (normal range).
func (d Dtype) UnitRoundoff() float64 {
	switch d {
	case F16:
		return 0x1p-11
	case BF16:
		return 0x1p-8
	}
	return 0x1p-24
}

// MinNormal is the smallest positive normal value; below it rounding error
// is absolute (at most half the subnormal spacing) rather than relative.
func (d Dtype) MinNormal() float64 {
	switch d {
	case F16:
		return 0x1p-14
	case BF16, F32:
		return 0x1p-126
	}
	return 0x1p-126
}

// MaxFinite is the largest finite value of the type.
func (d Dtype) MaxFinite() float64 {
	switch d {
	case F16:
		return 65504
	case BF16:
		return float64(math.Float32frombits(0x7f7f0000))
	}
	return math.MaxFloat32
}

// Round returns v rounded to the type (through f32, as the kernels do:
// they hold f32 and store with round-to-nearest-even).
//
// Every generated weight and activation goes through Round (122 of a GPU
// table run's 3012 CPU-seconds went here while f16 went through a
// general-purpose float16 package per element), so the f16 path rounds the
// f32 bits in place instead of encoding and decoding; the tests prove it
// bit-identical to that package's conversions.
func (d Dtype) Round(v float64) float64 {
	f := float32(v)
	if d != F16 && d != BF16 { // f32 (and an unknown code, as before)
		return float64(f)
	}
	return float64(d.round16(f))
}

// encodeCost is an element's encoding in parallel.For's work units
// (multiply-adds): a nanosecond or two.
const encodeCost = 2

// Encode returns the little-endian storage bytes of vals.
func (d Dtype) Encode(vals []float64) []byte {
	b := make([]byte, len(vals)*d.Size())
	// A real model's weights are encoded once per upload, 58-525 M values
	// a matrix: each element is its own, so the cores share them.
	parallel.For(len(vals), encodeCost, func(lo, hi int) {
		src := vals[lo:hi]
		switch d {
		case F16:
			dst := b[2*lo : 2*hi]
			for i, v := range src {
				binary.LittleEndian.PutUint16(dst[2*i:], f32ToF16(math.Float32bits(float32(v))))
			}
		case BF16:
			dst := b[2*lo : 2*hi]
			for i, v := range src {
				binary.LittleEndian.PutUint16(dst[2*i:], f32ToBF16(float32(v)))
			}
		default:
			dst := b[4*lo : 4*hi]
			for i, v := range src {
				binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(float32(v)))
			}
		}
	})
	return b
}

// Decode converts storage bytes to float64 values (exactly). Outputs of a
// real model's projections are millions of values: the cores share them,
// as for Encode.
func (d Dtype) Decode(b []byte) []float64 {
	n := len(b) / d.Size()
	out := make([]float64, n)
	parallel.For(n, encodeCost, func(lo, hi int) {
		dst := out[lo:hi]
		switch d {
		case F16:
			src := b[2*lo : 2*hi]
			for i := range dst {
				dst[i] = float64(f16ToF32(binary.LittleEndian.Uint16(src[2*i:])))
			}
		case BF16:
			src := b[2*lo : 2*hi]
			for i := range dst {
				dst[i] = float64(bf16ToF32(binary.LittleEndian.Uint16(src[2*i:])))
			}
		default:
			src := b[4*lo : 4*hi]
			for i := range dst {
				dst[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:])))
			}
		}
	})
	return out
}

// Bits returns the raw storage bits of element i of b (for bitwise compares
// and poison detection).
func (d Dtype) Bits(b []byte, i int) uint32 {
	if d == F32 {
		return binary.LittleEndian.Uint32(b[4*i:])
	}
	return uint32(binary.LittleEndian.Uint16(b[2*i:]))
}

// Poison is the NaN bit pattern written into every output before a kernel
// runs. It is a quiet NaN with a distinctive payload, so an element that
// still holds it afterwards was never written (as opposed to a NaN the
// kernel computed).
func (d Dtype) Poison() uint32 {
	switch d {
	case F16:
		return 0x7e5a
	case BF16:
		return 0x7fa5
	}
	return 0x7fa5a5a5
}

// PoisonBytes returns n elements of the poison pattern: one element
// written, then doubled by copy (every output buffer of every case is
// poisoned, a per-element store loop cost seconds of a table run).
func (d Dtype) PoisonBytes(n int) []byte {
	b := make([]byte, n*d.Size())
	if n == 0 {
		return b
	}
	if d == F32 {
		binary.LittleEndian.PutUint32(b, d.Poison())
	} else {
		binary.LittleEndian.PutUint16(b, uint16(d.Poison()))
	}
	for k := d.Size(); k < len(b); k *= 2 {
		copy(b[k:], b[:k])
	}
	return b
}

// f32ToBF16 rounds to nearest even; NaN stays a quiet NaN.
func f32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 0x40
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

func bf16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// f32 bit patterns (sign cleared) of the f16 boundaries: f16's smallest
// normal 2^-14; 65520, half-way between f16's largest finite value 65504
// and 65536 (it and everything above round to infinity); 2^-25, half the
// smallest f16 subnormal (it and everything below round to zero); f32's
// infinity. f16's exponent bias is 15, f32's 127: a normal value's f32
// bits are its f16 bits shifted up by 13 plus (127-15)<<23.
const (
	f16MinNormalBits = 0x38800000
	f16OverflowBits  = 0x477ff000
	f16UnderflowBits = 0x33000000
	f32InfBits       = 0x7f800000
	f16Rebias        = (127 - 15) << 23
)

// round16 rounds f to d, f16 or bf16 (nearest, ties to even), and returns
// the result as f32 (kept apart so that Round and its f32 path inline). An
// f16 in the normal range (nearly every value) is rounded by dropping f32's
// 13 extra significand bits in place rather than encoding and decoding:
// f16ToF32(f32ToF16(f)) otherwise.
func (d Dtype) round16(f float32) float32 {
	if d == BF16 {
		return bf16ToF32(f32ToBF16(f))
	}
	u := math.Float32bits(f)
	if a := u & 0x7fffffff; a-f16MinNormalBits < f16OverflowBits-f16MinNormalBits {
		// Add half an f16 ulp less one (plus one more when the kept
		// part is odd: ties to even) and truncate; a carry into the
		// exponent is the correct rounding up to the next binade.
		return math.Float32frombits((u + 0xfff + (u>>13)&1) &^ 0x1fff)
	}
	return f16ToF32(f32ToF16Rare(u))
}

// f32ToF16 converts f32 bits to f16 bits, rounding to nearest, ties to
// even, as __float2half_rn: overflow to infinity, underflow to a signed
// zero, NaN to a quiet NaN that keeps the sign and the payload's top 10
// bits (0x7e00 | payload>>13, as github.com/x448/float16 gives).
func f32ToF16(u uint32) uint16 {
	if a := u & 0x7fffffff; a-f16MinNormalBits < f16OverflowBits-f16MinNormalBits {
		return uint16(u>>16)&0x8000 | uint16((a+0xfff+(a>>13)&1-f16Rebias)>>13)
	}
	return f32ToF16Rare(u)
}

// f32ToF16Rare is f32ToF16 outside the f16 normal range (kept apart: the
// normal path, nearly every value, stays short).
func f32ToF16Rare(u uint32) uint16 {
	sign := uint16(u>>16) & 0x8000
	a := u & 0x7fffffff
	switch {
	case a > f32InfBits:
		return sign | 0x7e00 | uint16(a>>13)&0x3ff
	case a >= f16OverflowBits:
		return sign | 0x7c00
	case a <= f16UnderflowBits:
		return sign
	}
	// A subnormal result, in units of 2^-24: the 24-bit significand
	// shifted right by 14 (at 2^-15) to 24 (at 2^-25), rounded to nearest
	// even; rounding up from 0x3ff gives 0x400, the smallest normal.
	shift := 126 - a>>23
	m := a&0x7fffff | 0x800000
	h := m >> shift
	rem, half := m&(1<<shift-1), uint32(1)<<(shift-1)
	if rem > half || rem == half && h&1 == 1 {
		h++
	}
	return sign | uint16(h)
}

// f16ToF32 converts f16 bits to the f32 of the same value (exactly); a NaN
// becomes the quiet NaN with the same sign and payload.
func f16ToF32(h uint16) float32 {
	if a := uint32(h & 0x7fff); a-0x0400 < 0x7c00-0x0400 { // normal
		return math.Float32frombits(uint32(h&0x8000)<<16 | (a<<13 + f16Rebias))
	}
	return f16ToF32Rare(h)
}

// f16ToF32Rare is f16ToF32 outside the normal range.
func f16ToF32Rare(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	a := uint32(h & 0x7fff)
	switch {
	case a == 0:
		return math.Float32frombits(sign)
	case a < 0x0400: // subnormal: a·2^-24, exact in f32
		return math.Float32frombits(sign | math.Float32bits(float32(a)*0x1p-24))
	case a == 0x7c00:
		return math.Float32frombits(sign | f32InfBits)
	}
	return math.Float32frombits(sign | 0x7fc00000 | (a&0x3ff)<<13)
}
