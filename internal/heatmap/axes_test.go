package heatmap

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestSegmentedAxisExtents: a KV cache row of head_dim 16 is drawn as K
// then V, and its axis says K0…K15 and V0…V15 — never an index past 15,
// which a plain 0…31 axis would show.
func TestSegmentedAxisExtents(t *testing.T) {
	kv := Axis{Label: "position in head", Segments: []Segment{{"K", 16}, {"V", 16}}}
	ticks := kv.Ticks(32)
	for pos, want := range map[int]string{0: "K0", 15: "15", 16: "V0", 31: "15"} {
		if ticks[pos] != want {
			t.Errorf("tick at %d = %q, want %q (all: %v)", pos, ticks[pos], want, ticks)
		}
	}
	for pos, l := range ticks {
		n, err := strconv.Atoi(strings.TrimLeft(l, "KV"))
		if err != nil || n > 15 || n < 0 {
			t.Errorf("tick %q at %d: not a K/V index in 0..15", l, pos)
		}
	}
	if got := kv.label(); got != "position in head (K 0..15 | V 0..15)" {
		t.Errorf("axis label %q", got)
	}
	if got := (Axis{Label: "head"}).Ticks(4); got[3] != "3" || got[0] != "0" {
		t.Errorf("plain axis ticks %v, want 0..3", got)
	}
	// A one-index segment (the LSE after a head's output) is labelled too.
	if got := (Axis{Segments: []Segment{{"o", 16}, {"lse", 1}}}).Ticks(17); got[16] != "lse0" || got[15] != "15" || got[0] != "o0" {
		t.Errorf("out+lse ticks %v", got)
	}
	vals := make([]float64, 2*32)
	vals[40] = 1
	if err := WritePNGAxes(filepath.Join(t.TempDir(), "kv.png"), "kv_cache", 2, 32, vals, Axis{Label: "KV head"}, kv); err != nil {
		t.Fatal(err)
	}
	if err := WritePNGAxes(filepath.Join(t.TempDir(), "bad.png"), "kv_cache", 2, 32, vals, Axis{Label: "KV head"},
		Axis{Segments: []Segment{{"K", 16}, {"V", 15}}}); err == nil || !strings.Contains(err.Error(), "segments hold 31") {
		t.Errorf("segments that do not cover the axis: %v", err)
	}
}
