package parity

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
)

// pvChunkKeys is GP_ATTN_PV_CHUNK_KEYS (greta_parity.h): the keys of one
// in-order chain of gp_attn_pv's summation order.
const pvChunkKeys = 256

// fmaf is C's fmaf: a*b + c, exact, rounded once to f32. The product of
// two f32 values is exact in float64, but float32(math.FMA(a, b, c))
// would round twice (to float64, then to f32) and can miss by an ulp when
// the float64 sum lands exactly halfway between two f32 values; the exact
// rounding error of the float64 sum (TwoSum) decides those ties.
func fmaf(a, b, c float32) float32 {
	p, c64 := float64(a)*float64(b), float64(c)
	s := p + c64
	bp := s - c64
	residual := (p - bp) + (c64 - (s - bp)) // exact: a*b + c = s + residual
	r := float32(s)
	if residual == 0 || float64(r) == s {
		return r
	}
	lo, hi := math.Nextafter32(r, float32(math.Inf(-1))), r
	if float64(r) < s {
		lo, hi = r, math.Nextafter32(r, float32(math.Inf(1)))
	}
	if s == (float64(lo)+float64(hi))/2 { // a tie only in float64
		if residual > 0 {
			return hi
		}
		return lo
	}
	return r
}

// pvChunked is gp_attn_pv's documented order for one output element:
// per chunk of pvChunkKeys keys an fmaf chain from 0 in increasing j, the
// chunk partials added in chunk order in f32.
func pvChunked(p, v []float32) float32 {
	var acc float32
	for j0 := 0; j0 < len(p); j0 += pvChunkKeys {
		var part float32
		for j := j0; j < min(j0+pvChunkKeys, len(p)); j++ {
			part = fmaf(p[j], v[j], part)
		}
		if j0 == 0 {
			acc = part
		} else {
			acc += part
		}
	}
	return acc
}

// pvOneChain is the order of ABI 3's first draft: one fmaf chain over all
// keys. The test requires it to differ somewhere from pvChunked, so that
// it cannot pass a backend that still sums in one chain.
func pvOneChain(p, v []float32) float32 {
	var acc float32
	for j := range p {
		acc = fmaf(p[j], v[j], acc)
	}
	return acc
}

// TestAttnPVChunkOrder checks gp_attn_pv bit for bit against the header's
// summation order, emulated in Go (pvChunked) on random probabilities and
// values, at n_kv around the chunk boundary and past two chunks, for f32
// (the f32 accumulator itself) and f16 (rounded once), with two queries
// and GQA; and that the attestation names the chunking. At n_kv = 700 the
// one-chain order must differ from the chunked one on some element, so
// the test fails a backend that kept it.
func TestAttnPVChunkOrder(t *testing.T) {
	lib := openLib(t)
	needCap(t, lib, gpapi.CapUnfused)
	const nQ, nHeads, nKVHeads, headDim = 2, 4, 2, 16
	group := nHeads / nKVHeads
	for _, dt := range []dtype.Dtype{dtype.F32, dtype.F16} {
		for _, nKV := range []int{1, 255, 256, 257, 700} {
			t.Run(fmt.Sprintf("%s/n_kv=%d", dt, nKV), func(t *testing.T) {
				defer func() {
					if t.Failed() {
						t.Logf("rerun: %s", rerunCommand(t))
					}
				}()
				rng := rand.New(rand.NewPCG(uint64(nKV), uint64(dt)))
				probs := make([]float32, nHeads*nQ*nKV)
				for i := range probs {
					if rng.IntN(8) == 0 {
						continue // masked keys: exact zeros
					}
					probs[i] = float32(rng.Float64())
				}
				vw := nKVHeads * headDim
				vals := make([]float64, nKV*vw)
				for i := range vals {
					vals[i] = rng.NormFloat64()
				}
				vBytes := dt.Encode(vals)
				vDec := dt.Decode(vBytes) // exact stored values
				probBytes := dtype.F32.Encode(f32sToF64(probs))

				pb := allocWrite(t, lib, "probs", probBytes)
				vb := allocWrite(t, lib, "v_cache", vBytes)
				outw := nHeads * headDim
				poison := make([]byte, nQ*outw*dt.Size())
				for i := range poison {
					poison[i] = 0xff
				}
				ob := allocWrite(t, lib, "out", poison)
				launch, err := lib.AttnPV(int32(dt), pb.Ptr, vb.Ptr, ob.Ptr, nQ, nKV, nHeads, nKVHeads, headDim)
				if err != nil {
					t.Fatal(err)
				}
				got, err := ob.Read()
				if err != nil {
					t.Fatal(err)
				}
				if err := ob.CheckGuards(); err != nil {
					t.Fatal(err)
				}
				if lib.Has(gpapi.CapAttestation) {
					if chunks := (nKV + pvChunkKeys - 1) / pvChunkKeys; launch.TileN != pvChunkKeys || launch.SplitK != chunks {
						t.Errorf("attestation tile_n %d split_k %d, want %d and %d (GP_ATTN_PV_CHUNK_KEYS, ceil(n_kv / it))", launch.TileN, launch.SplitK, pvChunkKeys, chunks)
					}
				}
				differs, bad := 0, 0
				p, v := make([]float32, nKV), make([]float32, nKV)
				for h := 0; h < nHeads; h++ {
					g := h / group
					for i := 0; i < nQ; i++ {
						copy(p, probs[(h*nQ+i)*nKV:(h*nQ+i+1)*nKV])
						for c := 0; c < headDim; c++ {
							for j := range v {
								v[j] = float32(vDec[j*vw+g*headDim+c])
							}
							want := pvChunked(p, v)
							if pvOneChain(p, v) != want {
								differs++
							}
							e := i*outw + h*headDim + c
							wantBits := dt.Bits(dt.Encode([]float64{float64(want)}), 0)
							if gotBits := dt.Bits(got, e); gotBits != wantBits && bad < 5 {
								bad++
								t.Errorf("out[%d, %d] (head %d, channel %d): bits %#x, want %#x (the chunked order gives %g)", i, h*headDim+c, h, c, gotBits, wantBits, want)
							}
						}
					}
				}
				if nKV == 700 && dt == dtype.F32 && differs == 0 {
					t.Errorf("the one-chain order equals the chunked one on every element: the test could not tell them apart")
				}
			})
		}
	}
}

func f32sToF64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// allocWrite allocates a guarded device buffer holding data, freed when
// the test ends.
func allocWrite(t *testing.T, lib *gpapi.Lib, name string, data []byte) *gpapi.Buffer {
	t.Helper()
	b, err := lib.Alloc(name, len(data))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Free() })
	if err := b.Write(data); err != nil {
		t.Fatal(err)
	}
	return b
}
