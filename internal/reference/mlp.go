package reference

import "math"

// The gated activations of the MLP block, numbered as the ABI's gp_act.
const (
	ActSwiGLU   = 0 // silu(gate)·up
	ActGeluTanh = 1 // tanh-GELU(gate)·up
)

// GeluC is sqrt(2/π), the tanh-GELU's inner scale; GeluA its cubic
// coefficient (0.044715): gelu_tanh(g) = g/2·(1 + tanh(GeluC·(g + GeluA·g³))).
const (
	GeluC = 0.7978845608028654
	GeluA = 0.044715
)

// ResidualAdd returns y = a + b (the residual adds attn_res and mlp_res).
func ResidualAdd(a, b []float64) []float64 {
	y := make([]float64, len(b))
	for i := range b {
		y[i] = a[i] + b[i]
	}
	return y
}

// RMSNormOffset returns x·r·(offset + w), r = 1/sqrt(mean(x²)+eps), and
// r: RMSNorm with the weight shifted by offset (Gemma's 1 + w; 0 is
// RMSNorm).
func RMSNormOffset(x, w []float64, offset, eps float64) (y []float64, r float64) {
	we := make([]float64, len(w))
	for i, v := range w {
		we[i] = offset + v
	}
	return RMSNorm(x, we, eps)
}

// Act returns the activation of kind (ActSwiGLU: silu(g) = g/(1+e^-g);
// ActGeluTanh: tanh-GELU) at g.
func Act(kind int, g float64) float64 {
	if kind == ActGeluTanh {
		return 0.5 * g * (1 + math.Tanh(GeluC*(g+GeluA*g*g*g)))
	}
	return g / (1 + math.Exp(-g))
}

// GatedAct returns y_i = act(gate_i)·up_i.
func GatedAct(kind int, gate, up []float64) []float64 {
	y := make([]float64, len(gate))
	for i, g := range gate {
		y[i] = Act(kind, g) * up[i]
	}
	return y
}
