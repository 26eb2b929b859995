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
		"qwen2-7b": true, "gemma-2b": true, "phi3-mini": true}
	for _, s := range shapes {
		delete(want, s.Name)
	}
	if len(want) > 0 {
		t.Errorf("fixtures missing: %v", want)
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
