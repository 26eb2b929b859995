package harness

import (
	"slices"
	"testing"
	"time"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/softkernels"
	"github.com/gretacore/parity/internal/stage"
)

// modeFaults are softkernels' faults that only the chunk and batch modes
// see (TestSoftKernelsFaults counts them as tested here).
var modeFaults = []string{"chunk_pos_off", "batch_kv_start_off"}

// TestSoftChunkedAndBatched runs the chunk and batch modes end to end on
// the pure-Go library: they pass without a fault (forced route: bit for
// bit), and chunk_pos_off / batch_kv_start_off fail them, blamed on
// attention.
func TestSoftChunkedAndBatched(t *testing.T) {
	lib := softkernels.New()
	c := Case{Model: softModel(t, "tiny-k90"), S: 70, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteMFMA, Seed: 3}
	chunks := []int{1, 16, 47, 6}
	chunked := func() *Result {
		in := NewInputs(c)
		tr, err := ExecuteChunked(lib, c, chunks, in, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return Evaluate(c.AllRows(), in, tr)
	}
	batched := func() []*Result {
		bt, err := ExecuteBatched(lib, c, []int{9, 70, 65}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return EvaluateBatched(bt)
	}
	if res := chunked(); !res.Pass() {
		t.Fatalf("chunked prefill %s fails without a fault:\n%s\n%s", FormatChunks(chunks), res.Summary(), res.Table())
	}
	for b, res := range batched() {
		if !res.Pass() {
			t.Fatalf("batched sequence %d fails without a fault:\n%s\n%s", b, res.Summary(), res.Table())
		}
	}
	if err := lib.SetFault(modeFaults[0]); err != nil {
		t.Fatal(err)
	}
	res := chunked()
	if f := res.FirstDivergence(); f == nil || f.Stage != stage.QK || f.Step != 1 {
		t.Errorf("chunk_pos_off: first divergence %v, want qk at row 1 (the second chunk's first row)\n%s", f, res.Summary())
	}
	if err := lib.SetFault(modeFaults[1]); err != nil {
		t.Fatal(err)
	}
	for b, res := range batched() {
		if f := res.FirstDivergence(); f == nil || f.Stage != stage.Attn || !slices.Contains(res.IsolatedFailures(), stage.Attn) {
			t.Errorf("batch_kv_start_off: sequence %d: first divergence %v, isolated %v, want attn in both\n%s", b, f, res.IsolatedFailures(), res.Summary())
		}
	}
	if err := lib.SetFault(""); err != nil {
		t.Fatal(err)
	}
}

func TestChunkPlans(t *testing.T) {
	for _, n := range ChunkSizes {
		p := ChunkPlan(ChunkedP, n)
		if err := CheckChunks(p, ChunkedP); err != nil {
			t.Errorf("ChunkPlan(%d, %d): %v", ChunkedP, n, err)
		}
		if n > 1 && p[len(p)-1] == n {
			t.Errorf("chunk size %d: no ragged last chunk in %s", n, FormatChunks(p))
		}
		back, err := ParseChunks(FormatChunks(p))
		if err != nil || !slices.Equal(back, p) {
			t.Errorf("ParseChunks(FormatChunks(%v)) = %v, %v", p, back, err)
		}
	}
	if err := CheckChunks(MixedChunks, ChunkedP); err != nil {
		t.Error(err)
	}
	if err := CheckChunks([]int{3, 4}, 8); err == nil {
		t.Error("CheckChunks accepted a plan of 7 tokens for P=8")
	}
	if _, err := ParseChunks("4+0"); err == nil {
		t.Error("ParseChunks accepted a chunk of 0 rows")
	}
	if _, err := ParseLens("9,1"); err == nil {
		t.Error("ParseLens accepted a sequence of length 1")
	}
}
