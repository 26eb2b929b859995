package stage

import "testing"

func TestRegistryRoundTrip(t *testing.T) {
	if len(All()) != Count {
		t.Fatalf("All() has %d stages, Count = %d", len(All()), Count)
	}
	for _, s := range All() {
		got, err := Parse(s.String())
		if err != nil || got != s {
			t.Errorf("Parse(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := Parse("q"); err == nil {
		t.Error(`Parse("q") succeeded; want an error listing the names`)
	}
	if Stage(99).Valid() || Stage(99).String() != "stage(99)" {
		t.Error("out-of-range stage must be invalid and print as stage(99)")
	}
}

// TestOrderIsThePipeline pins the order first-divergence depends on.
func TestOrderIsThePipeline(t *testing.T) {
	want := []string{"x_norm", "q_proj", "k_proj", "v_proj", "q_rope", "k_rope", "kv_cache", "qk", "softmax", "pv", "attn", "attn_out"}
	for i, s := range All() {
		if s.String() != want[i] {
			t.Errorf("stage %d = %s, want %s", i, s, want[i])
		}
	}
}
