package parity

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/stage"
)

// TestParity is the table-driven suite: model fixtures × S at route and tile
// boundaries × dtype × route (harness.Matrix). Subtests read
// TestParity/llama3-8b/f16/S=129/auto. GRETA_GEMM_FORCE=MFMA|VALU runs every
// case with both paths forced onto that route (the field report's B3.31
// experiment), which requires bitwise equality.
func TestParity(t *testing.T) {
	lib := openLib(t)
	forced, err := harness.ForcedRoute()
	if err != nil {
		t.Fatal(err)
	}
	cases := harness.Matrix(loadModels(t), *flagFull, *flagSeed)
	if len(cases) == 0 {
		t.Fatal("the matrix is empty: check -parity.models")
	}
	var named []namedCase
	for _, c := range cases {
		if forced != gpapi.RouteAuto {
			if c.Route != gpapi.RouteAuto {
				continue // the forced run replaces the route column
			}
			c.Route = forced
		}
		c.Bitwise = *flagBitwise
		// -parity.layers, -parity.head (layers_test.go)
		c = withLayers(c)
		named = append(named, namedCase{casePath(c), c}) // [model, fp32|fp16|bf16, "S=..", leaf "auto_steps=4"]: names_test.go
	}
	// Level 0 (model) runs in order (on a GPU overlapped: modelGate); S and
	// routes run in parallel (the library serializes kernel calls;
	// references and checks overlap). On a GPU a model's dtypes run in
	// parallel too: three (model, dtype)
	// groups at once keep the host's cores busy through each group's start
	// (drawing and uploading its weights) and its tail (its longest cases).
	// Weights are kept per tensor on the host and the device (internSet,
	// deviceWeights), the raw normals of a model once for its dtypes. On
	// the CPU backend the kernels themselves fill the cores, and three
	// dtypes' real-shape weights at once would only add memory.
	expect, err := parseExpectRoutes(*flagExpectRoutes)
	if err != nil {
		t.Fatal(err)
	}
	noteMissing(t, lib)
	named = selectCases(t, named) // -short, -parity.shard (shard_test.go)
	var gate *modelGate
	if tableParallelFrom == 1 {
		gate = newModelGate(named)
	}
	runTree(t, named, tableParallelFrom, gate, func(t *testing.T, c harness.Case) {
		if c.FusedOnly {
			needCap(t, lib, gpapi.CapFused)
		}
		if !lib.SupportsRoute(c.Route) {
			needCap(t, lib, gpapi.CapRoutes)
			t.Skipf("library %q does not accept route %v (gp_forced_routes() = %v)", lib.Backend, c.Route, lib.ForcedRoutes())
		}
		c.Contract = contract(t)
		res := checkCase(t, lib, c)
		if !t.Failed() {
			checkAttestation(t, lib, c, res, expect)
		}
	})
}

// tableParallelFrom is the first level of TestParity's tree whose subtests
// run in parallel: dtype on a GPU, S on the CPU backend.
var tableParallelFrom = map[bool]int{true: 2, false: 1}[backendKind == "cpu"]

type namedCase struct {
	path []string
	c    harness.Case
}

// runTree runs cases as nested subtests, one level per path element,
// grouping consecutive cases that share a prefix, so -run can select any
// level: TestParity/llama3-8b/f16/S=129/auto.
// Levels from parallelFrom down run with t.Parallel.
func runTree(t *testing.T, cases []namedCase, parallelFrom int, gate *modelGate, f func(*testing.T, harness.Case)) {
	for i, gi := 0, 0; i < len(cases); gi++ {
		j := i + 1
		if len(cases[i].path) > 1 {
			for j < len(cases) && len(cases[j].path) > 1 && cases[j].path[0] == cases[i].path[0] {
				j++
			}
		}
		group := cases[i:j]
		ran := t.Run(group[0].path[0], func(t *testing.T) {
			leaf := f
			if gate != nil {
				t.Parallel()
				t.Cleanup(func() { gate.open(gi) })
				gate.wait(gi)
				leaf = func(t *testing.T, c harness.Case) { gate.started(gi); f(t, c) }
			} else if parallelFrom <= 0 {
				t.Parallel()
			}
			if len(group[0].path) == 1 {
				timeCase(t, func() { leaf(t, group[0].c) })
				return
			}
			sub := make([]namedCase, len(group))
			for k, g := range group {
				sub[k] = namedCase{g.path[1:], g.c}
			}
			runTree(t, sub, parallelFrom-1, nil, leaf)
		})
		if !ran && gate != nil {
			gate.open(gi) // filtered out by -run, or failed
		}
		i = j
	}
}

// modelGate overlaps a table's models on a GPU backend: model i+1's cases
// start once every case of model i has started, instead of after its last
// case ended. Models ran one after another before, and each one's tail (its
// longest cases, with most of the library and the host idle) added up to a
// fifth of the table's wall time (docs/PERFORMANCE.md). At most two models'
// weights are live at once, as at a boundary before.
//
// A gated model's test holds one of -test.parallel's slots while it waits,
// so the gate is used only when the limit leaves the running model's cases
// room (at least two slots a model); below that models run one after
// another. It counts on every case it was given starting, so a -run or
// -skip that selects subtests, and -failfast (which drops cases after a
// failure), run models one after another too. A model whose test ends
// (a failure before its cases) opens the gate.
type modelGate struct {
	left  []atomic.Int64  // cases of model i not started yet
	gates []chan struct{} // closed once model i's cases all started or it ended
	once  []sync.Once
}

// newModelGate returns the gate for cases' models, or nil when models must
// run one after another.
func newModelGate(cases []namedCase) *modelGate {
	if strings.Contains(testFlag("test.run"), "/") || strings.Contains(testFlag("test.skip"), "/") || testFlag("test.failfast") == "true" {
		return nil
	}
	var counts []int64
	for i, c := range cases {
		if i == 0 || c.path[0] != cases[i-1].path[0] {
			counts = append(counts, 0)
		}
		counts[len(counts)-1]++
	}
	limit, err := strconv.Atoi(testFlag("test.parallel"))
	if err != nil || len(counts) < 2 || limit < 2*len(counts) {
		return nil
	}
	g := &modelGate{left: make([]atomic.Int64, len(counts)), gates: make([]chan struct{}, len(counts)), once: make([]sync.Once, len(counts))}
	for i, n := range counts {
		g.left[i].Store(n)
		g.gates[i] = make(chan struct{})
	}
	return g
}

// wait blocks model i until model i-1's cases have all started.
func (g *modelGate) wait(i int) {
	if i > 0 {
		<-g.gates[i-1]
	}
}

// started counts a case of model i as started.
func (g *modelGate) started(i int) {
	if g.left[i].Add(-1) == 0 {
		g.open(i)
	}
}

func (g *modelGate) open(i int) { g.once[i].Do(func() { close(g.gates[i]) }) }

// routeExpectation is -parity.expect-routes: the routes AUTO must run for
// the projections on each path (set = false: report only).
type routeExpectation struct {
	set             bool
	prefill, decode gpapi.Route
}

func parseExpectRoutes(v string) (routeExpectation, error) {
	if v == "none" || v == "" {
		return routeExpectation{}, nil
	}
	e := routeExpectation{set: true}
	seen := map[string]bool{}
	for _, f := range strings.Split(v, ",") {
		path, route, ok := strings.Cut(strings.TrimSpace(f), ":")
		r, err := gpapi.ParseRoute(route)
		if !ok || err != nil || r == gpapi.RouteAuto {
			return e, fmt.Errorf("-parity.expect-routes=%q: %q is not PATH:ROUTE with PATH prefill or decode and ROUTE mfma or valu", v, f)
		}
		switch path {
		case "prefill":
			e.prefill = r
		case "decode":
			e.decode = r
		default:
			return e, fmt.Errorf("-parity.expect-routes=%q: path %q is not prefill or decode", v, path)
		}
		seen[path] = true
	}
	if !seen["prefill"] || !seen["decode"] {
		return e, fmt.Errorf("-parity.expect-routes=%q: give both prefill:ROUTE and decode:ROUTE, or none", v)
	}
	return e, nil
}

// checkAttestation proves which kernels were compared. Forced, both paths
// must have run the forced route. On AUTO, the stated expectation
// (-parity.expect-routes; by default this repo's policy, MFMA for prefill
// and VALU for decode) is checked; with none, the routes are only
// reported. Without gp_last_launch there is nothing to check: that is a
// note, or a failure under -parity.require=attestation.
func checkAttestation(t *testing.T, lib *gpapi.Lib, c harness.Case, res *harness.Result, e routeExpectation) {
	t.Helper()
	if !lib.Has(gpapi.CapAttestation) {
		if slices.Contains(required(t), gpapi.CapAttestation) {
			t.Errorf("-parity.require=attestation: %v", lib.Need(gpapi.CapAttestation))
		}
		return
	}
	wantPre, wantDec := e.prefill, e.decode
	if c.Route != gpapi.RouteAuto {
		wantPre, wantDec = c.Route, c.Route
	} else if !e.set {
		t.Logf("routes (attested, not checked: -parity.expect-routes=none):\n%s", res.Routes())
		return
	}
	for _, st := range stage.Projections() {
		if !res.Ran[st] {
			continue // an MLP projection of a case that runs no MLP
		}
		if got := res.Prefill[st].Route; got != wantPre {
			t.Errorf("attestation: prefill %v ran route %v (%s), want %v\nrerun: %s", st, got, res.Prefill[st], wantPre, rerunCommand(t))
		}
		if got := res.Decode[st].Route; got != wantDec {
			t.Errorf("attestation: decode %v ran route %v (%s), want %v\nrerun: %s", st, got, res.Decode[st], wantDec, rerunCommand(t))
		}
	}
}

// noteMissing says once, at the top of a suite, which optional stages and
// checks the library's missing capabilities leave out; a required one
// fails the suite.
func noteMissing(t *testing.T, lib *gpapi.Lib) {
	t.Helper()
	for _, c := range lib.Missing() {
		err := lib.Need(c)
		if slices.Contains(required(t), c) {
			t.Fatalf("-parity.require=%s: %v", c, err)
		}
		t.Logf("not checked: %v", err)
	}
}
