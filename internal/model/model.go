// Package model loads the layer shapes of real models (the attention
// block and the gated MLP) from fixtures/models/*.json, the one home of
// the shape table.
package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gretacore/parity/internal/gpapi"
)

// Shape is one model's decoder layer: the attention block and the MLP.
type Shape struct {
	Name       string  `json:"name"`
	Source     string  `json:"source"`
	Hidden     int     `json:"hidden"`
	NHeads     int     `json:"n_heads"`
	NKVHeads   int     `json:"n_kv_heads"`
	HeadDim    int     `json:"head_dim"`
	RopeTheta  float64 `json:"rope_theta"`
	RopeLayout string  `json:"rope_layout"` // "neox" or "interleaved"
	QKVBias    bool    `json:"qkv_bias"`
	RMSEps     float64 `json:"rms_eps"`
	// MaxPosition is the context length (config.json's
	// max_position_embeddings): RoPE positions 0..MaxPosition-1 are valid.
	// Every fixture states it; 0 (generated shapes) means no limit.
	MaxPosition int `json:"max_position"`
	// IntermediateSize is the MLP's width (config.json's
	// intermediate_size): gate_proj and up_proj are [intermediate,
	// hidden], down_proj [hidden, intermediate]. Every fixture states it;
	// 0 (generated shapes) means no MLP: the layer is the attention block.
	IntermediateSize int `json:"intermediate_size"`
	// Activation is the MLP's gated activation: "swiglu" (silu(gate)·up:
	// Llama, Mistral, Qwen2, Phi-3) or "gelu_tanh" (tanh-GELU(gate)·up:
	// Gemma's gelu_pytorch_tanh).
	Activation string `json:"activation"`
	// NormWeightOffset is added to the post-attention RMSNorm weight
	// before it scales: 0 (Llama's x·r·w) or 1 (Gemma's x·r·(1 + w),
	// HF GemmaRMSNorm computes 1 + w in f32).
	NormWeightOffset float64 `json:"norm_weight_offset"`
	// NumLayers is the model's depth (config.json's num_hidden_layers):
	// the most layers -parity.layers may chain, and what "all" means.
	NumLayers int `json:"num_hidden_layers"`
	// VocabSize is the LM head's N (config.json's vocab_size): the
	// logits' width, the largest GEMV of the model. The final norm uses
	// NormWeightOffset too (Gemma's final norm is 1 + w as well).
	VocabSize int `json:"vocab_size"`
}

// The gated activations (Shape.Activation); their order is the ABI's
// gp_act enum (GP_ACT_SWIGLU = 0, GP_ACT_GELU_TANH = 1).
const (
	ActSwiGLU   = "swiglu"
	ActGeluTanh = "gelu_tanh"
)

// ActKind returns the activation as the ABI's gp_act value.
func (s Shape) ActKind() gpapi.Act {
	if s.Activation == ActGeluTanh {
		return gpapi.ActGeluTanh
	}
	return gpapi.ActSwiGLU
}

// QDim is n_heads·head_dim, the width of q.
func (s Shape) QDim() int { return s.NHeads * s.HeadDim }

// KVDim is n_kv_heads·head_dim, the width of k, v and a cache row.
func (s Shape) KVDim() int { return s.NKVHeads * s.HeadDim }

// Layout returns the RoPE layout as the ABI enum.
func (s Shape) Layout() gpapi.RopeLayout {
	if s.RopeLayout == "interleaved" {
		return gpapi.RopeInterleaved
	}
	return gpapi.RopeNeox
}

// maxDim is the ABI's GP_MAX_DIM: the largest K of gp_linear and width.
const maxDim = 65536

// MaxVocab is the ABI's GP_MAX_LINEAR_N: the largest N of gp_linear, a
// vocabulary (Gemma's 256000 is the largest fixture).
const MaxVocab = 262144

// Validate reports the first field that makes the shape unusable.
func (s Shape) Validate() error {
	switch {
	case s.Name == "":
		return fmt.Errorf("name is empty")
	case s.Hidden <= 0:
		return fmt.Errorf("hidden=%d must be > 0", s.Hidden)
	case s.NHeads <= 0:
		return fmt.Errorf("n_heads=%d must be > 0", s.NHeads)
	case s.NKVHeads <= 0 || s.NHeads%s.NKVHeads != 0:
		return fmt.Errorf("n_kv_heads=%d must divide n_heads=%d", s.NKVHeads, s.NHeads)
	case s.HeadDim <= 0 || s.HeadDim%8 != 0 || s.HeadDim > 256:
		return fmt.Errorf("head_dim=%d must be a multiple of 8 in [8, 256]", s.HeadDim)
	case !(s.RopeTheta > 0) || math.IsInf(s.RopeTheta, 0):
		return fmt.Errorf("rope_theta=%v must be > 0 and finite", s.RopeTheta)
	case s.RopeLayout != "neox" && s.RopeLayout != "interleaved":
		return fmt.Errorf("rope_layout=%q must be \"neox\" or \"interleaved\"", s.RopeLayout)
	case !(s.RMSEps >= 0) || math.IsInf(s.RMSEps, 0):
		return fmt.Errorf("rms_eps=%v must be >= 0 and finite", s.RMSEps)
	case s.MaxPosition < 0 || s.MaxPosition > math.MaxInt32:
		return fmt.Errorf("max_position=%d must be in [0, %d] (0: no limit; positions are int32)", s.MaxPosition, math.MaxInt32)
	case s.IntermediateSize < 0 || s.IntermediateSize > maxDim:
		return fmt.Errorf("intermediate_size=%d must be in [0, %d] (0: no MLP)", s.IntermediateSize, maxDim)
	case s.IntermediateSize > 0 && s.Activation != ActSwiGLU && s.Activation != ActGeluTanh:
		return fmt.Errorf("activation=%q must be %q or %q", s.Activation, ActSwiGLU, ActGeluTanh)
	case s.NormWeightOffset != 0 && s.NormWeightOffset != 1:
		return fmt.Errorf("norm_weight_offset=%v must be 0 (x·r·w) or 1 (Gemma's x·r·(1 + w))", s.NormWeightOffset)
	case s.NumLayers < 0:
		return fmt.Errorf("num_hidden_layers=%d must be >= 0 (0: not stated)", s.NumLayers)
	case s.VocabSize < 0 || s.VocabSize > MaxVocab:
		return fmt.Errorf("vocab_size=%d must be in [0, %d] (0: no head)", s.VocabSize, MaxVocab)
	}
	return nil
}

// HasHead reports whether the shape has an LM head (vocab_size > 0): the
// head stages need it and the MLP (they read mlp_res).
func (s Shape) HasHead() bool { return s.VocabSize > 0 && s.HasMLP() }

// HasMLP reports whether the shape has an MLP block (intermediate_size > 0).
func (s Shape) HasMLP() bool { return s.IntermediateSize > 0 }

// Parse decodes one shape, rejecting unknown fields, and validates it. A
// fixture must state its context length (max_position > 0): the table's
// start positions run up to it; and its MLP (intermediate_size > 0).
func Parse(data []byte) (Shape, error) {
	var s Shape
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Shape{}, err
	}
	if err := s.Validate(); err != nil {
		return Shape{}, err
	}
	if s.MaxPosition == 0 {
		return Shape{}, fmt.Errorf("max_position is missing or 0: a fixture must state its context length")
	}
	if !s.HasMLP() {
		return Shape{}, fmt.Errorf("intermediate_size is missing or 0: a fixture must state its MLP (intermediate_size, activation, norm_weight_offset)")
	}
	if s.NumLayers == 0 || s.VocabSize == 0 {
		return Shape{}, fmt.Errorf("num_hidden_layers or vocab_size is missing or 0: a fixture must state its depth and its vocabulary (the layers mode and the head)")
	}
	return s, nil
}

// LoadDir loads every *.json in dir, sorted by name. An error names the
// file.
func LoadDir(dir string) ([]Shape, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no model fixtures (*.json) in %s", dir)
	}
	var out []Shape
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		s, err := Parse(data)
		if err != nil {
			return nil, fmt.Errorf("model fixture %s: %w", f, err)
		}
		if want := strings.TrimSuffix(filepath.Base(f), ".json"); s.Name != want {
			return nil, fmt.Errorf("model fixture %s: name %q does not match the file name", f, s.Name)
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
