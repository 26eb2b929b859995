package parity

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/signature"
	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/tolerance"
	"github.com/gretacore/parity/internal/trace"
)

var flagWriteSignatures = flag.Bool("parity.write-signatures", false,
	"rewrite "+signature.Path+" from the mutation suite (make signatures)")

// signatureVariants are the fixtures, dtypes and routes every shipped fault
// runs on for the signature library, besides its own rows of the mutation
// table (those on debug fixtures): MHA f16 and bf16, GQA with group 3,
// Qwen's QKV bias with MQA and interleaved RoPE, and both paths forced onto
// MFMA (bitwise mode: the field report's B3.31 experiment, which hides a
// decode-GEMV fault). RouteAuto stands for the fault's own route (MFMA for a
// one-ulp fault).
var signatureVariants = []struct {
	model string
	dt    dtype.Dtype
	route gpapi.Route
}{
	{"tiny-k90", dtype.F16, gpapi.RouteAuto}, {"tiny-k90", dtype.BF16, gpapi.RouteAuto},
	{"tiny-gqa3", dtype.F16, gpapi.RouteAuto}, {"tiny-qwen", dtype.F16, gpapi.RouteAuto},
	{"tiny-k90", dtype.F16, gpapi.RouteMFMA},
}

// sigCase is one fault on one case of the signature library.
type sigCase struct {
	fault string
	c     harness.Case
}

// signatureCases derives the library's cases from the mutation table:
// for every fault, its rows on the debug fixtures (model names tiny*: the
// real shapes take seconds on the CPU) and the variants, each with the
// fault's first row's S and distribution, under the strict contract.
// Forced-route variants are left out on a library that cannot force them.
func signatureCases(t *testing.T, lib *gpapi.Lib) []sigCase {
	var out []sigCase
	var faults []string
	for _, m := range mutations {
		if !slices.Contains(faults, m.fault) {
			faults = append(faults, m.fault)
		}
	}
	type variant struct {
		model string
		dt    dtype.Dtype
		route gpapi.Route
	}
	for _, f := range faults {
		var first *mutation
		var todo []variant
		add := func(v variant) {
			if v.route == gpapi.RouteAuto && first.bitwis {
				v.route = gpapi.RouteMFMA
			}
			if !slices.Contains(todo, v) && (v.route == gpapi.RouteAuto || lib.SupportsRoute(v.route)) {
				todo = append(todo, v)
			}
		}
		for i := range mutations {
			m := &mutations[i]
			if m.fault != f {
				continue
			}
			if first == nil {
				first = m
			}
			if strings.HasPrefix(m.model, "tiny-k90") {
				add(variant{m.model, m.dt, gpapi.RouteAuto})
			}
		}
		for _, v := range signatureVariants {
			add(variant{v.model, v.dt, v.route})
		}
		for _, v := range todo {
			c := harness.Case{Model: modelByName(t, v.model), S: first.s, Steps: 1, Dtype: v.dt,
				Route: v.route, Dist: first.dist, Seed: 7, Contract: tolerance.Strict}
			out = append(out, sigCase{f, c})
		}
	}
	return out
}

// generatedSignatures is the library TestSignatures builds, and the
// results it was built from.
type generatedSignatures struct {
	lib     *signature.Library
	results []sigResult
}

type sigResult struct {
	fault string
	res   *harness.Result
}

// generateSignatures runs every signature case: the case without the fault
// must pass (negative control, once per case), and with it either fails
// (its signature) or passes (the case does not expose the fault).
func generateSignatures(t *testing.T, lib *gpapi.Lib) generatedSignatures {
	t.Helper()
	gen := generatedSignatures{lib: &signature.Library{
		Generated: "make signatures (go test ./parity -run '^TestSignatures$' -parity.write-signatures): the mutation suite's faults on the debug fixtures; do not edit",
		Contract:  tolerance.Strict.String(),
	}}
	controls := map[string]*harness.Result{}
	byFault := map[string]*signature.Fault{}
	defer mustSetFault(t, lib, "")
	for _, sc := range signatureCases(t, lib) {
		if cap := stageCapability(firstStageOf(sc.fault)); cap != "" {
			needCap(t, lib, cap)
		}
		if controls[sc.c.Name()] == nil {
			mustSetFault(t, lib, "")
			ctrl, err := runCase(t, lib, sc.c)
			if err != nil {
				t.Fatalf("negative control %s: %v", sc.c.Name(), err)
			}
			if !ctrl.Pass() {
				t.Fatalf("negative control %s (no fault) fails:\n%s\n%s", sc.c.Name(), ctrl.Summary(), ctrl.Table())
			}
			controls[sc.c.Name()] = ctrl
		}
		mustSetFault(t, lib, sc.fault)
		res, err := runCase(t, lib, sc.c)
		if err != nil {
			t.Fatalf("fault %s on %s: %v", sc.fault, sc.c.Name(), err)
		}
		f := byFault[sc.fault]
		if f == nil {
			gen.lib.Faults = append(gen.lib.Faults, signature.Fault{Fault: sc.fault, Signatures: []signature.Signature{}})
			f = &gen.lib.Faults[len(gen.lib.Faults)-1]
			byFault = map[string]*signature.Fault{}
			for i := range gen.lib.Faults {
				byFault[gen.lib.Faults[i].Fault] = &gen.lib.Faults[i]
			}
		}
		if res.Pass() {
			f.NotExposed = append(f.NotExposed, sc.c.Name())
			continue
		}
		f.Signatures = append(f.Signatures, signature.SignatureOf(res, controls[sc.c.Name()]))
		gen.results = append(gen.results, sigResult{sc.fault, res})
	}
	if err := gen.lib.Normalize(); err != nil {
		t.Fatal(err)
	}
	return gen
}

// firstStageOf is the mutation table's expected first stage of a fault.
func firstStageOf(fault string) (st stage.Stage) {
	for _, m := range mutations {
		if m.fault == fault {
			return m.first
		}
	}
	return st
}

// TestSignatures regenerates the fault signature library from the mutation
// suite and checks it: (1) on the CPU backend it must equal the stored
// library (fixtures/signatures; `make signatures` rewrites it, and
// -parity.write-signatures writes it here); (2) every fault ranks itself
// first, or tied first within its class of faults the per-stage pattern
// cannot tell apart, on each of its own results — read from the harness
// result (both modes, margins, checks) and from the trace the harness
// writes, read back through tracediff's comparison (verdicts by its
// threshold).
func TestSignatures(t *testing.T) {
	lib := openLib(t)
	needCap(t, lib, gpapi.CapFaults)
	if f := os.Getenv("GRETA_FAULT"); f != "" {
		t.Skipf("GRETA_FAULT=%s is set for the whole run; TestSignatures selects faults itself", f)
	}
	have := lib.Faults()
	for _, m := range mutations {
		if !slices.Contains(have, m.fault) {
			if slices.Contains(required(t), gpapi.CapFaults) {
				t.Fatalf("-parity.require=faults: library %q does not implement fault %q", lib.Backend, m.fault)
			}
			t.Skipf("library %q does not implement fault %q: the library cannot be generated", lib.Backend, m.fault)
		}
	}
	gen := generateSignatures(t, lib)
	path := filepath.Join(moduleRoot(), filepath.FromSlash(signature.Path))
	switch {
	case *flagWriteSignatures:
		data, err := gen.lib.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d faults, %d bytes)", path, len(gen.lib.Faults), len(data))
	case backendKind != "cpu":
		t.Logf("%s backend: the stored library is the CPU backend's; drift is not checked here", backendKind)
	default:
		t.Run("drift", func(t *testing.T) { checkDrift(t, path, gen.lib) })
	}
	for _, r := range gen.results {
		name := r.fault + "/" + r.res.Case.Name()
		t.Run("rank/result/"+name, func(t *testing.T) {
			rk := gen.lib.Rank(signature.FromResult(r.res))
			checkRanksFirst(t, rk, r.fault, gen.lib.Explain(signature.FromResult(r.res)))
		})
		// The trace as the harness writes it (with its bounds: judged as
		// the harness judged) and as an engine's trace would be (no
		// bounds: tracediff's threshold on the raw differences).
		for _, tv := range []struct {
			name         string
			ignoreBounds bool
		}{{"trace", false}, {"trace-unbounded", true}} {
			t.Run("rank/"+tv.name+"/"+name, func(t *testing.T) {
				p := tracePattern(t, r.res, tv.ignoreBounds)
				if !p.Diverges() {
					// Below tracediff's rel L2 threshold (a one-ulp fault,
					// an f16 accumulation at K=90, an LSE-only error) only
					// the harness's bounds see it.
					t.Logf("%s: no stage of the trace passes tracediff's threshold; nothing to rank", name)
					return
				}
				if f := r.res.FirstDivergence(); f != nil && !observedDiverging(p, f.Stage) {
					// The threshold misses the stage where the harness
					// sees the divergence start and sees only what it
					// accumulated downstream (a one-ulp bias of every
					// bf16 projection, carried through the MLP): the
					// per-stage pattern cannot point at the fault.
					t.Logf("%s: tracediff's threshold misses %s, where the divergence starts; it sees only its downstream accumulation; nothing to rank", name, f.Stage)
					return
				}
				checkRanksFirst(t, gen.lib.Rank(p), r.fault, gen.lib.Explain(p))
			})
		}
	}
}

// observedDiverging reports whether st diverges in any mode of p.
func observedDiverging(p *signature.Pattern, st stage.Stage) bool {
	for _, obs := range p.Modes {
		for _, o := range obs {
			if o.Stage == st && o.Diverges {
				return true
			}
		}
	}
	return false
}

// checkDrift compares the generated library with the stored one, fault by
// fault.
func checkDrift(t *testing.T, path string, gen *signature.Library) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it with `make signatures`)", err)
	}
	stored, err := signature.Parse(data)
	if err != nil {
		t.Fatalf("%s: %v (regenerate it with `make signatures`)", path, err)
	}
	opt := cmpopts.IgnoreUnexported(signature.Signature{})
	if d := cmp.Diff(stored.Generated, gen.Generated); d != "" {
		t.Errorf("header drift (-stored +generated):\n%s", d)
	}
	names := stored.FaultNames()
	for _, n := range gen.FaultNames() {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	find := func(l *signature.Library, n string) *signature.Fault {
		for i := range l.Faults {
			if l.Faults[i].Fault == n {
				return &l.Faults[i]
			}
		}
		return nil
	}
	for _, n := range names {
		if d := cmp.Diff(find(stored, n), find(gen, n), opt); d != "" {
			t.Errorf("the signature of fault %s drifted from %s (-stored +generated):\n%s\n"+
				"If the change is intended (a kernel, tolerance or fault changed), regenerate it: make signatures", n, signature.Path, d)
		}
	}
}

// checkRanksFirst requires fault in the best class with the best score.
func checkRanksFirst(t *testing.T, rk *signature.Ranking, fault, explain string) {
	t.Helper()
	ci, fm := rk.ClassOf(fault)
	switch {
	case ci < 0:
		t.Errorf("%s is not ranked at all\n%s", fault, explain)
	case ci != 0 || fm.Score < rk.Best():
		t.Errorf("%s ranks in class %d with score %.3f; best class %v with %.3f\n%s", fault, ci+1, fm.Score, rk.Top(), rk.Best(), explain)
	case !rk.Matches():
		t.Errorf("%s ranks first but below the match threshold (%.3f < %.2f)\n%s", fault, rk.Best(), rk.Threshold, explain)
	default:
		if top := rk.Top(); len(top) > 1 {
			t.Logf("%s tied first with %v (indistinguishable by the per-stage pattern), score %.3f", fault, top, fm.Score)
		}
	}
}

// tracePattern writes the result's trace as a failing case does, reads it
// back and turns tracediff's comparison into a pattern (ignoreBounds: as
// `tracediff -bounds=false` judges it).
func tracePattern(t *testing.T, res *harness.Result, ignoreBounds bool) *signature.Pattern {
	t.Helper()
	p := filepath.Join(t.TempDir(), "trace.jsonl")
	if err := writeTrace(p, res); err != nil {
		t.Fatal(err)
	}
	recs, err := trace.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	opts := trace.DefaultOptions()
	opts.IgnoreBounds = ignoreBounds
	rep, err := trace.Compare(recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	ps := signature.FromTrace(rep)
	if len(ps) != 1 {
		t.Fatalf("trace of one case gives %d patterns", len(ps))
	}
	return ps[0]
}

// likelyCauses is the "Likely causes" section a failure report carries.
func likelyCauses(res *harness.Result) string { return "\n" + signature.LikelyCauses(res) }
