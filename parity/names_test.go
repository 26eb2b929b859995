package parity

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/tolerance"
)

// Case names. A table case's subtest path is
//
//	TestParity/<model>/<fp32|fp16|bf16>/S=<n>/<route>[_<option>…]
//
// e.g. TestParity/tiny-k90/fp16/S=129/auto or TestParity/tiny-k90/fp32/S=2/auto_steps=4,
// and a mutation's TestMutations/<fault>/<model>/<dtype>/<contract>.
// The model element is the fixture name, and no fixture name is a
// substring of another, so -run 'TestParity/tiny-k90/' selects tiny-k90 only; the
// dtype element is fp32, fp16 or bf16, so -run 'TestParity//fp16/' does not
// select bf16 (as "f16" would). S, the leaf and fault names still need
// anchoring to select one (S=2 vs S=256, auto vs auto_steps=4, gqa_modulo vs
// attn_gqa_modulo): -run 'TestParity/tiny-k90/fp16/^S=2$/^auto$'. Rerun commands
// anchor every element. Traces keep the harness's own names
// (harness.Case.Name, prompt_id "tiny-k90/f16/S=129/auto") and the trace
// format's dtype spelling (f32, f16, bf16).

// dtypeElem is the dtype's element of a subtest path: fp32, fp16 or bf16.
func dtypeElem(d dtype.Dtype) string {
	switch d {
	case dtype.F32:
		return "fp32"
	case dtype.F16:
		return "fp16"
	}
	return d.String() // bf16
}

// casePath is a table case's subtest path below TestParity:
// [model, dtype, "S=n", leaf].
func casePath(c harness.Case) []string {
	return []string{c.Model.Name, dtypeElem(c.Dtype), fmt.Sprintf("S=%d", c.S), c.Leaf()}
}

// mutationPath is a mutation's subtest path below TestMutations.
func mutationPath(m mutation, ct tolerance.Contract) []string {
	return []string{m.fault, m.model, dtypeElem(m.dt), ct.String()}
}

// tableCases is TestParity's case list, named: the matrix of the selected
// models, with GRETA_GEMM_FORCE's route replacing the route column, then
// -short and -parity.shard applied (pickCases). -parity.list prints it.
func tableCases() ([]namedCase, error) {
	models, err := selectedModels()
	if err != nil {
		return nil, err
	}
	forced, err := harness.ForcedRoute()
	if err != nil {
		return nil, err
	}
	shard, err := parseShard(*flagShard)
	if err != nil {
		return nil, err
	}
	var named []namedCase
	for _, c := range harness.Matrix(models, *flagFull, *flagSeed) {
		if forced != gpapi.RouteAuto {
			if c.Route != gpapi.RouteAuto {
				continue
			}
			c.Route = forced
		}
		c = withLayers(c) // layers_test.go
		named = append(named, namedCase{casePath(c), c})
	}
	return pickCases(named, testingShort(), shard), nil
}

// testingShort is testing.Short, safe before testing's flags are parsed.
func testingShort() bool {
	f := flag.Lookup("test.short")
	return f != nil && f.Value.String() == "true"
}

// listedNames are the full subtest paths of TestParity and TestMutations
// that -run and -skip select: the names a run would execute (some may
// still skip at run time: a capability the library lacks, a model that
// -parity.models leaves out).
func listedNames() ([]string, error) {
	named, err := tableCases()
	if err != nil {
		return nil, err
	}
	var all [][]string
	for _, c := range named {
		all = append(all, append([]string{"TestParity"}, c.path...))
	}
	for _, m := range mutations {
		for _, ct := range []tolerance.Contract{tolerance.Strict, tolerance.Engine} {
			all = append(all, append([]string{"TestMutations"}, mutationPath(m, ct)...))
		}
	}
	run, err := compileFilter(testFlag("test.run"))
	if err != nil {
		return nil, err
	}
	skip, err := compileFilter(testFlag("test.skip"))
	if err != nil {
		return nil, err
	}
	var list *regexp.Regexp
	if lp := testListPattern(); lp != "" {
		if list, err = regexp.Compile(lp); err != nil {
			return nil, err
		}
	}
	var out []string
	for _, p := range all {
		if selectedBy(p, run, skip) && (list == nil || list.MatchString(p[0])) {
			out = append(out, strings.Join(p, "/"))
		}
	}
	return out, nil
}

// printList writes the selected names, one a line, and a count to stderr.
func printList(stdout, stderr io.Writer) int {
	names, err := listedNames()
	if err != nil {
		fmt.Fprintf(stderr, "parity: -parity.list: %v\n", err)
		return 1
	}
	for _, n := range names {
		fmt.Fprintln(stdout, n)
	}
	what := "no case was run"
	if r := testFlag("test.run"); r != "" {
		what += fmt.Sprintf("; -run %q", r)
	}
	fmt.Fprintf(stderr, "parity: %d case names (TestParity and TestMutations; %s)\n", len(names), what)
	return 0
}

// testFlag is the value of one of testing's flags ("" if unset).
func testFlag(name string) string {
	if f := flag.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

// testListPattern is go test -list's pattern ("" without -list).
func testListPattern() string { return testFlag("test.list") }

// A filter is a -run or -skip pattern as package testing reads it: split
// on "|" and "/" outside brackets and parentheses into alternatives of
// per-level, unanchored regular expressions.
type filter [][]*regexp.Regexp

// compileFilter compiles a -run/-skip pattern (nil for "").
func compileFilter(pat string) (filter, error) {
	if pat == "" {
		return nil, nil
	}
	var f filter
	for _, alt := range splitPattern(pat) {
		var levels []*regexp.Regexp
		for _, e := range alt {
			re, err := regexp.Compile(e)
			if err != nil {
				return nil, fmt.Errorf("pattern %q: %v", pat, err)
			}
			levels = append(levels, re)
		}
		f = append(f, levels)
	}
	return f, nil
}

// matches is testing's match of one name: some alternative matches each of
// the name's elements it has a level for; partial when the alternative has
// more levels than the name.
func (f filter) matches(name []string) (ok, partial bool) {
	for _, alt := range f {
		ok = true
		for i, s := range name {
			if i >= len(alt) {
				break
			}
			if !alt[i].MatchString(s) {
				ok = false
				break
			}
		}
		if ok {
			return true, len(name) < len(alt)
		}
	}
	return false, false
}

// selectedBy reports whether testing would run the subtest path p under
// -run (run) and -skip (skip): -run must match every prefix of p (each
// level is matched when its subtest starts), and -skip must fully match
// none.
func selectedBy(p []string, run, skip filter) bool {
	for k := 1; k <= len(p); k++ {
		if run != nil {
			if ok, _ := run.matches(p[:k]); !ok {
				return false
			}
		}
		if skip != nil {
			if ok, partial := skip.matches(p[:k]); ok && !partial {
				return false
			}
		}
	}
	return true
}

// splitPattern is package testing's splitRegexp: alternatives on "|",
// levels on "/", both outside brackets and parentheses.
func splitPattern(s string) [][]string {
	var alts [][]string
	var a []string
	cs, cp := 0, 0
	for i := 0; i < len(s); {
		switch s[i] {
		case '[':
			cs++
		case ']':
			if cs--; cs < 0 {
				cs = 0
			}
		case '(':
			if cs == 0 {
				cp++
			}
		case ')':
			if cs == 0 {
				cp--
			}
		case '\\':
			i++
		case '/', '|':
			if cs == 0 && cp == 0 {
				a = append(a, s[:i])
				if s[i] == '|' {
					alts = append(alts, a)
					a = nil
				}
				s = s[i+1:]
				i = 0
				continue
			}
		}
		i++
	}
	return append(alts, append(a, s))
}
