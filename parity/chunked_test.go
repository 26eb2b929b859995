package parity

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/model"
	"github.com/gretacore/parity/internal/stage"
	"pgregory.net/rapid"
)

var flagChunks = flag.String("parity.chunks", "",
	"with -parity.replay, TestChunkedProperty prefills the replayed case in these chunks (e.g. 64+64+22, the plan its failure message prints)")

// chunkPlan is a named chunk plan of the table.
type chunkPlan struct {
	name   string // the subtest element: "chunk=64", "chunks=1,63,1,64,21"
	chunks []int
}

// chunkPlans are TestChunkedPrefill's plans of harness.ChunkedP tokens:
// each harness.ChunkSizes size (ragged last chunk) and the mixed plan. On
// the CPU default only tiny-k90 in f16 runs every plan; the other (model,
// dtype) pairs run chunk=64 and the mixed plan (every plan is a whole
// prefill, and every row of it is compared). A real shape (-parity.full)
// runs one plan, chunk=64 over harness.ChunkedRealP tokens: the float64
// references of every row of 4096-wide stages are the cost there.
func chunkPlans(m model.Shape, dt dtype.Dtype) []chunkPlan {
	if !debugShape(m) {
		return []chunkPlan{{"chunk=64", harness.ChunkPlan(harness.ChunkedRealP, 64)}}
	}
	var out []chunkPlan
	every := *flagFull || (m.Name == "tiny-k90" && dt == dtype.F16)
	for _, n := range harness.ChunkSizes {
		if every || n == 64 {
			out = append(out, chunkPlan{fmt.Sprintf("chunk=%d", n), harness.ChunkPlan(harness.ChunkedP, n)})
		}
	}
	// Commas, not FormatChunks' "+": a -run pattern reads "+" as a repeat.
	return append(out, chunkPlan{"chunks=" + strings.ReplaceAll(harness.FormatChunks(harness.MixedChunks), "+", ","), harness.MixedChunks})
}

// modeModels are the models the chunk and batch modes run: the debug
// shapes, and a real shape only when -parity.models names it and
// -parity.full is on (the GPU default). Every row of a chunked prefill is
// referenced in float64: a 4096-wide shape costs about 90 s of host time
// per case on 2 cores, so the GPU matrix does not run them unasked.
func modeModels(t *testing.T) []model.Shape {
	var out []model.Shape
	for _, m := range loadModels(t) {
		if debugShape(m) || (*flagFull && *flagModels != "" && !testing.Short()) {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		t.Skipf("-parity.models=%s selects no debug shape; a real shape runs in this mode with -parity.full (the GPU default)", *flagModels)
	}
	return out
}

// modeDtypes are the dtypes of a model in the chunk and batch modes: all
// three for tiny-k90 and for the debug shapes with -parity.full, f16 for
// the other debug shapes on the CPU default (they add GQA groups and bias,
// not new roundings) and for the real shapes.
func modeDtypes(m model.Shape) []dtype.Dtype {
	if debugShape(m) && (*flagFull || m.Name == "tiny-k90") {
		return dtype.All
	}
	return []dtype.Dtype{dtype.F16}
}

// modeRoutes are AUTO (tolerance model) and, where the library accepts
// it, both paths forced onto MFMA (bitwise at the declared stages).
func modeRoutes(lib *gpapi.Lib) []gpapi.Route {
	out := []gpapi.Route{gpapi.RouteAuto}
	if lib.SupportsRoute(gpapi.RouteMFMA) {
		out = append(out, gpapi.RouteMFMA)
	}
	return out
}

// TestChunkedPrefill: a prefill of harness.ChunkedP tokens in chunks
// equals the one-shot prefill row for row at every stage, chained and
// isolated, for each plan of chunkPlans. Subtests read
// TestChunkedPrefill/tiny-k90/fp16/chunk=64/auto.
func TestChunkedPrefill(t *testing.T) {
	lib := openLib(t)
	noteMissing(t, lib)
	for _, m := range modeModels(t) {
		t.Run(m.Name, func(t *testing.T) {
			for _, dt := range modeDtypes(m) {
				t.Run(dtypeElem(dt), func(t *testing.T) {
					for _, pl := range chunkPlans(m, dt) {
						t.Run(pl.name, func(t *testing.T) {
							for _, r := range modeRoutes(lib) {
								t.Run(r.String(), func(t *testing.T) {
									t.Parallel()
									c := harness.Case{Model: m, S: sum(pl.chunks), Steps: 1, Dtype: dt, Route: r,
										Dist: harness.DistNormal, Seed: *flagSeed, Bitwise: *flagBitwise, Contract: contract(t)}
									res, err := runChunked(lib, c, pl.chunks)
									if err != nil {
										t.Fatalf("%v\nrerun: %s", err, rerunCommand(t))
									}
									if !res.Pass() {
										t.Errorf("%s\nrerun: %s", chunkedReport(res, pl.chunks), rerunCommand(t))
									}
								})
							}
						})
					}
				})
			}
		})
	}
}

// runChunked runs c's prefill one-shot and in chunks, and compares them.
func runChunked(lib *gpapi.Lib, c harness.Case, chunks []int) (*harness.Result, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid case %s: %w", c.Name(), err)
	}
	casesRun.Add(1)
	in := harness.NewInputs(c)
	tr, err := harness.ExecuteChunked(lib, c, chunks, in, *flagTimeout)
	if err != nil {
		return nil, fmt.Errorf("chunked prefill %s of %s on %s: %w", harness.FormatChunks(chunks), c.Name(), lib.Backend, err)
	}
	res := harness.Evaluate(c.AllRows(), in, tr)
	res.Backend, res.Fault = lib.Backend, lib.ActiveFault()
	return res, nil
}

// chunkedReport is a failing chunked case's message: what was compared,
// where the first divergence is (row, chunk), then the report's summary
// and the failing rows of its table (a step is a token row here).
func chunkedReport(res *harness.Result, chunks []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "chunked prefill (chunks %s, P=%d) differs from the one-shot prefill\n", harness.FormatChunks(chunks), res.Case.P())
	b.WriteString("(in the report: \"decode\" is the chunked prefill, \"prefill\" the one-shot one, step t = token row t)\n")
	if f := res.FirstDivergence(); f != nil {
		s, n := harness.ChunkStart(chunks, f.Step)
		fmt.Fprintf(&b, "first divergence: %s at row %d, in the chunk of rows %d..%d (q_pos0=%d, n_q=%d)\n", f.Stage, f.Step, s, s+n-1, s, n)
	}
	b.WriteString(res.Summary())
	b.WriteString(failingTable(res))
	return b.String()
}

// failingTable is the report table's header and its failing rows only (a
// chunked case compares every row: the whole table would be thousands of
// lines).
func failingTable(res *harness.Result) string {
	lines := strings.Split(strings.TrimRight(res.Table(), "\n"), "\n")
	out := lines[:2]
	for _, l := range lines[2:] {
		if !strings.HasSuffix(l, "| ok |") {
			out = append(out, l)
		}
	}
	const most = 40
	if len(out) > most {
		out = append(out[:most], fmt.Sprintf("… %d more failing rows", len(out)-most))
	}
	return strings.Join(out, "\n") + "\n"
}

// TestChunkedProperty draws a case and a random chunk plan of its P
// tokens and requires the chunked prefill to equal the one-shot one. A
// failure prints the command that replays exactly that case and plan
// (-parity.replay with -parity.chunks).
func TestChunkedProperty(t *testing.T) {
	lib := openLib(t)
	if *flagReplay != "" {
		c, err := parseReplay(*flagReplay)
		if err != nil {
			t.Fatalf("-parity.replay: %v", err)
		}
		chunks, err := harness.ParseChunks(*flagChunks)
		if err != nil {
			t.Fatalf("-parity.chunks: %v", err)
		}
		c.Contract = contract(t)
		res, err := runChunked(lib, c, chunks)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Pass() {
			t.Errorf("%s\nreplay: %s", chunkedReport(res, chunks), chunkedReplay(t, c, chunks))
		}
		return
	}
	maxHidden, maxS := 1024, 200
	if backendKind == "cpu" && !*flagFull {
		maxHidden, maxS = 64, 64
	}
	shapes := shapeGen(maxHidden)
	routes := libRoutes(lib)
	rapid.Check(t, func(rt *rapid.T) {
		c := harness.Case{
			Model:     shapes.Draw(rt, "shape"),
			S:         rapid.IntRange(2, maxS).Draw(rt, "P"),
			Steps:     1,
			PosOffset: rapid.OneOf(rapid.Just(0), rapid.IntRange(0, 30000)).Draw(rt, "pos0"),
			Dtype:     rapid.SampledFrom(dtype.All).Draw(rt, "dtype"),
			Route:     rapid.SampledFrom(routes).Draw(rt, "route"),
			Dist:      rapid.SampledFrom(harness.Dists).Draw(rt, "dist"),
			Seed:      rapid.Uint64().Draw(rt, "seed"),
			Contract:  contract(t),
		}
		var chunks []int
		for left := c.P(); left > 0; {
			n := rapid.OneOf(rapid.IntRange(1, left), rapid.SampledFrom(harness.ChunkSizes)).Draw(rt, "chunk")
			n = min(n, left)
			chunks = append(chunks, n)
			left -= n
		}
		res, err := runChunked(lib, c, chunks)
		if err != nil {
			rt.Fatalf("%v\nreplay: %s", err, chunkedReplay(t, c, chunks))
		}
		if !res.Pass() {
			rt.Fatalf("%s\nreplay this case: %s", chunkedReport(res, chunks), chunkedReplay(t, c, chunks))
		}
	})
}

// chunkedReplay is the command that reruns one drawn chunked case.
func chunkedReplay(t testing.TB, c harness.Case, chunks []int) string {
	return fmt.Sprintf("%s -parity.chunks %s", replayCommand(t, c), harness.FormatChunks(chunks))
}

// chunkFault is a fault only a chunked prefill sees, the plan that
// exposes it, and the stage it must be blamed on (the first of stages the
// library runs).
type chunkFault struct {
	fault  string
	model  string
	dt     dtype.Dtype
	chunks []int
	first  []stage.Stage // blamed stage: the first of these the plan runs
	why    string
}

var chunkFaults = []chunkFault{
	{"chunk_pos_off", "tiny-k90", dtype.F16, harness.ChunkPlan(harness.ChunkedP, 64), []stage.Stage{stage.QK, stage.Attn},
		"a later chunk's queries placed one position early: the causal limit misses each query's own key (q_pos0 - 1 on chunks after the first)"},
}

// TestChunkedMutations proves the chunk mode can fail: with each
// chunkFaults fault the chunked prefill must fail, first at the first row
// of the second chunk, on the expected stage, which also fails in
// isolation; without it (negative control) it must pass. The one-shot
// prefill and decode never call the faulty shape, so TestParity cannot
// see these faults.
func TestChunkedMutations(t *testing.T) {
	lib := openLib(t)
	needCap(t, lib, gpapi.CapFaults)
	if f := os.Getenv("GRETA_FAULT"); f != "" {
		t.Skipf("GRETA_FAULT=%s is set for the whole run; TestChunkedMutations selects faults itself", f)
	}
	for _, cf := range chunkFaults {
		t.Run(cf.fault, func(t *testing.T) {
			needFault(t, lib, lib.Faults(), cf.fault)
			c := harness.Case{Model: modelByName(t, cf.model), S: harness.ChunkedP, Steps: 1, Dtype: cf.dt,
				Route: gpapi.RouteAuto, Dist: harness.DistNormal, Seed: 7, Contract: contract(t)}
			mustSetFault(t, lib, "")
			ctrl, err := runChunked(lib, c, cf.chunks)
			if err != nil {
				t.Fatalf("negative control: %v\nrerun: %s", err, rerunCommand(t))
			}
			if !ctrl.Pass() {
				t.Fatalf("negative control (no fault) fails:\n%s\nrerun: %s", chunkedReport(ctrl, cf.chunks), rerunCommand(t))
			}
			mustSetFault(t, lib, cf.fault)
			defer mustSetFault(t, lib, "")
			res, err := runChunked(lib, c, cf.chunks)
			if err != nil {
				t.Fatalf("fault %s: %v\nrerun: %s", cf.fault, err, rerunCommand(t))
			}
			want := firstRun(res, cf.first)
			first := res.FirstDivergence()
			switch {
			case res.Pass():
				t.Errorf("fault %s (%s) was NOT caught\n%s\nrerun: %s", cf.fault, cf.why, chunkedReport(res, cf.chunks), rerunCommand(t))
			case first.Stage != want || first.Step != cf.chunks[0]:
				t.Errorf("fault %s: first divergence %s at row %d, want %s at row %d (the second chunk's first row)\n%s\nrerun: %s",
					cf.fault, first.Stage, first.Step, want, cf.chunks[0], chunkedReport(res, cf.chunks), rerunCommand(t))
			case !slices.Contains(res.IsolatedFailures(), want):
				t.Errorf("fault %s: %s does not fail in isolation (%v)\n%s\nrerun: %s", cf.fault, want, res.IsolatedFailures(), chunkedReport(res, cf.chunks), rerunCommand(t))
			default:
				t.Logf("caught %s: first divergence %s at row %d (%v), isolated %v", cf.fault, first.Stage, first.Step, first.Fails, res.IsolatedFailures())
			}
		})
	}
}

// firstRun is the first of sts the result's plan ran.
func firstRun(res *harness.Result, sts []stage.Stage) stage.Stage {
	for _, st := range sts {
		if res.Ran[st] {
			return st
		}
	}
	return sts[len(sts)-1]
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
