package model

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadFixtures(t *testing.T) {
	shapes, err := LoadDir("../../fixtures/models")
	require.NoError(t, err)
	var names []string
	context := map[string]int{}
	gqa := false // a fixture whose GQA group size differs from its KV head count
	for _, s := range shapes {
		names = append(names, s.Name)
		context[s.Name] = s.MaxPosition
		assert.Positive(t, s.MaxPosition, "%s: max_position", s.Name)
		if s.NKVHeads > 1 && s.NHeads/s.NKVHeads != s.NKVHeads {
			gqa = true
		}
	}
	// LoadDir sorts by name; the fixtures the tests and the README name.
	want := []string{"gemma-2b", "llama2-7b", "llama3-8b", "long-ctx", "mistral-7b", "phi3-mini",
		"qwen2-7b", "tiny-gqa3", "tiny-k90", "tiny-qwen"}
	assert.Empty(t, cmp.Diff(want, names), "fixtures (-want +got)")
	// The real models' context lengths (config.json max_position_embeddings).
	wantContext := map[string]int{"llama2-7b": 4096, "llama3-8b": 8192, "mistral-7b": 32768,
		"qwen2-7b": 32768, "phi3-mini": 4096, "gemma-2b": 8192, "long-ctx": 32768}
	for name := range context {
		if _, ok := wantContext[name]; !ok {
			delete(context, name)
		}
	}
	assert.Empty(t, cmp.Diff(wantContext, context), "max_position (-want +got)")
	assert.True(t, gqa, "no fixture has a GQA group size (n_heads/n_kv_heads) different from its KV head count (> 1)")
	// The real models' MLP (config.json intermediate_size, hidden_act and
	// Gemma's RMSNorm 1 + w).
	type mlp struct {
		size   int
		act    string
		offset float64
	}
	wantMLP := map[string]mlp{"llama3-8b": {14336, ActSwiGLU, 0}, "llama2-7b": {11008, ActSwiGLU, 0},
		"mistral-7b": {14336, ActSwiGLU, 0}, "qwen2-7b": {18944, ActSwiGLU, 0}, "gemma-2b": {16384, ActGeluTanh, 1},
		"phi3-mini": {8192, ActSwiGLU, 0}}
	for _, s := range shapes {
		if w, ok := wantMLP[s.Name]; ok {
			assert.Equal(t, w, mlp{s.IntermediateSize, s.Activation, s.NormWeightOffset}, "%s: MLP", s.Name)
		}
	}
	// Depth and vocabulary (config.json num_hidden_layers, vocab_size;
	// Qwen2-7B's config says 152064).
	wantHead := map[string][2]int{"llama2-7b": {32, 32000}, "llama3-8b": {32, 128256}, "mistral-7b": {32, 32000},
		"qwen2-7b": {28, 152064}, "gemma-2b": {18, 256000}, "phi3-mini": {32, 32064}}
	for _, s := range shapes {
		if w, ok := wantHead[s.Name]; ok {
			assert.Equal(t, w, [2]int{s.NumLayers, s.VocabSize}, "%s: num_hidden_layers, vocab_size", s.Name)
		}
		assert.True(t, s.HasHead(), "%s: no head", s.Name)
	}
}

// TestParseRoundTrip: a fixture parses into the Shape its JSON states.
func TestParseRoundTrip(t *testing.T) {
	data, err := os.ReadFile("../../fixtures/models/tiny-k90.json")
	require.NoError(t, err)
	got, err := Parse(data)
	require.NoError(t, err)
	want := Shape{Name: "tiny-k90", Source: got.Source, Hidden: 90, NHeads: 4, NKVHeads: 2, HeadDim: 16,
		RopeTheta: 10000, RopeLayout: "neox", RMSEps: 1e-5, MaxPosition: 8192,
		IntermediateSize: 290, Activation: ActSwiGLU, NumLayers: 4, VocabSize: 1000}
	assert.Empty(t, cmp.Diff(want, got), "tiny-k90.json (-want +got)")
	assert.NotEmpty(t, got.Source)
}

// TestMalformedFixtures checks each bad fixture gets an error naming the
// problem, never a panic.
func TestMalformedFixtures(t *testing.T) {
	cases := []struct{ json, want string }{
		{`{"name":"x"`, "unexpected EOF"},
		{`{"name":"x","hidden":8,"n_heads":4,"n_kv_heads":3,"head_dim":16,"rope_theta":1,"rope_layout":"neox","rms_eps":0}`, "n_kv_heads=3"},
		{`{"name":"x","hidden":8,"n_heads":4,"n_kv_heads":2,"head_dim":12,"rope_theta":1,"rope_layout":"neox","rms_eps":0}`, "head_dim=12"},
		{`{"name":"x","hidden":8,"n_heads":4,"n_kv_heads":2,"head_dim":16,"rope_theta":1,"rope_layout":"gptj","rms_eps":0}`, "rope_layout"},
		{`{"name":"x","hidden":0,"n_heads":4,"n_kv_heads":2,"head_dim":16,"rope_theta":1,"rope_layout":"neox","rms_eps":0}`, "hidden=0"},
		{`{"name":"x","hiden":8}`, "unknown field"},
		{`{"name":"x","hidden":8,"n_heads":4,"n_kv_heads":2,"head_dim":16,"rope_theta":1,"rope_layout":"neox","rms_eps":0}`, "max_position is missing"},
		{`{"name":"x","hidden":8,"n_heads":4,"n_kv_heads":2,"head_dim":16,"rope_theta":1,"rope_layout":"neox","rms_eps":0,"max_position":-1}`, "max_position=-1"},
		{`{"name":"x","hidden":8,"n_heads":4,"n_kv_heads":2,"head_dim":16,"rope_theta":1,"rope_layout":"neox","rms_eps":0,"max_position":4294967296}`, "max_position=4294967296"},
		{`{"name":"x","hidden":8,"n_heads":4,"n_kv_heads":2,"head_dim":16,"rope_theta":1,"rope_layout":"neox","rms_eps":0,"max_position":64}`, "intermediate_size is missing"},
		{`{"name":"x","hidden":8,"n_heads":4,"n_kv_heads":2,"head_dim":16,"rope_theta":1,"rope_layout":"neox","rms_eps":0,"max_position":64,"intermediate_size":-1}`, "intermediate_size=-1"},
		{`{"name":"x","hidden":8,"n_heads":4,"n_kv_heads":2,"head_dim":16,"rope_theta":1,"rope_layout":"neox","rms_eps":0,"max_position":64,"intermediate_size":32,"activation":"swiglu"}`, "num_hidden_layers or vocab_size is missing"},
		{`{"name":"x","hidden":8,"n_heads":4,"n_kv_heads":2,"head_dim":16,"rope_theta":1,"rope_layout":"neox","rms_eps":0,"max_position":64,"intermediate_size":32,"activation":"swiglu","num_hidden_layers":-2,"vocab_size":10}`, "num_hidden_layers=-2"},
		{`{"name":"x","hidden":8,"n_heads":4,"n_kv_heads":2,"head_dim":16,"rope_theta":1,"rope_layout":"neox","rms_eps":0,"max_position":64,"intermediate_size":32,"activation":"swiglu","num_hidden_layers":2,"vocab_size":300000}`, "vocab_size=300000"},
		{`{"name":"x","hidden":8,"n_heads":4,"n_kv_heads":2,"head_dim":16,"rope_theta":1,"rope_layout":"neox","rms_eps":0,"max_position":64,"intermediate_size":32,"activation":"relu"}`, "activation=\"relu\""},
		{`{"name":"x","hidden":8,"n_heads":4,"n_kv_heads":2,"head_dim":16,"rope_theta":1,"rope_layout":"neox","rms_eps":0,"max_position":64,"intermediate_size":32,"activation":"swiglu","norm_weight_offset":2}`, "norm_weight_offset=2"},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.json))
		assert.ErrorContains(t, err, c.want, "Parse(%s)", c.json)
	}
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"name":"bad"`), 0o644))
	_, err := LoadDir(dir)
	assert.ErrorContains(t, err, "bad.json", "LoadDir must name the file")
}

// TestValidateContext checks max_position: 0 (a generated shape) is no
// limit and valid, a negative one is not; Parse alone requires it.
func TestValidateContext(t *testing.T) {
	s := Shape{Name: "gen", Hidden: 8, NHeads: 4, NKVHeads: 2, HeadDim: 16, RopeTheta: 1e4, RopeLayout: "neox"}
	assert.NoError(t, s.Validate(), "a shape without max_position is valid (no limit)")
	s.MaxPosition = -5
	assert.ErrorContains(t, s.Validate(), "max_position=-5")
}
