// Package reference computes every sub-stage of the attention block in
// float64, on the exact (dtype-decoded) inputs a kernel received. It is the
// ground truth both paths are compared against, so that two paths that are
// wrong the same way are still caught.
//
// Functions work on one token row unless their doc says otherwise; layouts
// follow kernels/include/greta_parity.h.
package reference

import (
	"math"

	"github.com/gretacore/parity/internal/parallel"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
)

// RMSNorm returns x·w/sqrt(mean(x²)+eps) and the scale r = 1/sqrt(mean(x²)+eps).
func RMSNorm(x, w []float64, eps float64) (y []float64, r float64) {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r = 1 / math.Sqrt(ss/float64(len(x))+eps)
	y = make([]float64, len(x))
	for i, v := range x {
		y[i] = v * r * w[i]
	}
	return y, r
}

// LinearAbs returns Linear's y and, from the same pass over W, the
// magnitude a[n] = Σ_k |x[k]·W[n,k]| + |bias[n]| that the projection's
// error bound needs (tolerance.LinearFromAbs). Both sums run over k in
// increasing order, as Linear's and tolerance.Linear's do, so the values
// are bit-identical to theirs; one pass over the weights instead of two
// is what makes it worth having (a real MLP's W is 58 M values per row).
func LinearAbs(x, w, bias []float64, n int) (y, a []float64) {
	y, a = make([]float64, n), make([]float64, n)
	parallel.For(n, len(x), func(lo, hi int) {
		dotAbsRows(x, w, y, a, lo, hi)
		if bias != nil {
			for j := lo; j < hi; j++ {
				y[j] += bias[j]
				a[j] += math.Abs(bias[j])
			}
		}
	})
	return y, a
}

// Linear returns y[n] = Σ_k x[k]·W[n,k] + bias[n] for one row x of length
// K; W is [N, K] row-major; bias may be nil.
func Linear(x, w, bias []float64, n int) []float64 {
	y := make([]float64, n)
	parallel.For(n, len(x), func(lo, hi int) {
		dotRows(x, w, y, lo, hi)
		if bias != nil {
			for j := lo; j < hi; j++ {
				y[j] += bias[j]
			}
		}
	})
	return y
}

// LinearRows returns Y[M,N] = X[M,K]·Wᵀ (+ bias) with gonum's BLAS, for
// the multi-row reference (K and V of every prefill row).
func LinearRows(x []float64, m, k int, w, bias []float64, n int) []float64 {
	y := make([]float64, m*n)
	blas64.Gemm(blas.NoTrans, blas.Trans, 1,
		blas64.General{Rows: m, Cols: k, Stride: k, Data: x},
		blas64.General{Rows: n, Cols: k, Stride: k, Data: w},
		0, blas64.General{Rows: m, Cols: n, Stride: n, Data: y})
	if bias != nil {
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				y[i*n+j] += bias[j]
			}
		}
	}
	return y
}

// RopePairs returns, for pair index i < headDim/2, the two element offsets
// within a head that rotate together in the given layout (0 = neox
// rotate-half, 1 = interleaved GPT-J).
func RopePairs(layout, headDim, i int) (a, b int) {
	if layout == 1 {
		return 2 * i, 2*i + 1
	}
	return i, i + headDim/2
}

// RopeAngle is the exact rotation angle of pair i at position pos:
// pos·theta^(-2i/headDim).
func RopeAngle(pos, i, headDim int, theta float64) float64 {
	return float64(pos) * math.Pow(theta, -2*float64(i)/float64(headDim))
}

// Rope rotates one row of nHeads heads at position pos.
func Rope(x []float64, pos, nHeads, headDim int, theta float64, layout int) []float64 {
	y := make([]float64, len(x))
	for h := 0; h < nHeads; h++ {
		base := h * headDim
		for i := 0; i < headDim/2; i++ {
			a, b := RopePairs(layout, headDim, i)
			s, c := math.Sincos(RopeAngle(pos, i, headDim, theta))
			x0, x1 := x[base+a], x[base+b]
			y[base+a] = x0*c - x1*s
			y[base+b] = x0*s + x1*c
		}
	}
	return y
}

// KVHead maps query head h to its KV head: h / (nHeads/nKVHeads).
func KVHead(h, nHeads, nKVHeads int) int { return h / (nHeads / nKVHeads) }

// Scores returns scale·q_h·k_j for every head h and key j < len(kRows),
// laid out [nHeads, nKV]; keys j > qPos are -Inf (causal mask). kRows[j] is
// cache row j ([nKVHeads·headDim]).
func Scores(q []float64, kRows [][]float64, nHeads, nKVHeads, headDim, qPos int, scale float64) []float64 {
	nkv := len(kRows)
	s := make([]float64, nHeads*nkv)
	for h := 0; h < nHeads; h++ {
		g := KVHead(h, nHeads, nKVHeads)
		qh := q[h*headDim : (h+1)*headDim]
		for j := 0; j < nkv; j++ {
			if j > qPos {
				s[h*nkv+j] = math.Inf(-1)
				continue
			}
			kh := kRows[j][g*headDim : (g+1)*headDim]
			var d float64
			for c := range qh {
				d += qh[c] * kh[c]
			}
			s[h*nkv+j] = scale * d
		}
	}
	return s
}

// Softmax applies a max-subtracted softmax to each of rows rows of length
// n; -Inf maps to 0.
func Softmax(s []float64, rows, n int) []float64 {
	p := make([]float64, len(s))
	for r := 0; r < rows; r++ {
		row := s[r*n : (r+1)*n]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		var sum float64
		for j, v := range row {
			e := math.Exp(v - m)
			p[r*n+j] = e
			sum += e
		}
		for j := range row {
			p[r*n+j] /= sum
		}
	}
	return p
}

// PV returns out[h·headDim+c] = Σ_j p[h, j]·v_j[g·headDim+c], p laid out
// [nHeads, nKV] and vRows[j] the V cache row j.
func PV(p []float64, vRows [][]float64, nHeads, nKVHeads, headDim int) []float64 {
	nkv := len(vRows)
	out := make([]float64, nHeads*headDim)
	for h := 0; h < nHeads; h++ {
		g := KVHead(h, nHeads, nKVHeads)
		for j := 0; j < nkv; j++ {
			pj := p[h*nkv+j]
			if pj == 0 {
				continue
			}
			vh := vRows[j][g*headDim : (g+1)*headDim]
			for c := range vh {
				out[h*headDim+c] += pj * vh[c]
			}
		}
	}
	return out
}
