package reference

import (
	"math"
	"math/rand/v2"
	"testing"
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
		for i := range want {
			if d := math.Abs(out[i] - want[i]); d > 1e-12*(1+math.Abs(want[i])) {
				t.Fatalf("trial %d out[%d] = %v, unfused %v", trial, i, out[i], want[i])
			}
		}
		for h := 0; h < nHeads; h++ {
			var sum float64
			for j := 0; j <= qPos; j++ {
				sum += math.Exp(s[h*rows+j])
			}
			if d := math.Abs(lse[h] - math.Log(sum)); d > 1e-12*(1+math.Abs(lse[h])) {
				t.Fatalf("trial %d lse[%d] = %v, ln Σ exp = %v", trial, h, lse[h], math.Log(sum))
			}
		}
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
	want := []float64{1, 2, 3, 4}
	for i := range want {
		if math.Abs(out[i]-want[i]) > 1e-12 {
			t.Fatalf("out = %v, want %v", out, want)
		}
	}
	if math.Abs(lse[0]-1000) > 1e-12 || math.Abs(lse[1]+500) > 1e-12 {
		t.Fatalf("lse = %v, want [1000 -500]", lse)
	}
	// GQA: 4 heads on 2 KV heads, head h reads KV head h/2.
	q = []float64{1, 1, 1, 1}
	k = [][]float64{{1, 1}}
	v = [][]float64{{10, 20}}
	out, _ = Attention(q, k, v, 4, 2, 1, 0, 1)
	if out[0] != 10 || out[1] != 10 || out[2] != 20 || out[3] != 20 {
		t.Fatalf("GQA out = %v, want [10 10 20 20]", out)
	}
	out, lse = Attention(q, k, v, 4, 2, 1, -1, 1)
	if out[0] != 0 || !math.IsInf(lse[0], -1) {
		t.Fatalf("no visible key: out %v lse %v", out, lse)
	}
}

func randVec(r *rand.Rand, n int, sigma float64) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = sigma * r.NormFloat64()
	}
	return x
}
