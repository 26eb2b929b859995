package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOldTraceFallsBack: a trace written before the bounds fields
// (faulty-nobounds.jsonl, the rope_wrong_layout sample of ABI 2) still
// parses and is judged by the rel-L2 threshold, and the output says so;
// -bounds=false does the same to a trace with bounds. Goldens:
// faulty-nobounds.golden.md (go test ./cmd/tracediff -update rewrites it).
func TestOldTraceFallsBack(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{filepath.Join(fixtures, "faulty-nobounds.jsonl")}, &stdout, &stderr); code != exitDiverges {
		t.Errorf("old trace: exit %d, want %d\n%s", code, exitDiverges, &stderr)
	}
	got := stdout.String()
	for _, want := range []string{"No bounds recorded for these records: a stage diverges when rel_l2 > 0.01", "a fixed threshold, not the harness's bounds", "**First divergent stage: q_rope**"} {
		if !strings.Contains(got, want) {
			t.Errorf("old trace: the output does not say %q:\n%s", want, got)
		}
	}
	path := filepath.Join(fixtures, "faulty-nobounds.golden.md")
	if *update {
		if err := os.WriteFile(path, stdout.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if want, err := os.ReadFile(path); err != nil || string(want) != got {
		t.Errorf("old trace: output differs from %s (%v; go test ./cmd/tracediff -update if intended):\n%s", path, err, got)
	}
	stdout.Reset()
	run([]string{"-bounds=false", filepath.Join(fixtures, "faulty.jsonl")}, &stdout, &stderr)
	if !strings.Contains(stdout.String(), "(-bounds=false: recorded bounds ignored)") {
		t.Errorf("-bounds=false does not say so:\n%s", &stdout)
	}
}

// TestSmallBugByBounds: a decode difference far below the rel-L2 threshold
// (1e-4) but beyond the bound the harness recorded diverges (exit 1, named
// as the first divergent stage with its margin); the threshold rule alone
// (-bounds=false) misses it (exit 0) — the small real bugs tracediff used
// to pass.
func TestSmallBugByBounds(t *testing.T) {
	const base = `{"prompt_id":"p","phase":"prefill_last","layer":0,"head":0,"stage":"q_proj","pos_id":1,"seq_len_used":2,"dtype":"f16","shape":[4],"values":[1,2,3,4],"mode":"isolated"}` + "\n"
	const cand = `{"prompt_id":"p","phase":"decode0","layer":0,"head":0,"stage":"q_proj","pos_id":1,"seq_len_used":2,"dtype":"f16","shape":[4],"values":[1,2,3,4.001],"mode":"isolated","tol_local":[1e-4,1e-4,1e-4,1e-4],"checks":["pair"],"verdict":"DIVERGES"}` + "\n"
	f := writeFile(t, "small.jsonl", base+cand)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-by-stage", f}, &stdout, &stderr); code != exitDiverges {
		t.Errorf("bounded small bug: exit %d, want %d\n%s%s", code, exitDiverges, &stdout, &stderr)
	}
	if out := stdout.String(); !strings.Contains(out, "| q_proj |") || !strings.Contains(out, "| bounds | **DIVERGES** (pair) |") || !strings.Contains(out, "1.00000e+01") {
		t.Errorf("bounded small bug: want q_proj DIVERGES by the bounds with margin 10:\n%s", out)
	}
	stdout.Reset()
	if code := run([]string{"-bounds=false", f}, &stdout, &stderr); code != exitOK {
		t.Errorf("-bounds=false: exit %d, want 0 (rel L2 1.8e-4 < 1e-2)\n%s", code, &stdout)
	}
}
