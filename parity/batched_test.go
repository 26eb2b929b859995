package parity

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/stage"
	"pgregory.net/rapid"
)

var flagBatch = flag.String("parity.batch", "",
	"with -parity.replay, TestBatchedProperty decodes sequences of these lengths in one batch (e.g. 9,64,65, the lengths its failure message prints)")

// batchPlans are TestBatchedDecode's batches: harness.BatchLens (one, two
// and three key splits side by side) and a batch of short sequences.
var batchPlans = [][]int{harness.BatchLens, {2, 3, 17}}

// TestBatchedDecode: B sequences of different lengths decoded in one call
// per stage equal each sequence decoded alone, at every stage, chained and
// isolated. Subtests read TestBatchedDecode/tiny-k90/fp16/lens=9,64,65,150/auto.
// A library without "batched" still runs the row-wise stages batched; the
// KV append and attention are then not checked (named in the log), and
// -parity.require=batched makes that a failure.
func TestBatchedDecode(t *testing.T) {
	lib := openLib(t)
	noteMissing(t, lib)
	for _, m := range modeModels(t) {
		t.Run(m.Name, func(t *testing.T) {
			for _, dt := range modeDtypes(m) {
				t.Run(dtypeElem(dt), func(t *testing.T) {
					for _, lens := range batchPlans {
						t.Run("lens="+harness.FormatLens(lens), func(t *testing.T) {
							for _, r := range modeRoutes(lib) {
								t.Run(r.String(), func(t *testing.T) {
									t.Parallel()
									c := harness.Case{Model: m, S: lens[0], Steps: 1, Dtype: dt, Route: r,
										Dist: harness.DistNormal, Seed: *flagSeed, Bitwise: *flagBitwise, Contract: contract(t)}
									checkBatched(t, lib, c, lens, func() string { return rerunCommand(t) })
								})
							}
						})
					}
				})
			}
		})
	}
}

// runBatched decodes the sequences of lens alone and batched, and compares
// them: one result per sequence.
func runBatched(lib *gpapi.Lib, c harness.Case, lens []int) (*harness.Batched, []*harness.Result, error) {
	casesRun.Add(int64(len(lens)))
	bt, err := harness.ExecuteBatched(lib, c, lens, *flagTimeout)
	if err != nil {
		return nil, nil, fmt.Errorf("batched decode of lengths %s, %s on %s: %w", harness.FormatLens(lens), c.Name(), lib.Backend, err)
	}
	res := harness.EvaluateBatched(bt)
	for _, r := range res {
		r.Backend, r.Fault = lib.Backend, lib.ActiveFault()
	}
	return bt, res, nil
}

// checkBatched runs a batch that must pass: a failing sequence prints its
// report and the rerun command.
func checkBatched(t *testing.T, lib *gpapi.Lib, c harness.Case, lens []int, rerun func() string) {
	t.Helper()
	bt, res, err := runBatched(lib, c, lens)
	if err != nil {
		t.Fatalf("%v\nrerun: %s", err, rerun())
	}
	logSkippedStages(t, bt)
	for b, r := range res {
		if !r.Pass() {
			t.Errorf("%s\nrerun: %s", batchedReport(bt, b, r), rerun())
		}
	}
}

// logSkippedStages says which stages of the plan did not run batched.
func logSkippedStages(t testing.TB, bt *harness.Batched) {
	for st, why := range bt.Skipped {
		if why != "" {
			t.Logf("not run batched: %s: %s", stage.Stage(st), why)
		}
	}
}

// batchedReport is a failing sequence's message: which sequence of which
// batch, then the report (decode = the batched call, prefill = the
// sequence decoded alone).
func batchedReport(bt *harness.Batched, b int, res *harness.Result) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "sequence %d (S=%d) of the batch of lengths %s: batched decode differs from the sequence decoded alone\n", b, bt.Lens[b], harness.FormatLens(bt.Lens))
	sb.WriteString("(in the report: \"decode\" is row b of the batched calls, \"prefill\" the sequence's own decode step)\n")
	sb.WriteString(res.Summary())
	sb.WriteString(res.Table())
	return sb.String()
}

// TestBatchedProperty draws a case and B sequence lengths and requires the
// batched decode to equal each sequence decoded alone. A failure prints
// the command that replays exactly that batch (-parity.replay with
// -parity.batch).
func TestBatchedProperty(t *testing.T) {
	lib := openLib(t)
	if *flagReplay != "" {
		c, err := parseReplay(*flagReplay)
		if err != nil {
			t.Fatalf("-parity.replay: %v", err)
		}
		lens, err := harness.ParseLens(*flagBatch)
		if err != nil {
			t.Fatalf("-parity.batch: %v", err)
		}
		c.Contract = contract(t)
		checkBatched(t, lib, c, lens, func() string { return batchedReplay(t, c, lens) })
		return
	}
	maxHidden, maxS := 1024, 200
	if backendKind == "cpu" && !*flagFull {
		maxHidden, maxS = 128, 80
	}
	shapes := shapeGen(maxHidden)
	routes := libRoutes(lib)
	rapid.Check(t, func(rt *rapid.T) {
		// Distinct lengths: the inputs of a sequence are drawn from (seed,
		// length), and two identical rows would hide a row mix-up.
		lens := rapid.SliceOfNDistinct(rapid.IntRange(2, maxS), 1, 5, rapid.ID[int]).Draw(rt, "lengths")
		c := harness.Case{
			Model:     shapes.Draw(rt, "shape"),
			S:         lens[0],
			Steps:     1,
			PosOffset: rapid.OneOf(rapid.Just(0), rapid.IntRange(0, 30000)).Draw(rt, "pos0"),
			Dtype:     rapid.SampledFrom(dtype.All).Draw(rt, "dtype"),
			Route:     rapid.SampledFrom(routes).Draw(rt, "route"),
			Dist:      rapid.SampledFrom(harness.Dists).Draw(rt, "dist"),
			Seed:      rapid.Uint64().Draw(rt, "seed"),
			Contract:  contract(t),
		}
		bt, res, err := runBatched(lib, c, lens)
		if err != nil {
			rt.Fatalf("%v\nreplay: %s", err, batchedReplay(t, c, lens))
		}
		for b, r := range res {
			if !r.Pass() {
				rt.Fatalf("%s\nreplay this batch: %s", batchedReport(bt, b, r), batchedReplay(t, c, lens))
			}
		}
	})
}

// batchedReplay is the command that reruns one drawn batch.
func batchedReplay(t testing.TB, c harness.Case, lens []int) string {
	return fmt.Sprintf("%s -parity.batch %s", replayCommand(t, c), harness.FormatLens(lens))
}

// batchFault is a fault the batched decode must catch, and the stage it
// must be blamed on in every sequence. A batch_* fault acts on batched
// calls of B > 1; a decode fault (row count 1) acts on the sequences
// decoded alone, which the batch (M = B) does not reproduce.
type batchFault struct {
	fault string
	model string
	dt    dtype.Dtype
	lens  []int
	first stage.Stage
	needs gpapi.Capability // "" = the core suffices
	why   string
}

var batchFaults = []batchFault{
	{"batch_kv_start_off", "tiny-k90", dtype.F16, harness.BatchLens, stage.Attn, gpapi.CapBatched,
		"batched attention reads each sequence's keys one cache row late (a block-table or offset bug)"},
	{"rope_pos_prev", "tiny-k90", dtype.F16, harness.BatchLens, stage.QRope, "",
		"the one-sequence decode's RoPE at position pos-1: a batch of one sequence would disagree with a batch of many"},
}

// TestBatchedMutations proves the batch mode can fail: without the fault
// the batch passes (negative control); with it every sequence fails, first
// and in isolation at the expected stage.
func TestBatchedMutations(t *testing.T) {
	lib := openLib(t)
	needCap(t, lib, gpapi.CapFaults)
	if f := os.Getenv("GRETA_FAULT"); f != "" {
		t.Skipf("GRETA_FAULT=%s is set for the whole run; TestBatchedMutations selects faults itself", f)
	}
	for _, bf := range batchFaults {
		t.Run(bf.fault, func(t *testing.T) {
			if bf.needs != "" {
				needCap(t, lib, bf.needs)
			}
			needFault(t, lib, lib.Faults(), bf.fault)
			c := harness.Case{Model: modelByName(t, bf.model), S: bf.lens[0], Steps: 1, Dtype: bf.dt,
				Route: gpapi.RouteAuto, Dist: harness.DistNormal, Seed: 7, Contract: contract(t)}
			mustSetFault(t, lib, "")
			bt, ctrl, err := runBatched(lib, c, bf.lens)
			if err != nil {
				t.Fatalf("negative control: %v\nrerun: %s", err, rerunCommand(t))
			}
			for b, r := range ctrl {
				if !r.Pass() {
					t.Fatalf("negative control (no fault) fails:\n%s\nrerun: %s", batchedReport(bt, b, r), rerunCommand(t))
				}
			}
			mustSetFault(t, lib, bf.fault)
			defer mustSetFault(t, lib, "")
			bt, res, err := runBatched(lib, c, bf.lens)
			if err != nil {
				t.Fatalf("fault %s: %v\nrerun: %s", bf.fault, err, rerunCommand(t))
			}
			for b, r := range res {
				first := r.FirstDivergence()
				switch {
				case r.Pass():
					t.Errorf("fault %s (%s) was NOT caught in sequence %d\n%s\nrerun: %s", bf.fault, bf.why, b, batchedReport(bt, b, r), rerunCommand(t))
				case first.Stage != bf.first:
					t.Errorf("fault %s: sequence %d diverges first at %s, want %s\n%s\nrerun: %s", bf.fault, b, first.Stage, bf.first, batchedReport(bt, b, r), rerunCommand(t))
				case !slices.Contains(r.IsolatedFailures(), bf.first):
					t.Errorf("fault %s: sequence %d: %s does not fail in isolation (%v)\n%s\nrerun: %s", bf.fault, b, bf.first, r.IsolatedFailures(), batchedReport(bt, b, r), rerunCommand(t))
				default:
					t.Logf("caught %s in sequence %d (S=%d): first divergence %s (%v), isolated %v", bf.fault, b, bt.Lens[b], first.Stage, first.Fails, r.IsolatedFailures())
				}
			}
		})
	}
}

// TestBatchedBadArguments calls the batched entry points with invalid
// arguments: each must return its error status with a message naming the
// argument (an element of a per-sequence array where the backend reads
// them on the host: the CPU backend), and a valid call must work after.
func TestBatchedBadArguments(t *testing.T) {
	lib := openLib(t)
	needCap(t, lib, gpapi.CapBatched)
	buf := func(n int) uintptr {
		b, err := lib.Alloc("scratch", n)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Free() })
		return b.Ptr
	}
	ints := func(v ...int32) uintptr {
		raw := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(raw[4*i:], uint32(x))
		}
		b, err := lib.Alloc("int32 scratch", len(raw))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Free() })
		if err := b.Write(raw); err != nil {
			t.Fatal(err)
		}
		return b.Ptr
	}
	const f16 = int32(1)
	q, kc, vc, out := buf(4096), buf(8192), buf(8192), buf(4096)
	type call struct {
		name   string
		status gpapi.Status
		arg    string
		host   bool // an element check: only backends that read the arrays on the host
		f      func() (gpapi.Launch, error)
	}
	cases := []call{
		{"append B=0", gpapi.ErrInvalidArg, "B", false, func() (gpapi.Launch, error) { return lib.KVAppendBatched(f16, q, q, kc, vc, 0, 32, ints(0), 8) }},
		{"append null slot", gpapi.ErrNullPointer, "slot", false, func() (gpapi.Launch, error) { return lib.KVAppendBatched(f16, q, q, kc, vc, 2, 32, 0, 8) }},
		{"append slot past capacity", gpapi.ErrInvalidArg, "slot[1]", true, func() (gpapi.Launch, error) { return lib.KVAppendBatched(f16, q, q, kc, vc, 2, 32, ints(0, 8), 8) }},
		{"attention B<0", gpapi.ErrInvalidArg, "B", false, func() (gpapi.Launch, error) {
			return lib.AttentionBatched(f16, q, kc, vc, out, 0, -1, ints(0), ints(1), 8, 2, 1, 16, 0.25)
		}},
		{"attention null kv_len", gpapi.ErrNullPointer, "kv_len", false, func() (gpapi.Launch, error) {
			return lib.AttentionBatched(f16, q, kc, vc, out, 0, 1, ints(0), 0, 8, 2, 1, 16, 0.25)
		}},
		{"attention heads not divisible", gpapi.ErrInvalidArg, "n_kv_heads", false, func() (gpapi.Launch, error) {
			return lib.AttentionBatched(f16, q, kc, vc, out, 0, 1, ints(0), ints(1), 8, 3, 2, 16, 0.25)
		}},
		{"attention empty sequence", gpapi.ErrInvalidArg, "kv_len[1]", true, func() (gpapi.Launch, error) {
			return lib.AttentionBatched(f16, q, kc, vc, out, 0, 2, ints(0, 4), ints(3, 0), 8, 2, 1, 16, 0.25)
		}},
		{"attention span past capacity", gpapi.ErrInvalidArg, "kv_start[0]", true, func() (gpapi.Launch, error) {
			return lib.AttentionBatched(f16, q, kc, vc, out, 0, 1, ints(6), ints(3), 8, 2, 1, 16, 0.25)
		}},
	}
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			if c.host && backendKind != "cpu" {
				t.Skipf("%s backend: the per-sequence arrays are device memory, read by the kernel (a bad element's row is skipped, not rejected)", backendKind)
			}
			_, err := c.f()
			var e *gpapi.Error
			if !errors.As(err, &e) {
				t.Fatalf("%s: got %v, want a *gpapi.Error\nrerun: %s", c.name, err, rerunCommand(t))
			}
			if e.Status != c.status || !strings.Contains(e.Msg, c.arg) {
				t.Errorf("%s: %v; want status %d and a message naming %q\nrerun: %s", c.name, err, c.status, c.arg, rerunCommand(t))
			}
			if _, err := lib.KVAppendBatched(f16, q, q, kc, vc, 2, 32, ints(0, 5), 8); err != nil {
				t.Errorf("a valid gp_kv_append_batched after %s failed: %v\nrerun: %s", c.name, err, rerunCommand(t))
			}
		})
	}
}
