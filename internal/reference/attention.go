package reference

import "math"

// Attention is fused causal attention of one query row, in float64: for
// every head h (KV head g = KVHead(h)) and every visible key j ≤ qPos
// (j < len(kRows); later rows are masked, as the causal mask does),
//
//	s_j     = scale·q_h·k_{j,g}
//	m       = max_j s_j
//	lse_h   = m + ln Σ_j exp(s_j − m)           (= ln Σ_j exp(s_j))
//	out_h,c = Σ_j exp(s_j − lse_h)·v_{j,g,c}    (= Σ_j p_j·v_{j,g,c})
//
// q is [nHeads·headDim]; kRows[j] and vRows[j] are cache row j
// ([nKVHeads·headDim]); out is [nHeads·headDim], lse [nHeads] (natural
// log). The max is subtracted before exp so that no term overflows and the
// largest is exactly 1; the log-sum-exp is then m plus the log of a sum in
// [1, n], which is what a fused kernel (FlashAttention, split-KV flash
// decoding) returns alongside its output so that partial results over
// different key ranges can be merged. It equals
// PV(Softmax(Scores(...))) up to float64 rounding; being one function, the
// fused stage's reference does not depend on how the unfused stages split
// the work. With no visible key (qPos < 0) out is 0 and lse is -Inf.
func Attention(q []float64, kRows, vRows [][]float64, nHeads, nKVHeads, headDim, qPos int, scale float64) (out, lse []float64) {
	n := min(qPos+1, len(kRows))
	out = make([]float64, nHeads*headDim)
	lse = make([]float64, nHeads)
	s := make([]float64, max(n, 0))
	for h := 0; h < nHeads; h++ {
		g := KVHead(h, nHeads, nKVHeads)
		qh := q[h*headDim : (h+1)*headDim]
		m := math.Inf(-1)
		for j := 0; j < n; j++ {
			kh := kRows[j][g*headDim : (g+1)*headDim]
			var d float64
			for c, qv := range qh {
				d += qv * kh[c]
			}
			s[j] = scale * d
			m = math.Max(m, s[j])
		}
		if n <= 0 {
			lse[h] = math.Inf(-1)
			continue
		}
		var l float64
		oh := out[h*headDim : (h+1)*headDim]
		for j := 0; j < n; j++ {
			w := math.Exp(s[j] - m)
			l += w
			vh := vRows[j][g*headDim : (g+1)*headDim]
			for c, vv := range vh {
				oh[c] += w * vv
			}
		}
		for c := range oh {
			oh[c] /= l
		}
		lse[h] = m + math.Log(l)
	}
	return out, lse
}
