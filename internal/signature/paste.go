package signature

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/gretacore/parity/internal/stage"
)

// RelativeFactor is the pasted-pattern rule: without tolerances, a stage
// whose value is at least this many times smaller than the largest value of
// its pattern (and mode) counts as within tolerance, the others as
// diverged; a value of exactly 0 is within tolerance and NaN/Inf diverges.
// One decade separates "same order as the worst stage" from "noise": the
// field report's v (MAE 2.7e-3) is 200× below its q (0.54), while its k
// (0.20) is within 3×.
const RelativeFactor = 10

// aliases are the short names a pasted pattern may use besides the stage
// registry's. q and k are the vectors attention reads — after RoPE, as in
// the field report, whose Q/K/V traces feed QK — so they map to q_rope and
// k_rope; write q_proj or k_proj for a trace taken before RoPE.
var aliases = map[string]stage.Stage{
	"q": stage.QRope, "k": stage.KRope, "v": stage.VProj,
	"x": stage.XNorm, "norm": stage.XNorm, "rmsnorm": stage.XNorm,
	"kv": stage.KVCache, "cache": stage.KVCache,
	"scores": stage.QK, "q·k": stage.QK, "qkt": stage.QK,
	"probs": stage.Softmax, "p": stage.Softmax,
	"p·v": stage.PV, "p.v": stage.PV,
	"attention": stage.Attn, "flash": stage.Attn,
	"o": stage.AttnOut, "o_proj": stage.AttnOut, "out": stage.AttnOut, "out_proj": stage.AttnOut,
	"post_attention_layernorm": stage.PostNorm, "ffn_norm": stage.PostNorm,
	"gate": stage.GateProj, "up": stage.UpProj, "down": stage.DownProj, "w1": stage.GateProj, "w3": stage.UpProj, "w2": stage.DownProj,
	"swiglu": stage.Act, "geglu": stage.Act, "act_fn": stage.Act,
}

// lookupStage resolves a pasted stage name (case-insensitive).
func lookupStage(name string) (stage.Stage, bool) {
	n := strings.ToLower(strings.TrimSpace(name))
	if st, err := stage.Parse(n); err == nil {
		return st, true
	}
	st, ok := aliases[n]
	return st, ok
}

// PasteOptions configure ParsePattern.
type PasteOptions struct {
	// Threshold, when set (HasThreshold), replaces the relative rule: a
	// value above it diverges.
	Threshold    float64
	HasThreshold bool
}

// ParsePattern reads a pattern a user typed or pasted. Two forms:
//
//   - stage=value (or stage:value) pairs separated by spaces, commas or
//     semicolons, e.g. "q=0.54 k=0.20 v=2.7e-3"; a value may also be a verdict word (ok,
//     clean, pass; diverges, div, fail, bad); the words "chained:" and
//     "isolated:" switch the mode of the pairs after them (default chained:
//     an engine's decode feeds itself);
//   - markdown tables: the field report's (one row per prompt, columns
//     "q MAE", "k MAE", …; other columns are ignored) and tracediff's own
//     (a "(chained)"/"(isolated)" suffix on the prompt sets the mode;
//     -by-stage tables with a Stage column and a Diverges column too).
//     When the text holds a table, text outside tables is ignored, so a
//     whole report can be pasted; rows repeated verbatim (the field report
//     has its table in two languages) count once.
//
// Stage names are the registry's or the aliases above (q, k, v: q_rope,
// k_rope, v_proj). Values are MAE, max|Δ| or any metric; see RelativeFactor
// for how they become verdicts.
func ParsePattern(text string, opt PasteOptions) ([]*Pattern, error) {
	var ps []*Pattern
	var err error
	if tables := findTables(text); len(tables) > 0 {
		ps, err = fromTables(tables)
	} else {
		ps, err = fromPairs(text)
	}
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, errors.New("no stage values found (want stage=value pairs, e.g. 'q=0.54 k=0.20 v=2.7e-3', or a markdown table with stage columns)")
	}
	for _, p := range ps {
		classify(p, opt)
	}
	return ps, nil
}

// classify turns values into verdicts (RelativeFactor or the threshold).
func classify(p *Pattern, opt PasteOptions) {
	if opt.HasThreshold {
		p.Rule = fmt.Sprintf("pasted values: a stage diverges when its value > %g (-threshold)", opt.Threshold)
	} else {
		p.Rule = fmt.Sprintf("pasted values without tolerances: a stage whose value is ≥ %d× below the largest of its row is within tolerance, 0 is within tolerance, NaN/Inf diverges", RelativeFactor)
	}
	for m := range p.Modes {
		maxV := 0.0
		for _, o := range p.Modes[m] {
			if !math.IsNaN(o.Value) && !math.IsInf(o.Value, 0) {
				maxV = math.Max(maxV, math.Abs(o.Value))
			}
		}
		for i := range p.Modes[m] {
			o := &p.Modes[m][i]
			v := math.Abs(o.Value)
			switch {
			case o.fixed:
			case math.IsNaN(o.Value) || math.IsInf(o.Value, 0):
				o.Diverges = true
			case opt.HasThreshold:
				o.Diverges = v > opt.Threshold
			default:
				o.Diverges = v > 0 && v*RelativeFactor > maxV
			}
		}
	}
}

var verdictWords = map[string]bool{
	"ok": false, "clean": false, "pass": false, "no": false, "within": false,
	"diverges": true, "div": true, "fail": true, "bad": true, "yes": true, "x": true,
}

// parseValue reads a value or verdict word; ok false for anything else.
func parseValue(s string) (v float64, verdict int, ok bool) {
	s = strings.Trim(strings.TrimSpace(s), "*`")
	ls := strings.ToLower(s)
	if d, found := verdictWords[strings.TrimPrefix(ls, "**")]; found {
		if d {
			return math.NaN(), 1, true
		}
		return math.NaN(), -1, true
	}
	// tracediff -by-stage writes "**yes** (3 NaN/Inf)".
	if f := strings.Fields(ls); len(f) > 1 {
		if d, found := verdictWords[strings.Trim(f[0], "*")]; found {
			if d {
				return math.NaN(), 1, true
			}
			return math.NaN(), -1, true
		}
	}
	switch ls {
	case "nan":
		return math.NaN(), 0, true
	case "inf", "+inf":
		return math.Inf(1), 0, true
	case "-inf":
		return math.Inf(-1), 0, true
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, 0, false
	}
	return v, 0, true
}

func newObs(st stage.Stage, label, metric string, v float64, verdict int) Obs {
	o := Obs{Stage: st, Label: label, Value: v, Metric: metric}
	if verdict != 0 {
		o.Metric, o.Value, o.Diverges, o.fixed = "", math.NaN(), verdict > 0, true
	}
	return o
}

// add puts o into mode m of p, replacing an earlier value of the stage.
func (p *Pattern) add(m Mode, o Obs) {
	for i := range p.Modes[m] {
		if p.Modes[m][i].Stage == o.Stage {
			p.Modes[m][i] = o
			return
		}
	}
	p.Modes[m] = append(p.Modes[m], o)
	slices.SortStableFunc(p.Modes[m], func(a, b Obs) int { return int(a.Stage) - int(b.Stage) })
}

var pairSep = regexp.MustCompile(`[\s,;]+`)

func fromPairs(text string) ([]*Pattern, error) {
	p := &Pattern{Name: "pasted pattern", Source: "pasted pattern", View: Differences}
	m := Chained
	for _, tok := range pairSep.Split(text, -1) {
		if tok == "" {
			continue
		}
		switch strings.ToLower(strings.TrimSuffix(tok, ":")) {
		case "chained":
			m = Chained
			continue
		case "isolated":
			m = Isolated
			continue
		}
		name, val, ok := strings.Cut(tok, "=")
		if !ok {
			name, val, ok = strings.Cut(tok, ":")
		}
		if !ok || val == "" {
			return nil, fmt.Errorf("%q is not stage=value", tok)
		}
		st, ok := lookupStage(name)
		if !ok {
			return nil, fmt.Errorf("unknown stage %q (stages: %s; aliases: q k v = q_rope k_rope v_proj)", name, strings.Join(stage.Names(), " "))
		}
		v, verdict, ok := parseValue(val)
		if !ok {
			return nil, fmt.Errorf("%s: %q is not a number or a verdict (ok, diverges)", name, val)
		}
		p.add(m, newObs(st, name, "", v, verdict))
	}
	if len(p.Modes[Chained])+len(p.Modes[Isolated]) == 0 {
		return nil, nil
	}
	return []*Pattern{p}, nil
}

// table is a markdown table of a pasted text, with the heading and the
// "Mode: …" line before it (tracediff -by-stage writes both).
type table struct {
	rows    [][]string
	heading string
	mode    Mode
}

var (
	headingLine = regexp.MustCompile(`^#+\s+(.*?)(\s+\(layer \d+\))?$`)
	modeLine    = regexp.MustCompile(`^Mode:\s*(chained|isolated)\b`)
)

// findTables returns the markdown tables of text: runs of lines that start
// with '|', split into cells.
func findTables(text string) []table {
	var tables []table
	var cur table
	flush := func() {
		if len(cur.rows) >= 2 {
			tables = append(tables, cur)
		}
		cur.rows = nil
	}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			flush()
			if m := headingLine.FindStringSubmatch(line); m != nil {
				cur.heading, cur.mode = m[1], Chained
			} else if m := modeLine.FindStringSubmatch(line); m != nil && m[1] == "isolated" {
				cur.mode = Isolated
			}
			continue
		}
		cur.rows = append(cur.rows, splitRow(line))
	}
	flush()
	return tables
}

// splitRow splits a markdown row on unescaped '|'.
func splitRow(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	if strings.HasSuffix(line, "|") && !strings.HasSuffix(line, `\|`) {
		line = line[:len(line)-1]
	}
	var cells []string
	var b strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			b.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(b.String()))
			b.Reset()
		default:
			b.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(b.String()))
}

var separatorRow = regexp.MustCompile(`^:?-+:?$`)

func isSeparator(row []string) bool {
	for _, c := range row {
		if !separatorRow.MatchString(strings.TrimSpace(c)) {
			return false
		}
	}
	return true
}

func clean(cell string) string { return strings.TrimSpace(strings.Trim(strings.TrimSpace(cell), "*`")) }

// headerStage reads a column header such as "q MAE", "x_norm max|Δ|", "v".
func headerStage(h string) (st stage.Stage, label, metric string, ok bool) {
	f := strings.Fields(clean(h))
	if len(f) == 0 {
		return 0, "", "", false
	}
	st, ok = lookupStage(f[0])
	return st, f[0], strings.Join(f[1:], " "), ok
}

var modeSuffix = regexp.MustCompile(`\s*\((chained|isolated)\)\s*$`)

func fromTables(tables []table) ([]*Pattern, error) {
	var out []*Pattern
	byName := map[string]*Pattern{}
	seen := map[string]bool{}
	get := func(name string) *Pattern {
		p := byName[name]
		if p == nil {
			p = &Pattern{Name: name, Source: "pasted pattern", View: Differences}
			byName[name] = p
			out = append(out, p)
		}
		return p
	}
	for _, t := range tables {
		header := t.rows[0]
		rows := t.rows[1:]
		if len(rows) > 0 && isSeparator(rows[0]) {
			rows = rows[1:]
		}
		if strings.EqualFold(clean(header[0]), "stage") {
			name := t.heading
			if name == "" {
				name = "pasted pattern"
			}
			byStageTable(get(name), t.mode, header, rows)
			continue
		}
		type col struct {
			i             int
			st            stage.Stage
			label, metric string
		}
		var cols []col
		for i := 1; i < len(header); i++ {
			if st, label, metric, ok := headerStage(header[i]); ok {
				cols = append(cols, col{i, st, label, metric})
			}
		}
		if len(cols) == 0 {
			continue
		}
		for _, row := range rows {
			if len(row) == 0 || isSeparator(row) {
				continue
			}
			if k := strings.Join(row, "|"); seen[k] {
				continue
			} else {
				seen[k] = true
			}
			name := clean(row[0])
			m := Chained
			if sm := modeSuffix.FindStringSubmatch(name); sm != nil {
				if sm[1] == "isolated" {
					m = Isolated
				}
				name = modeSuffix.ReplaceAllString(name, "")
			}
			if name == "" {
				name = "pasted pattern"
			}
			p := get(name)
			for _, c := range cols {
				if c.i >= len(row) {
					continue
				}
				v, verdict, ok := parseValue(row[c.i])
				if !ok {
					continue // "–": not given
				}
				p.add(m, newObs(c.st, c.label, c.metric, v, verdict))
			}
		}
	}
	var kept []*Pattern
	for _, p := range out {
		if len(p.Modes[Chained])+len(p.Modes[Isolated]) > 0 {
			kept = append(kept, p)
		}
	}
	return kept, nil
}

// byStageTable reads a table with one row per stage (tracediff -by-stage)
// into mode m of p: the Diverges column if there is one, else the first
// numeric column.
func byStageTable(p *Pattern, m Mode, header []string, rows [][]string) {
	verdictCol, valueCol := -1, -1
	metric := ""
	for i := 1; i < len(header); i++ {
		h := strings.ToLower(clean(header[i]))
		switch {
		case h == "diverges" || h == "verdict":
			verdictCol = i
		case valueCol < 0:
			valueCol, metric = i, clean(header[i])
		}
	}
	for _, row := range rows {
		if len(row) == 0 || isSeparator(row) {
			continue
		}
		st, ok := lookupStage(clean(row[0]))
		if !ok {
			continue
		}
		o := Obs{Stage: st, Label: clean(row[0]), Value: math.NaN()}
		if valueCol >= 0 && valueCol < len(row) {
			if v, verdict, ok := parseValue(row[valueCol]); ok && verdict == 0 {
				o.Value, o.Metric = v, metric
			}
		}
		if verdictCol >= 0 && verdictCol < len(row) {
			if _, verdict, ok := parseValue(row[verdictCol]); ok && verdict != 0 {
				o.Diverges, o.fixed = verdict > 0, true
			}
		}
		if o.Metric == "" && !o.fixed {
			continue
		}
		p.add(m, o)
	}
}
