package harness

import (
	"strings"
	"testing"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	extast "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/text"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/softkernels"
	"github.com/gretacore/parity/internal/stage"
)

// GFMTables parses markdown as GitHub-flavoured markdown (goldmark with
// its GFM extension) and returns each table's rows as cell texts, header
// first. A table whose header has more cells than its delimiter row is
// not a table to GFM, so it is simply not returned.
func GFMTables(t testing.TB, md string) [][][]string {
	t.Helper()
	src := []byte(md)
	doc := goldmark.New(goldmark.WithExtensions(extension.GFM)).Parser().Parse(text.NewReader(src))
	var tables [][][]string
	err := ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		tb, ok := n.(*extast.Table)
		if !entering || !ok {
			return ast.WalkContinue, nil
		}
		var rows [][]string
		for r := tb.FirstChild(); r != nil; r = r.NextSibling() {
			var cells []string
			for c := r.FirstChild(); c != nil; c = c.NextSibling() {
				var b strings.Builder
				_ = ast.Walk(c, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
					if tx, ok := n.(*ast.Text); ok && entering {
						b.Write(tx.Segment.Value(src))
					}
					if cs, ok := n.(*ast.String); ok && entering {
						b.Write(cs.Value)
					}
					return ast.WalkContinue, nil
				})
				// GFM reads \| in a cell as a literal pipe.
				cells = append(cells, strings.ReplaceAll(b.String(), `\|`, "|"))
			}
			rows = append(rows, cells)
		}
		tables = append(tables, rows)
		return ast.WalkSkipChildren, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tables
}

// TestReportRendersAsGFM: the failure report (report.md) of a real failing
// case parses as GitHub-flavoured markdown into one table with a column
// per header cell on every row — the unescaped "max|Δ|" of the old header
// gave 13 header cells for 11 delimiters, and GitHub rendered no table —
// and the table carries the bound each verdict used and labels the
// chained stages downstream of the fault "carried", not "ok".
func TestReportRendersAsGFM(t *testing.T) {
	lib := softkernels.New()
	if err := lib.SetFault("rope_pos_prev"); err != nil {
		t.Fatal(err)
	}
	c := Case{Model: softModel(t, "tiny-k90"), S: 17, Steps: 1, Dtype: dtype.F16, Route: gpapi.RouteAuto, Seed: 5}
	res := runSoft(t, lib, c)
	if res.Pass() {
		t.Fatal("rope_pos_prev passes on softkernels")
	}
	md := res.Markdown("go test ./parity -run '^TestParity$/^tiny-k90$/^fp16$/^S=17$/^auto$'")
	tables := GFMTables(t, md)
	if len(tables) != 1 {
		t.Fatalf("report.md holds %d GFM tables, want 1:\n%s", len(tables), md)
	}
	rows := tables[0]
	if len(rows) != 1+len(res.Stages) {
		t.Errorf("table has %d rows, want a header and %d stage rows", len(rows), len(res.Stages))
	}
	for i, r := range rows {
		if len(r) != len(tableHeader) {
			t.Errorf("row %d has %d cells, want %d: %q", i, len(r), len(tableHeader), r)
		}
	}
	if got := rows[0][4]; got != "max|Δ|" {
		t.Errorf("header cell 4 renders as %q, want max|Δ|", got)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	verdicts := map[string]string{}
	for _, r := range rows[1:] {
		key := r[col["mode"]] + "/" + r[col["stage"]]
		verdicts[key] = r[col["verdict"]]
		if bound := r[col["bound there: local + carried"]]; r[col["worst |Δ|"]] != "–" && bound == "–" {
			t.Errorf("%s: a differing stage without its bound", key)
		}
	}
	for key, want := range map[string]string{
		"chained/q_rope": "DIVERGES", "isolated/q_rope": "DIVERGES",
		"chained/kv_cache": "carried", "chained/attn_out": "carried",
		"isolated/attn_out": "ok", "chained/q_proj": "ok",
	} {
		if !strings.HasPrefix(verdicts[key], want) {
			t.Errorf("verdict of %s = %q, want %s…", key, verdicts[key], want)
		}
	}
	if !strings.Contains(md, "carried from upstream (chained, decode0): [") {
		t.Errorf("the summary does not name the carried stages:\n%s", md)
	}
}

// TestVerdictCarried: a chained stage that passes only thanks to the
// carried allowance (|Δ| beyond its own budget) is "carried"; the same
// numbers in isolated mode are "ok"; a failure that passes in isolation is
// carried, one that fails there too DIVERGES.
func TestVerdictCarried(t *testing.T) {
	r := &Result{Stages: []StageResult{
		{Stage: stage.QK, Mode: Chained, Margin: 0.2, OwnMargin: 40},
		{Stage: stage.QK, Mode: Isolated, Margin: 0.2, OwnMargin: 0.2},
		{Stage: stage.PV, Mode: Chained, Margin: 3, OwnMargin: 3, Fails: []Check{CheckPair}},
		{Stage: stage.PV, Mode: Isolated},
		{Stage: stage.AttnOut, Mode: Chained, Margin: 3, OwnMargin: 3, Fails: []Check{CheckPair}},
		{Stage: stage.AttnOut, Mode: Isolated, Margin: 3, OwnMargin: 3, Fails: []Check{CheckPair}},
	}}
	for i, want := range []string{"carried", "ok", "carried", "ok", "DIVERGES", "DIVERGES"} {
		if got := r.Verdict(&r.Stages[i]); got != want {
			t.Errorf("stage %d (%v %v): verdict %q, want %q", i, r.Stages[i].Mode, r.Stages[i].Stage, got, want)
		}
	}
}
