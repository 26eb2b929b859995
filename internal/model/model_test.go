package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadFixtures(t *testing.T) {
	shapes, err := LoadDir("../../fixtures/models")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"tiny": true, "llama2-7b": true, "llama3-8b": true, "mistral-7b": true,
		"qwen2-7b": true, "gemma-2b": true, "phi3-mini": true, "tiny-gqa3": true, "long-ctx": true}
	// The real models' context lengths (config.json max_position_embeddings).
	context := map[string]int{"llama2-7b": 4096, "llama3-8b": 8192, "mistral-7b": 32768,
		"qwen2-7b": 32768, "phi3-mini": 4096, "gemma-2b": 8192, "long-ctx": 32768}
	gqa := false // a fixture whose GQA group size differs from its KV head count
	for _, s := range shapes {
		delete(want, s.Name)
		if c, ok := context[s.Name]; ok && s.MaxPosition != c {
			t.Errorf("%s: max_position=%d, want %d", s.Name, s.MaxPosition, c)
		}
		if s.MaxPosition <= 0 {
			t.Errorf("%s: max_position=%d, want > 0", s.Name, s.MaxPosition)
		}
		if s.NKVHeads > 1 && s.NHeads/s.NKVHeads != s.NKVHeads {
			gqa = true
		}
	}
	if len(want) > 0 {
		t.Errorf("fixtures missing: %v", want)
	}
	if !gqa {
		t.Error("no fixture has a GQA group size (n_heads/n_kv_heads) different from its KV head count (> 1)")
	}
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
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%s) = %v, want an error containing %q", c.json, err, c.want)
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte(`{"name":"bad"`), 0o644)
	if _, err := LoadDir(dir); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("LoadDir error %v does not name the file", err)
	}
}

// TestValidateContext checks max_position: 0 (a generated shape) is no
// limit and valid, a negative one is not; Parse alone requires it.
func TestValidateContext(t *testing.T) {
	s := Shape{Name: "gen", Hidden: 8, NHeads: 4, NKVHeads: 2, HeadDim: 16, RopeTheta: 1e4, RopeLayout: "neox"}
	if err := s.Validate(); err != nil {
		t.Errorf("a shape without max_position: %v, want valid (no limit)", err)
	}
	s.MaxPosition = -5
	if err := s.Validate(); err == nil || !strings.Contains(err.Error(), "max_position=-5") {
		t.Errorf("max_position=-5: %v, want an error naming it", err)
	}
}
