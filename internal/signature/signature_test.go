package signature

import (
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/stage"
)

// fieldReport is the field report that started the project: its MAE table
// of prefill_last vs decode0 per sub-stage (layer 0 / head 0, MI300X),
// copied with a line of context into fixtures/field-report/b3.30-mae.md.
func fieldReport(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "field-report", "b3.30-mae.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func defaultLibrary(t *testing.T) *Library {
	t.Helper()
	lib, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if len(lib.Faults) == 0 {
		t.Fatal("the embedded signature library is empty: run make signatures")
	}
	return lib
}

var ropeClass = []string{"rope_wrong_layout", "rope_pos_prev", "rope_pos_zero"}
var gemvRoute = []string{"gemv_f16_acc", "splitk_drop_tail"}

// TestFieldReport feeds the field report's table to the matcher, as
// pasted (both prompts) and with its surrounding text:
// a RoPE-class fault must rank above the GEMV-route faults, and the
// explanation must say why (v is clean, and a GEMV fault moves v).
func TestFieldReport(t *testing.T) {
	lib := defaultLibrary(t)
	// The fixture as a whole (prose and table), and its table alone.
	whole := fieldReport(t)
	inputs := map[string]string{"fixture": whole, "table": whole[strings.Index(whole, "| Prompt"):]}
	for name, text := range inputs {
		t.Run(name, func(t *testing.T) {
			ps, err := ParsePattern(text, PasteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != 2 || ps[0].Name != "p4_sys" || ps[1].Name != "p5_ba" {
				var names []string
				for _, p := range ps {
					names = append(names, p.Name)
				}
				t.Fatalf("patterns %v, want [p4_sys p5_ba] (the table appears twice in the seed: once per language)", names)
			}
			for _, p := range ps {
				checkVerdicts(t, p, map[stage.Stage]bool{stage.QRope: true, stage.KRope: true, stage.VProj: false,
					stage.QK: true, stage.Softmax: false, stage.PV: false, stage.AttnOut: false})
				rk := lib.Rank(p)
				if !rk.Matches() {
					t.Errorf("%s: nothing matches (best %.2f)", p.Name, rk.Best())
				}
				best := math.Inf(1)
				for _, f := range ropeClass {
					ci, fm := rk.ClassOf(f)
					if ci != 0 {
						t.Errorf("%s: %s ranks in class %d, want the best class", p.Name, f, ci+1)
					}
					if fm != nil {
						best = math.Min(best, fm.Score)
					}
				}
				for _, f := range gemvRoute {
					if ci, fm := rk.ClassOf(f); ci <= 0 || fm.Score >= best {
						t.Errorf("%s: GEMV-route fault %s in class %d (score %v), want below every RoPE fault (%.2f)", p.Name, f, ci+1, fm, best)
					}
				}
				text := lib.Explain(p)
				for _, want := range []string{
					"v_proj (v) within tolerance (chained): argues against",
					"gemv_f16_acc",
					"whose signatures always move v_proj",
					"what k has and v lacks is RoPE",
					"indistinguishable by the per-stage pattern",
					"GRETA_GEMM_FORCE=MFMA",
					"Best match: rope_pos_prev, rope_pos_zero, rope_wrong_layout",
				} {
					if !strings.Contains(text, want) {
						t.Errorf("%s: the explanation lacks %q:\n%s", p.Name, want, text)
					}
				}
			}
			out, diverges, err := ExplainText(text, PasteOptions{})
			if err != nil || !diverges {
				t.Fatalf("ExplainText: diverges=%v err=%v", diverges, err)
			}
			if !strings.Contains(out, "p4_sys, p5_ba (the same verdicts") {
				t.Errorf("the two prompts' identical verdicts are not explained once:\n%s", out)
			}
		})
	}
}

func checkVerdicts(t *testing.T, p *Pattern, want map[stage.Stage]bool) {
	t.Helper()
	for st, div := range want {
		o := p.obs(Chained, st)
		if o == nil {
			t.Errorf("%s: %s not read", p.Name, st)
			continue
		}
		if o.Diverges != div {
			t.Errorf("%s: %s (%s = %g) diverges=%v, want %v", p.Name, st, o.Label, o.Value, o.Diverges, div)
		}
	}
	if n := len(p.Modes[Chained]); n != len(want) || len(p.Modes[Isolated]) != 0 {
		t.Errorf("%s: %d chained and %d isolated stages read, want %d chained", p.Name, n, len(p.Modes[Isolated]), len(want))
	}
}

// TestNothingMatches: a pattern no shipped fault produces (RMSNorm off,
// everything after it clean) is reported as matching nothing.
func TestNothingMatches(t *testing.T) {
	lib := defaultLibrary(t)
	for _, pat := range []string{
		"x_norm=0.5 q_proj=0 k_proj=0 v_proj=0 attn_out=0",
		"x_norm=diverges q=ok k=ok v=ok",
	} {
		out, diverges, err := ExplainText(pat, PasteOptions{})
		if err != nil || !diverges {
			t.Fatalf("%q: diverges=%v err=%v", pat, diverges, err)
		}
		ps, _ := ParsePattern(pat, PasteOptions{})
		if rk := lib.Rank(ps[0]); rk.Matches() {
			t.Errorf("%q matches %v (score %.2f ≥ %.2f)\n%s", pat, rk.Top(), rk.Best(), rk.Threshold, out)
		}
		if !strings.Contains(out, "No known fault signature matches") {
			t.Errorf("%q: the explanation does not say nothing matches:\n%s", pat, out)
		}
	}
	out, diverges, err := ExplainText("q=0 k=0 v=0", PasteOptions{})
	if err != nil || diverges || !strings.Contains(out, "nothing to explain") {
		t.Errorf("an all-clean pattern: diverges=%v err=%v\n%s", diverges, err, out)
	}
}

// TestParsePattern covers the input forms.
func TestParsePattern(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		opt        PasteOptions
		chained    map[stage.Stage]bool
		isolated   map[stage.Stage]bool
	}{
		{"pairs", "q=0.54 k:0.20 v=2.7e-3", PasteOptions{},
			map[stage.Stage]bool{stage.QRope: true, stage.KRope: true, stage.VProj: false}, nil},
		{"commas, full names, NaN", "q_proj=1e-6, k_proj=NaN; attn_out=0", PasteOptions{},
			map[stage.Stage]bool{stage.QProj: true, stage.KProj: true, stage.AttnOut: false}, nil},
		{"threshold", "q=0.54 k=0.20 v=2.7e-3", PasteOptions{Threshold: 1e-3, HasThreshold: true},
			map[stage.Stage]bool{stage.QRope: true, stage.KRope: true, stage.VProj: true}, nil},
		{"words and modes", "chained: q_rope=diverges v=ok isolated: q_rope=fail qk=clean", PasteOptions{},
			map[stage.Stage]bool{stage.QRope: true, stage.VProj: false},
			map[stage.Stage]bool{stage.QRope: true, stage.QK: false}},
		{"tracediff table", `| Prompt | q_proj MAE | q_rope MAE | First divergent |
|---|---:|---:|---|
| tiny-k90/f16/S=9/auto (chained) | 0.00000e+00 | **5.86009e-01** | **q_rope** |
| tiny-k90/f16/S=9/auto (isolated) | 0.00000e+00 | **5.86009e-01** | **q_rope** |
`, PasteOptions{},
			map[stage.Stage]bool{stage.QProj: false, stage.QRope: true},
			map[stage.Stage]bool{stage.QProj: false, stage.QRope: true}},
		{"by-stage tables", `### tiny-k90/f16/S=9/auto (layer 0)

Mode: chained

| Stage | MAE | max\|Δ\| | rel L2 | Diverges |
|---|---:|---:|---:|---|
| q_proj | 0 | 0 | 0 | no |
| q_rope | 5.9e-01 | 2.0e+00 | 1.0e+00 | **yes** |

### tiny-k90/f16/S=9/auto (layer 0)

Mode: isolated

| Stage | MAE | max\|Δ\| | rel L2 | Diverges |
|---|---:|---:|---:|---|
| k_rope | 6.4e-01 | 2.0e+00 | 1.0e+00 | **yes** (3 NaN/Inf) |
`, PasteOptions{},
			map[stage.Stage]bool{stage.QProj: false, stage.QRope: true},
			map[stage.Stage]bool{stage.KRope: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := ParsePattern(tc.text, tc.opt)
			if err != nil {
				t.Fatal(err)
			}
			if len(ps) != 1 {
				t.Fatalf("%d patterns, want 1", len(ps))
			}
			for m, want := range []map[stage.Stage]bool{tc.chained, tc.isolated} {
				got := map[stage.Stage]bool{}
				for _, o := range ps[0].Modes[m] {
					got[o.Stage] = o.Diverges
				}
				if len(want) == 0 && len(got) == 0 {
					continue
				}
				for st, d := range want {
					if g, ok := got[st]; !ok || g != d {
						t.Errorf("%s %s: diverges=%v (read: %v), want %v", Mode(m), st, g, ok, d)
					}
				}
				if len(got) != len(want) {
					t.Errorf("%s: read %v, want %v", Mode(m), got, want)
				}
			}
		})
	}
	for _, bad := range []string{"qq=0.5", "q=abc", "q 0.5", "| a | b |\n|---|---|\n| 1 | 2 |"} {
		if _, err := ParsePattern(bad, PasteOptions{}); err == nil {
			t.Errorf("ParsePattern(%q) accepted", bad)
		}
	}
}

// TestLibraryRoundTrip: the stored form parses back to the same library,
// in the stored order, and the embedded library lists every fault once.
func TestLibraryRoundTrip(t *testing.T) {
	lib := defaultLibrary(t)
	data, err := lib.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	again, err := back.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(data) {
		t.Error("Marshal(Parse(Marshal(lib))) differs from Marshal(lib)")
	}
	names := lib.FaultNames()
	if !slices.IsSorted(names) || len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("faults not sorted or repeated: %v", names)
	}
	for _, f := range lib.Faults {
		if len(f.Signatures) == 0 {
			t.Errorf("fault %s has no signature (exposed on no case)", f.Fault)
		}
	}
	if _, err := Parse([]byte(`{"generated":"","contract":"strict","faults":[{"fault":"x","signatures":[{"case":"c","model":"m","dtype":"f16","chained":[{"stage":"nope","moves":true,"rel_l2":"1e0"}],"isolated":[]}]}]}`)); err == nil {
		t.Error("a library naming an unknown stage parses")
	}
}

func TestMagOf(t *testing.T) {
	for _, tc := range []struct {
		m    float64
		want Mag
	}{{0, "0"}, {math.Inf(1), "inf"}, {math.NaN(), "inf"}, {1, "1e0"}, {9.99, "1e0"}, {10, "1e1"}, {2345, "1e3"}, {0.3, "1e-1"}} {
		if got := MagOf(tc.m); got != tc.want {
			t.Errorf("MagOf(%v) = %q, want %q", tc.m, got, tc.want)
		}
	}
}
