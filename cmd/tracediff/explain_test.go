package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExplain covers -explain on a trace, -pattern inline and from stdin,
// and the usage errors.
func TestExplain(t *testing.T) {
	runWith := func(in string, args ...string) (int, string, string) {
		old := stdin
		stdin = strings.NewReader(in)
		defer func() { stdin = old }()
		var out, errb bytes.Buffer
		code := run(args, &out, &errb)
		return code, out.String(), errb.String()
	}
	// The field report's table as a user pastes it (the fixture, prose and all).
	fieldReport, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "field-report", "b3.30-mae.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, in string
		args     []string
		code     int
		want     []string
	}{
		{"sample trace", "", []string{"-explain", filepath.Join(fixtures, "faulty.jsonl")}, exitDiverges,
			[]string{"First divergent stage: q_rope", "## Likely causes", "| 1 | rope_wrong_layout | 1.00 |", "Best match: rope_pos_prev, rope_pos_zero, rope_wrong_layout"}},
		{"clean trace", "", []string{"-explain", filepath.Join(fixtures, "clean.jsonl")}, exitOK,
			[]string{"No stage diverges: nothing to explain"}},
		{"inline pattern", "", []string{"-explain", "-pattern", "q=0.54 k=0.20 v=2.7e-3"}, exitDiverges,
			[]string{"| 1 | rope_wrong_layout |", "v_proj (v) within tolerance (chained): argues against"}},
		{"pattern implies explain", "", []string{"-pattern", "q=0.54 k=0.20 v=2.7e-3"}, exitDiverges,
			[]string{"Best match: rope_pos_prev"}},
		{"stdin table", string(fieldReport), []string{"-explain", "-pattern", "-"}, exitDiverges,
			[]string{"p4_sys, p5_ba (the same verdicts", "Best match: rope_pos_prev, rope_pos_zero, rope_wrong_layout", "GRETA_GEMM_FORCE=MFMA"}},
		{"explicit threshold", "", []string{"-explain", "-threshold", "1e-3", "-pattern", "q=0.54 k=0.20 v=2.7e-3"}, exitDiverges,
			[]string{"value > 0.001 (-threshold)", "diverges: v_proj (v) 0.0027, q_rope (q) 0.54, k_rope (k) 0.2"}},
		{"nothing matches", "", []string{"-explain", "-pattern", "x_norm=0.5 q_proj=0 k_proj=0 v_proj=0"}, exitDiverges,
			[]string{"No known fault signature matches"}},
		{"bad pattern", "", []string{"-explain", "-pattern", "qq=1"}, exitUsage, nil},
		{"pattern and file", "", []string{"-explain", "-pattern", "q=1", "x.jsonl"}, exitUsage, nil},
		{"explain and json", "", []string{"-explain", "-json", filepath.Join(fixtures, "faulty.jsonl")}, exitUsage, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runWith(tc.in, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errs)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
