package trace

import (
	"bytes"
	"errors"
	"io"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/stage"
)

func rec(phase string, st stage.Stage, head int, vals ...float64) Record {
	return Record{
		PromptID: "llama3-8b/f16/S=129/auto", Phase: phase, Layer: 0, Head: head, Stage: st,
		PosID: 128, SeqLenUsed: 129, DType: "f16", Shape: []int{1, len(vals)}, Values: vals,
	}
}

// sameFloats compares bit patterns, so NaN equals NaN and -0 differs from 0.
func sameFloats(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) && !(math.IsNaN(a[i]) && math.IsNaN(b[i])) {
			return false
		}
	}
	return true
}

func TestRoundTripNonFinite(t *testing.T) {
	r := rec("decode0", stage.QProj, 0, 0.125, -1.5, math.NaN(), math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 1e-300, math.MaxFloat64, 0.1)
	r.Mode, r.Backend = ModeChained, "rocm"
	b, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"NaN"`, `"+Inf"`, `"-Inf"`, `"stage":"q_proj"`, `"mode":"chained"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("MarshalJSON() = %s, want it to contain %s", b, want)
		}
	}
	got, err := ParseRecord(b)
	if err != nil {
		t.Fatalf("ParseRecord(%s) = %v", b, err)
	}
	if !sameFloats(got.Values, r.Values) {
		t.Errorf("values round trip = %v, want %v", got.Values, r.Values)
	}
	if got.Stage != r.Stage || got.Mode != r.Mode || got.Backend != r.Backend || got.PosID != r.PosID || got.Head != r.Head {
		t.Errorf("round trip = %+v, want %+v", got, r)
	}
}

func TestExampleRecordInDocParses(t *testing.T) {
	line := `{"prompt_id":"llama3-8b/f16/S=129/auto","phase":"decode0","layer":0,` +
		`"head":0,"stage":"q_proj","pos_id":128,"seq_len_used":129,` +
		`"dtype":"f16","shape":[1,4],"values":[0.125,-1.5,"NaN","+Inf"],` +
		`"mode":"chained","backend":"rocm"}`
	r, err := ParseRecord([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if r.Stage != stage.QProj || !math.IsNaN(r.Values[2]) || !math.IsInf(r.Values[3], 1) {
		t.Errorf("ParseRecord(doc example) = %+v", r)
	}
}

const good = `{"prompt_id":"p","phase":"decode0","layer":0,"head":0,"stage":"q_proj","pos_id":1,"seq_len_used":2,"dtype":"f16","shape":[2],"values":[1,2]}`

func TestParseErrors(t *testing.T) {
	repl := func(old, new string) string { return strings.Replace(good, old, new, 1) }
	for _, tc := range []struct {
		name, line, want string
	}{
		{"bad json", `{"prompt_id":`, "bad JSON"},
		{"not object", `[1,2]`, "bad JSON"},
		{"unknown stage", repl(`"q_proj"`, `"q"`), `unknown stage "q"`},
		{"bad phase", repl(`"decode0"`, `"decode01"`), "phase"},
		{"bad phase 2", repl(`"decode0"`, `"prefill"`), "phase"},
		{"len mismatch", repl(`[1,2]}`, `[1,2,3]}`), "len(values) = 3"},
		{"missing values", repl(`,"values":[1,2]`, ``), `missing required field "values"`},
		{"missing head", repl(`"head":0,`, ``), `missing required field "head"`},
		{"null values", repl(`[1,2]}`, `null}`), `"values"`},
		{"bad string value", repl(`[1,2]}`, `[1,"inf"]}`), `"inf"`},
		{"huge number", repl(`[1,2]}`, `[1,1e999]}`), "out of float64 range"},
		{"bool value", repl(`[1,2]}`, `[1,true]}`), "values[1]"},
		{"dtype", repl(`"f16"`, `"fp8"`), "dtype"},
		{"mode", repl(`"values"`, `"mode":"both","values"`), "mode"},
		{"whole-row head", repl(`"q_proj"`, `"x_norm"`), "want -1"},
		{"per-head -1", repl(`"head":0`, `"head":-1`), "per-head"},
		{"empty shape", repl(`[2]`, `[]`), "shape is empty"},
		{"negative dim", repl(`[2]`, `[-1,-2]`), "negative"},
		{"huge shape", repl(`[2]`, `[4611686018427387904,4]`), "too large"},
		{"layer", repl(`"layer":0`, `"layer":-3`), "layer"},
		{"fractional layer", repl(`"layer":0`, `"layer":0.5`), "bad JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRecord([]byte(tc.line))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseRecord(%s) = %v, want error containing %q", tc.line, err, tc.want)
			}
		})
	}
}

func TestReaderFileLine(t *testing.T) {
	in := good + "\n\n" + good + "\n" + strings.Replace(good, `"q_proj"`, `"qq"`, 1) + "\n"
	r := NewReader(strings.NewReader(in), "t.jsonl")
	for i, wantLine := range []int{1, 3} {
		rec, err := r.Read()
		if err != nil {
			t.Fatalf("Read() #%d = %v", i, err)
		}
		if rec.Source.Line != wantLine || rec.Source.String() != "t.jsonl:"+string(rune('0'+wantLine)) {
			t.Errorf("record %d Source = %v, want t.jsonl:%d", i, rec.Source, wantLine)
		}
	}
	_, err := r.Read()
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Pos.Line != 4 || !strings.HasPrefix(err.Error(), "t.jsonl:4: ") {
		t.Fatalf("Read() = %v, want a ParseError at t.jsonl:4", err)
	}
	// No trailing newline: the last line still counts.
	r = NewReader(strings.NewReader(good), "x")
	if _, err := r.Read(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(); err != io.EOF {
		t.Errorf("Read() at end = %v, want io.EOF", err)
	}
}

func TestWriterAppendCreatesDirs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "trace.jsonl")
	for i := 0; i < 2; i++ { // the second Append adds to the first
		w, err := Append(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Write(rec("prefill_last", stage.XNorm, -1, 1, 2, math.NaN())); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || !math.IsNaN(rs[1].Values[2]) {
		t.Errorf("ReadFile() = %d records %v, want 2 with a NaN", len(rs), rs)
	}
	bad := rec("prefill_last", stage.XNorm, 0, 1) // whole-row stage needs head -1
	var buf bytes.Buffer
	if err := NewWriter(&buf).Write(bad); err == nil || buf.Len() != 0 {
		t.Errorf("Write(invalid) = %v, wrote %q; want an error and nothing written", err, buf.String())
	}
}

func TestFloatJSON(t *testing.T) {
	for _, x := range []float64{0, -2.5, math.NaN(), math.Inf(1), math.Inf(-1)} {
		b, _ := Float(x).MarshalJSON()
		var f Float
		if err := f.UnmarshalJSON(b); err != nil || !sameFloats([]float64{float64(f)}, []float64{x}) {
			t.Errorf("Float(%v) round trip via %s = %v, %v", x, b, f, err)
		}
	}
}

func TestCompareMetrics(t *testing.T) {
	base := []Record{
		rec("prefill_last", stage.QProj, 0, 3, 4),
		rec("prefill_last", stage.VProj, 0, 1, 1),
		rec("prefill_last", stage.XNorm, -1, 1, 2),
	}
	cand := []Record{
		rec("decode0", stage.QProj, 0, 3, 4.5),   // |Δ| = 0, 0.5: MAE .25, rel L2 .5/5 = .1
		rec("decode0", stage.VProj, 0, 1, 1.001), // rel L2 ~7e-4: below 1e-2
		rec("decode0", stage.XNorm, -1, 1, 2),
	}
	rep, err := Compare(append(base, cand...), DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Groups) != 1 {
		t.Fatalf("Compare() groups = %d, want 1", len(rep.Groups))
	}
	g := rep.Groups[0]
	if !g.HasFirst || g.First != stage.QProj {
		t.Errorf("first divergent = %v (%v), want q_proj", g.First, g.HasFirst)
	}
	// Registry order: x_norm, q_proj, v_proj.
	if len(g.Stages) != 3 || g.Stages[0].Stage != stage.XNorm || g.Stages[2].Stage != stage.VProj {
		t.Fatalf("stages = %+v, want x_norm, q_proj, v_proj", g.Stages)
	}
	q := g.Stages[1]
	if q.MAE != 0.25 || q.MaxAbs != 0.5 || math.Abs(q.RelL2-0.1) > 1e-15 || !q.Diverges {
		t.Errorf("q_proj = %+v, want MAE 0.25, max 0.5, rel L2 0.1, diverges", q)
	}
	if g.Stages[2].Diverges || g.Stages[0].Diverges {
		t.Errorf("x_norm/v_proj diverge: %+v", g.Stages)
	}
	// With -metric mae and a threshold above 0.25 nothing diverges.
	opts := DefaultOptions()
	opts.Metric, opts.Threshold = MetricMAE, 0.3
	if rep, err := CompareSets(base, cand, opts); err != nil || rep.Diverges() {
		t.Errorf("CompareSets(mae > 0.3) diverges=%v err=%v, want no divergence", rep != nil && rep.Diverges(), err)
	}
}

func TestCompareNonFinite(t *testing.T) {
	for _, tc := range []struct {
		name     string
		b, c     float64
		diverges bool
	}{
		{"nan both", math.NaN(), math.NaN(), true},
		{"nan cand", 1, math.NaN(), true},
		{"inf vs finite", math.Inf(1), 1, true},
		{"inf vs -inf", math.Inf(1), math.Inf(-1), true},
		{"same -inf", math.Inf(-1), math.Inf(-1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := []Record{rec("prefill_last", stage.QK, 0, 1, tc.b), rec("decode0", stage.QK, 0, 1, tc.c)}
			opts := DefaultOptions()
			opts.Threshold = 1e300 // only the non-finite rule can trip
			rep, err := Compare(rs, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := rep.Diverges(); got != tc.diverges {
				t.Errorf("Diverges() = %v, want %v (%+v)", got, tc.diverges, rep.Groups[0].Stages[0])
			}
		})
	}
}

func TestCompareProblems(t *testing.T) {
	b := rec("prefill_last", stage.KProj, 0, 1, 2)
	c := rec("decode0", stage.KProj, 0, 1, 2, 3)
	c.PosID = 5
	extra := rec("decode0", stage.VProj, 0, 1)
	rep, err := Compare([]Record{b, c, extra}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	s := rep.Groups[0].Stages[0]
	if s.ShapeMismatch != 1 || !s.Diverges || !math.IsNaN(s.MAE) {
		t.Errorf("shape mismatch stage = %+v, want diverges with NaN metrics", s)
	}
	if len(rep.Unpaired) != 1 || rep.Unpaired[0].Key.Stage != stage.VProj || len(rep.Warnings) != 2 {
		t.Errorf("unpaired = %v, warnings = %v; want v_proj unpaired, a pos_id and a shape warning", rep.Unpaired, rep.Warnings)
	}

	dup := b
	dup.Source = Pos{"f", 9}
	if _, err := Compare([]Record{b, dup, c}, DefaultOptions()); err == nil || !strings.Contains(err.Error(), "f:9: duplicate") {
		t.Errorf("Compare(duplicate) = %v, want f:9: duplicate …", err)
	}
	if _, err := Compare([]Record{b}, DefaultOptions()); err == nil || !strings.Contains(err.Error(), "no record pairs") {
		t.Errorf("Compare(no candidate) = %v, want no record pairs", err)
	}
	bad := DefaultOptions()
	bad.Threshold = math.NaN()
	if _, err := Compare([]Record{b, c}, bad); err == nil {
		t.Error("Compare(threshold NaN) = nil error")
	}
}

func TestCompareFilters(t *testing.T) {
	var rs []Record
	for _, ph := range []string{"prefill_last", "decode0"} {
		for h := 0; h < 2; h++ {
			r := rec(ph, stage.QProj, h, 1)
			if ph == "decode0" && h == 1 {
				r.Values = []float64{2} // only head 1 diverges
			}
			rs = append(rs, r)
		}
		rs = append(rs, rec(ph, stage.AttnOut, -1, 1))
	}
	zero := 0
	opts := DefaultOptions()
	opts.Head = &zero
	rep, err := Compare(rs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Diverges() || len(rep.Groups[0].Stages) != 2 || rep.Groups[0].Stages[0].Heads != 1 {
		t.Errorf("-head 0: %+v; want q_proj (1 head) and attn_out, no divergence", rep.Groups[0])
	}
	opts.Head = nil
	rep, _ = Compare(rs, opts)
	if st, _, ok := rep.FirstDivergent(); !ok || st != stage.QProj || rep.Groups[0].Stages[0].Heads != 2 {
		t.Errorf("all heads: first = %v %v, want q_proj pooled over 2 heads", st, ok)
	}
	opts.Layer = new(int)
	*opts.Layer = 3
	if _, err := Compare(rs, opts); err == nil {
		t.Error("-layer 3 with no layer-3 records: want an error")
	}
}

func TestFixturesParse(t *testing.T) {
	for _, name := range []string{"clean.jsonl", "faulty.jsonl"} {
		rs, err := ReadFile(filepath.Join("..", "..", "fixtures", "traces", name))
		if err != nil {
			t.Fatal(err)
		}
		rep, err := Compare(rs, DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		st, _, ok := rep.FirstDivergent()
		if name == "clean.jsonl" && ok {
			t.Errorf("%s: first divergent = %v, want none", name, st)
		}
		// faulty.jsonl is the harness's trace of the rope_wrong_layout fault.
		if name == "faulty.jsonl" && (!ok || st != stage.QRope) {
			t.Errorf("%s: first divergent = %v (%v), want q_rope", name, st, ok)
		}
	}
}
