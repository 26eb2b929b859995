package parity

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
)

// TestSoftmaxMaskedTail checks the property decode == prefill rests on for
// gp_softmax: a row of n finite scores gives bit for bit the same
// probabilities as the same row followed by masked keys (-INFINITY) in a
// longer call, and the masked keys get exact zeros. The lengths cross the
// HIP kernel's routes (one block per row up to 8192 keys, three launches
// over 2048-key segments beyond), so a route that normalizes differently
// from the other fails here, not only where a table case happens to
// compare a decode row with a prefill row on either side of 8192.
func TestSoftmaxMaskedTail(t *testing.T) {
	lib := openLib(t)
	needCap(t, lib, gpapi.CapUnfused)
	const nHeads = 2
	for _, c := range []struct{ n, padded int }{
		{100, 8193}, {2048, 2049}, {2049, 6000}, {8192, 8193}, {8000, 16400}, {8193, 16400},
	} {
		t.Run(fmt.Sprintf("n=%d/padded=%d", c.n, c.padded), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("rerun: %s", rerunCommand(t))
				}
			}()
			rng := rand.New(rand.NewPCG(uint64(c.n), uint64(c.padded)))
			short := make([]float64, nHeads*c.n)
			long := make([]float64, nHeads*c.padded)
			for h := 0; h < nHeads; h++ {
				for j := 0; j < c.padded; j++ {
					if j >= c.n {
						long[h*c.padded+j] = math.Inf(-1)
						continue
					}
					s := float64(float32(16*rng.Float64() - 8))
					short[h*c.n+j], long[h*c.padded+j] = s, s
				}
			}
			pShort := softmaxRows(t, lib, short, nHeads, c.n)
			pLong := softmaxRows(t, lib, long, nHeads, c.padded)
			bad := 0
			for h := 0; h < nHeads; h++ {
				for j := 0; j < c.padded; j++ {
					got := math.Float32bits(pLong[h*c.padded+j])
					want := uint32(0) // +0: a masked key
					if j < c.n {
						want = math.Float32bits(pShort[h*c.n+j])
					}
					if got != want {
						if bad < 5 {
							t.Errorf("head %d key %d: n_kv=%d gives %#08x (%g), n_kv=%d %#08x", h, j,
								c.padded, got, pLong[h*c.padded+j], c.n, want)
						}
						bad++
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d probabilities differ between the row alone and the row with %d masked keys after it",
					bad, nHeads*c.padded, c.padded-c.n)
			}
		})
	}
}

// softmaxRows runs gp_softmax over rows of n_kv f32 scores (n_q = 1) on
// poisoned outputs and returns the probabilities.
func softmaxRows(t *testing.T, lib *gpapi.Lib, scores []float64, rows, nKV int) []float32 {
	t.Helper()
	in := allocWrite(t, lib, "scores", dtype.F32.Encode(scores))
	poison := make([]byte, 4*len(scores))
	for i := range poison {
		poison[i] = 0xff
	}
	out := allocWrite(t, lib, "probs", poison)
	if _, err := lib.Softmax(in.Ptr, out.Ptr, rows, 1, nKV); err != nil {
		t.Fatal(err)
	}
	raw, err := out.Read()
	if err != nil {
		t.Fatal(err)
	}
	p := make([]float32, len(scores))
	for i := range p {
		p[i] = math.Float32frombits(uint32(raw[4*i]) | uint32(raw[4*i+1])<<8 | uint32(raw[4*i+2])<<16 | uint32(raw[4*i+3])<<24)
	}
	return p
}
