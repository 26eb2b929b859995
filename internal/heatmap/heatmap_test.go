package heatmap

import (
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWritePNG(t *testing.T) {
	const rows, cols = 8, 128 // heads × positions in head
	vals := make([]float64, rows*cols)
	for i := range vals {
		vals[i] = 1e-3 * math.Sin(float64(i)) // noise everywhere …
	}
	for c := 32; c < 48; c++ { // … and a wrong tile in head 3
		vals[3*cols+c] = -0.5
	}
	vals[5] = math.NaN()
	vals[6] = math.Inf(-1)
	for _, tc := range []struct {
		name string
		vals []float64
	}{
		{"tile", vals},
		{"all zero", make([]float64, rows*cols)},
		{"all nan", func() []float64 {
			v := make([]float64, rows*cols)
			for i := range v {
				v[i] = math.NaN()
			}
			return v
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "q_proj.png")
			if err := WritePNG(path, "q_proj |Δ| decode0 vs prefill_last", rows, cols, tc.vals, "head", "position in head"); err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(path)
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
				t.Fatalf("WritePNG wrote an invalid PNG: %v", err)
			}
			if b := img.Bounds(); b.Dx() < 200 || b.Dy() < 100 || st.Size() < 2000 {
				t.Errorf("PNG is %v, %d bytes; want a non-trivial image", b, st.Size())
			}
		})
	}
}

func TestWritePNGBadArgs(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		rows, cols, n int
		want          string
	}{
		{0, 4, 0, "dims"},
		{2, -1, 0, "dims"},
		{2, 3, 5, "len(values) = 5"},
		{1 << 20, 1 << 20, 1, "exceed"},
	} {
		path := filepath.Join(dir, "x.png")
		err := WritePNG(path, "t", tc.rows, tc.cols, make([]float64, tc.n), "r", "c")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("WritePNG(%d×%d, %d values) = %v, want error containing %q", tc.rows, tc.cols, tc.n, err, tc.want)
		}
		if _, serr := os.Stat(path); serr == nil {
			t.Errorf("WritePNG(%d×%d) wrote a file despite the error", tc.rows, tc.cols)
		}
	}
}
