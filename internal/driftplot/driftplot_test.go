package driftplot

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWritePNG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "drift.png")
	err := WritePNG(path, "llama3-8b/bf16/S=17", []Series{
		{Name: "attention", Margins: []float64{0, 0.01, 0.2, 3, math.Inf(1)}},
		{Name: "mlp", Margins: []float64{0.5, 0.5, math.NaN(), 1e-9, 2e5}},
		{Name: "head", Margins: []float64{0.7}, First: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Errorf("image %v, want a full-size plot", b)
	}
}

func TestWritePNGSingleLayer(t *testing.T) {
	if err := WritePNG(filepath.Join(t.TempDir(), "one.png"), "one layer", []Series{{Name: "attention", Margins: []float64{0.3}}}); err != nil {
		t.Fatal(err)
	}
}

func TestWritePNGBadInput(t *testing.T) {
	for _, tc := range []struct {
		name   string
		series []Series
		want   string
	}{
		{"none", nil, "no series"},
		{"no layers", []Series{{Name: "a"}}, `"a" has no layers`},
		{"no name", []Series{{Margins: []float64{1}}}, "has no name"},
		{"ragged", []Series{{Name: "a", Margins: []float64{1, 2}}, {Name: "b", Margins: []float64{1}}}, `"b" has 1 layers from 0, "a" has 2 from 0`},
		{"late start past the end", []Series{{Name: "a", Margins: []float64{1, 2}}, {Name: "head", Margins: []float64{1}, First: 2}}, `"head" has 1 layers from 2`},
		{"negative start", []Series{{Name: "a", Margins: []float64{1}, First: -1}}, "starts at layer -1"},
		{"negative", []Series{{Name: "a", Margins: []float64{0.1, -1}}}, `"a" layer 1: margin -1 < 0`},
		{"-Inf", []Series{{Name: "a", Margins: []float64{math.Inf(-1)}}}, "margin -Inf < 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.png")
			err := WritePNG(path, "bad", tc.series)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if _, statErr := os.Stat(path); statErr == nil {
				t.Errorf("%s written despite the error", path)
			}
		})
	}
}

func TestClamp(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{
		{0, Floor}, {1e-9, Floor}, {0.5, 0.5}, {1, 1}, {Ceil * 10, Ceil}, {math.Inf(1), Ceil}, {math.NaN(), Ceil},
	} {
		if got := clamp(tc.in); got != tc.want {
			t.Errorf("clamp(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
