package reference

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAttentionMatchesUnfused checks the fused reference against
// PV(Softmax(Scores)) on random GQA/MQA/MHA shapes, with cache rows past
// qPos present (they must be masked), including large scores, and its LSE
// against the direct ln Σ exp(s_j).
func TestAttentionMatchesUnfused(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for trial := 0; trial < 200; trial++ {
		nKV := 1 + r.IntN(3)
		nHeads := nKV * (1 + r.IntN(3))
		headDim := 2 * (1 + r.IntN(16))
		rows := 1 + r.IntN(40)
		qPos := r.IntN(rows)
		sigma := 1.0
		if trial%3 == 0 {
			sigma = 4 // scores of tens
		}
		q := randVec(r, nHeads*headDim, sigma)
		kRows := make([][]float64, rows)
		vRows := make([][]float64, rows)
		for j := range kRows {
			kRows[j] = randVec(r, nKV*headDim, sigma)
			vRows[j] = randVec(r, nKV*headDim, 1)
		}
		scale := 1 / math.Sqrt(float64(headDim))
		out, lse := Attention(q, kRows, vRows, nHeads, nKV, headDim, qPos, scale)
		s := Scores(q, kRows, nHeads, nKV, headDim, qPos, scale)
		want := PV(Softmax(s, nHeads, rows), vRows, nHeads, nKV, headDim)
		require.Empty(t, cmp.Diff(want, out, close12), "trial %d: out (-unfused +fused)", trial)
		wantLSE := make([]float64, nHeads)
		for h := range wantLSE {
			var sum float64
			for j := 0; j <= qPos; j++ {
				sum += math.Exp(s[h*rows+j])
			}
			wantLSE[h] = math.Log(sum)
		}
		require.Empty(t, cmp.Diff(wantLSE, lse, close12), "trial %d: lse (-ln Σ exp +fused)", trial)
	}
}

// TestAttentionStableAndMasked: scores of ±1000 do not overflow (the max is
// subtracted), rows past qPos do not change the result however large, and
// the GQA mapping sends head h to KV head h/(nHeads/nKVHeads).
func TestAttentionStableAndMasked(t *testing.T) {
	q := []float64{1000, 0, -1000, 0} // 2 heads, dim 2, 1 KV head
	k := [][]float64{{1, 0}, {0.5, 0}, {1e6, 1e6}}
	v := [][]float64{{1, 2}, {3, 4}, {1e9, 1e9}}
	out, lse := Attention(q, k, v, 2, 1, 2, 1, 1)
	// head 0: s = (1000, 500): p ≈ (1, e^-500); head 1: s = (-1000, -500).
	abs12 := cmpopts.EquateApprox(0, 1e-12)
	assert.Empty(t, cmp.Diff([]float64{1, 2, 3, 4}, out, abs12), "out (-want +got)")
	assert.Empty(t, cmp.Diff([]float64{1000, -500}, lse, abs12), "lse (-want +got)")
	// GQA: 4 heads on 2 KV heads, head h reads KV head h/2.
	q = []float64{1, 1, 1, 1}
	k = [][]float64{{1, 1}}
	v = [][]float64{{10, 20}}
	out, _ = Attention(q, k, v, 4, 2, 1, 0, 1)
	assert.Empty(t, cmp.Diff([]float64{10, 10, 20, 20}, out), "GQA out (-want +got)")
	out, lse = Attention(q, k, v, 4, 2, 1, -1, 1)
	assert.Zero(t, out[0], "no visible key: out")
	assert.True(t, math.IsInf(lse[0], -1), "no visible key: lse[0] = %v, want -Inf", lse[0])
}

// close12 compares to within 1e-12, relative or absolute, like the
// float64 round-off of the two formulations.
var close12 = cmpopts.EquateApprox(1e-12, 1e-12)

func randVec(r *rand.Rand, n int, sigma float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = sigma * r.NormFloat64()
	}
	return x
}
