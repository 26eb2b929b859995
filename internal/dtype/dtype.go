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
	"github.com/x448/float16"
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
func (d Dtype) Round(v float64) float64 {
	f := float32(v)
	switch d {
	case F16:
		return float64(float16.Fromfloat32(f).Float32())
	case BF16:
		return float64(bf16ToF32(f32ToBF16(f)))
	}
	return float64(f)
}

// encodeCost is an element's encoding in parallel.For's work units
// (multiply-adds): a few nanoseconds.
const encodeCost = 4

// Encode returns the little-endian storage bytes of vals.
func (d Dtype) Encode(vals []float64) []byte {
	b := make([]byte, len(vals)*d.Size())
	// A real model's weights are encoded once per upload, 58-525 M values
	// a matrix: each element is its own, so the cores share them.
	parallel.For(len(vals), encodeCost, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			f := float32(vals[i])
			switch d {
			case F16:
				binary.LittleEndian.PutUint16(b[2*i:], uint16(float16.Fromfloat32(f)))
			case BF16:
				binary.LittleEndian.PutUint16(b[2*i:], f32ToBF16(f))
			default:
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
			}
		}
	})
	return b
}

// Decode converts storage bytes to float64 values (exactly).
func (d Dtype) Decode(b []byte) []float64 {
	n := len(b) / d.Size()
	out := make([]float64, n)
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

// PoisonBytes returns n elements of the poison pattern.
func (d Dtype) PoisonBytes(n int) []byte {
	b := make([]byte, n*d.Size())
	p := d.Poison()
	for i := 0; i < n; i++ {
		if d == F32 {
			binary.LittleEndian.PutUint32(b[4*i:], p)
		} else {
			binary.LittleEndian.PutUint16(b[2*i:], uint16(p))
		}
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
