package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in fixtures/traces")

var fixtures = filepath.Join("..", "..", "fixtures", "traces")

// TestGolden runs tracediff on the sample traces and compares stdout with
// fixtures/traces/*.golden.{md,json}. After changing the output format or the
// samples, rewrite them with: go test ./cmd/tracediff -update
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
		code   int
	}{
		{"clean.golden.md", []string{"clean.jsonl"}, exitOK},
		{"faulty.golden.md", []string{"faulty.jsonl"}, exitDiverges},
		{"clean.by-stage.golden.md", []string{"-by-stage", "clean.jsonl"}, exitOK},
		{"faulty.by-stage.golden.md", []string{"-by-stage", "faulty.jsonl"}, exitDiverges},
		{"clean.golden.json", []string{"-json", "clean.jsonl"}, exitOK},
		{"faulty.golden.json", []string{"-json", "faulty.jsonl"}, exitDiverges},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			args := append([]string(nil), tc.args...)
			args[len(args)-1] = filepath.Join(fixtures, args[len(args)-1])
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr); code != tc.code {
				t.Errorf("tracediff %v = exit %d, want %d; stderr:\n%s", tc.args, code, tc.code, &stderr)
			}
			path := filepath.Join(fixtures, tc.golden)
			if *update {
				if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./cmd/tracediff -update)", err)
			}
			if got := stdout.String(); got != string(want) {
				t.Errorf("tracediff %v output differs from %s (rerun with -update if intended):\n%s", tc.args, path, got)
			}
		})
	}
}

// TestTwoFiles checks that BASE CAND gives the same report as one file with
// both phases: each side takes only its own phase.
func TestTwoFiles(t *testing.T) {
	f := filepath.Join(fixtures, "faulty.jsonl")
	var one, two, stderr bytes.Buffer
	c1 := run([]string{f}, &one, &stderr)
	c2 := run([]string{f, f}, &two, &stderr)
	if c1 != exitDiverges || c2 != exitDiverges || one.String() != two.String() {
		t.Errorf("one file: exit %d, two files: exit %d; outputs equal: %v\n%s", c1, c2, one.String() == two.String(), &stderr)
	}
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const line = `{"prompt_id":"p","phase":"%s","layer":0,"head":0,"stage":"q_proj","pos_id":1,"seq_len_used":2,"dtype":"f16","shape":[2],"values":[1,%s]}` + "\n"

func record(phase, v string) string {
	return strings.Replace(strings.Replace(line, "%s", phase, 1), "%s", v, 1)
}

func TestErrorsAndExitCodes(t *testing.T) {
	good := writeFile(t, "good.jsonl", record("prefill_last", "2")+record("decode0", "2"))
	bad := writeFile(t, "bad.jsonl", record("prefill_last", "2")+`{"prompt_id": "p", "phase"`+"\n")
	nan := writeFile(t, "nan.jsonl", record("prefill_last", "2")+record("decode0", `"NaN"`))
	unpaired := writeFile(t, "unpaired.jsonl", record("prefill_last", "2")+record("decode0", "2")+
		strings.Replace(record("prefill_last", "2"), "q_proj", "v_proj", 1))
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		stderr     string // substring of stderr
		stdoutWant string // substring of stdout
	}{
		{"clean", []string{good}, exitOK, "", "No divergent stage"},
		{"no args", nil, exitUsage, "usage: tracediff", ""},
		{"three args", []string{good, good, good}, exitUsage, "usage", ""},
		{"unknown flag", []string{"-nope", good}, exitUsage, "-nope", ""},
		{"missing file", []string{filepath.Join(t.TempDir(), "none.jsonl")}, exitUsage, "none.jsonl", ""},
		{"malformed line", []string{bad}, exitUsage, "bad.jsonl:2: bad JSON", ""},
		{"malformed cand file", []string{good, bad}, exitUsage, "bad.jsonl:2:", ""},
		{"bad metric", []string{"-metric", "l3", good}, exitUsage, "metric", ""},
		{"bad phase", []string{"-cand", "decode", good}, exitUsage, "phases", ""},
		{"bad layer flag", []string{"-layer", "x", good}, exitUsage, "-layer", ""},
		{"nothing pairs", []string{"-layer", "1", good}, exitUsage, "no record pairs", ""},
		{"nan diverges", []string{nan}, exitDiverges, "", "(1 NaN/Inf)"},
		{"nan json", []string{"-json", nan}, exitDiverges, "", `"mae": "NaN"`},
		{"threshold", []string{"-threshold", "0", "-metric", "max_abs", good}, exitOK, "", "max_abs > 0"},
		{"unpaired warns", []string{unpaired}, exitOK, "", "unpaired prefill_last record p L0 h0 v_proj at "},
		{"strict", []string{"-strict", unpaired}, exitUsage, "-strict: 1 unpaired", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := tc.args
			if tc.name == "nan diverges" {
				args = append([]string{"-by-stage"}, args...)
			}
			code := run(args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) || !strings.Contains(stdout.String(), tc.stdoutWant) {
				t.Errorf("tracediff %v = exit %d, want %d\nstderr (want %q):\n%s\nstdout (want %q):\n%s",
					args, code, tc.code, tc.stderr, &stderr, tc.stdoutWant, &stdout)
			}
		})
	}
}

func TestJSONIsValid(t *testing.T) {
	var stdout, stderr bytes.Buffer
	run([]string{"-json", filepath.Join(fixtures, "faulty.jsonl")}, &stdout, &stderr)
	var v struct {
		FirstDivergent string `json:"first_divergent"`
		Groups         []struct {
			Stages []struct{ Stage string } `json:"stages"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil {
		t.Fatalf("-json output does not parse: %v", err)
	}
	if v.FirstDivergent != "q_rope" || len(v.Groups) != 2 || len(v.Groups[0].Stages) != 12 {
		t.Errorf("-json = %+v, want first_divergent q_rope, 2 groups of 12 stages (the sample holds every stage, attn included)", v)
	}
}
