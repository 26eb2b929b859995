package signature

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/stage"
	"github.com/gretacore/parity/internal/trace"
)

// hints are the experiments that confirm a fault or tell it from its
// neighbours: knowledge about each shipped fault (what it does), not part
// of its signature.
var hints = map[string]string{
	"gemv_f16_acc":        "force decode's projections onto prefill's GEMM route (here `GRETA_GEMM_FORCE=MFMA`): a decode-GEMV accumulation fault disappears; its error grows with K",
	"splitk_drop_tail":    "needs K % split-K ≠ 0 (tiny-k90: K=90, split 4): a K that is a multiple of the split, or `GRETA_GEMM_FORCE=MFMA`, hides it",
	"bias_skipped":        "needs QKV bias (tiny-qwen, qwen2-7b): decode − prefill at q/k/v_proj is exactly −bias",
	"round_truncate":      "one ulp: only bitwise mode (`GRETA_GEMM_FORCE=MFMA` or `VALU`) sees it; decode is always rounded toward zero",
	"rope_wrong_layout":   "re-apply RoPE to decode's q_proj/k_proj with the other layout (neox vs interleaved): it reproduces decode's q_rope/k_rope",
	"rope_pos_prev":       "re-apply RoPE to decode's q_proj/k_proj at pos_id − 1: it reproduces decode's q_rope/k_rope",
	"rope_pos_zero":       "re-apply RoPE to decode's q_proj/k_proj at position 0: it reproduces decode's q_rope/k_rope",
	"gqa_modulo":          "GQA/MQA only (an MHA model hides it): decode's query head h reads KV head h % n_kv instead of h / group",
	"kv_slot_off":         "the integrity check names the cache row the decode append wrote (a row other than S-1)",
	"scale_missing":       "decode's scores are √head_dim × prefill's on every key",
	"scale_twice":         "decode's scores are prefill's / √head_dim on every key",
	"mask_off_by_one":     "decode's own key is masked: -Inf at the last key (non-finite at qk), the other keys exact",
	"softmax_no_max":      "only scores near the f16 range overflow (dist=large_qk): non-finite softmax; small scores hide it",
	"attn_no_rescale":     "needs more than one KV split (S > 64 here): S ≤ 64 hides it",
	"attn_lse_off_by_one": "the output is right and only the LSE is off: attn_out stays clean",
	"attn_causal_prev":    "the fused kernel drops the query's own key: the unfused qk/softmax/pv stay clean",
	"attn_gqa_modulo":     "GQA only, in the fused kernel: the unfused qk/pv stay clean; an MHA model hides it",
}

// familyHints are the experiments that tell one kernel family from another
// (the family of a fault is the kernel its signatures blame).
var familyHints = map[string]string{
	kernels[stage.QProj]: "force both paths onto one GEMM route (`GRETA_GEMM_FORCE=MFMA`; on the engine, run decode's Q/K/V through prefill's GEMM, the field report's B3.31): a decode-GEMV fault disappears, a fault past the projections stays",
	kernels[stage.QRope]: "compare q/k before RoPE (q_proj, k_proj): clean there and off after RoPE is a RoPE fault; the forced GEMM route leaves it as it is",
}

// section renders the ranking: observed pattern, ranked classes with their
// evidence, what separates a tie, and the verdict. depth is how many
// classes get their evidence spelled out.
func (r *Ranking) section(title string, depth, rows int) string {
	var b strings.Builder
	p := r.Pattern
	fmt.Fprintf(&b, "%s\n\n", title)
	for m := range numModes {
		if len(p.Modes[m]) > 0 {
			fmt.Fprintf(&b, "Observed (%s): %s.\n", Mode(m), p.describe(Mode(m)))
		}
	}
	fmt.Fprintf(&b, "Verdicts: %s.\n", p.Rule)
	if !p.Diverges() {
		b.WriteString("\nNo stage diverges: nothing to explain.\n")
		return b.String()
	}
	if ins := insights(p); len(ins) > 0 {
		b.WriteString("\nReading the pattern:\n")
		for _, s := range ins {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	if len(r.Classes) == 0 {
		b.WriteString("\nThe signature library is empty: run `make signatures`.\n")
		return b.String()
	}
	fmt.Fprintf(&b, "\n| rank | fault | score | family (the kernel its signature blames) | best-matching signature |\n|---:|---|---:|---|---|\n")
	for i, c := range r.Classes {
		if i >= rows {
			fmt.Fprintf(&b, "| … | %d more classes, best score %.2f | | | |\n", len(r.Classes)-i, c.Score)
			break
		}
		for _, m := range c.Members {
			fmt.Fprintf(&b, "| %d | %s | %.2f | %s | %s |\n", i+1, m.Fault, m.Score, r.lib.family(r.lib.fault(m.Fault)), m.Sig.Case)
		}
	}
	b.WriteString("\n")
	for i := 0; i < depth && i < len(r.Classes); i++ {
		r.writeClass(&b, i)
	}
	if len(r.Classes) > 1 && r.Matches() {
		r.writeTellApart(&b)
	}
	if r.Matches() {
		c := r.Classes[0]
		names := classNames(c)
		if len(c.Members) > 1 {
			fmt.Fprintf(&b, "Best match: %s (score %.2f ≥ %.2f), indistinguishable by the per-stage pattern.\n", names, c.Score, r.Threshold)
		} else {
			fmt.Fprintf(&b, "Best match: %s (score %.2f ≥ %.2f).\n", names, c.Score, r.Threshold)
		}
	} else {
		fmt.Fprintf(&b, "No known fault signature matches: the best score is %.2f (%s), below the threshold %.2f. "+
			"This is not one of the shipped faults (or not on the stages given): bisect from the first divergent stage.\n",
			r.Best(), classNames(r.Classes[0]), r.Threshold)
	}
	return b.String()
}

func classNames(c Class) string {
	var n []string
	for _, m := range c.Members {
		n = append(n, m.Fault)
	}
	return strings.Join(n, ", ")
}

// classFamily is the union of its members' families.
func (r *Ranking) classFamily(c Class) string {
	var fams []string
	for _, m := range c.Members {
		for _, f := range strings.Split(r.lib.family(r.lib.fault(m.Fault)), " + ") {
			if !slices.Contains(fams, f) {
				fams = append(fams, f)
			}
		}
	}
	return strings.Join(fams, " + ")
}

// writeClass spells out one class's evidence: the stage evidence (the
// same for every member but for carried-or-not), naming the members each
// contradiction argues against, then the best member's margins and checks.
func (r *Ranking) writeClass(b *strings.Builder, i int) {
	c := r.Classes[i]
	m := c.Members[0]
	fam := r.classFamily(c)
	if len(c.Members) > 1 {
		fmt.Fprintf(b, "%d. **%s** — %s faults, indistinguishable by the per-stage pattern (score %.2f; best: %s)\n", i+1, classNames(c), fam, c.Score, m.Fault)
	} else {
		fmt.Fprintf(b, "%d. **%s** — %s fault (score %.2f, signature %s)\n", i+1, m.Fault, fam, c.Score, m.Sig.Case)
	}
	var agreeDiv, agreeClean, faded []string
	var marginOK, checksOK int
	var against []string
	detail, detailText := map[string][]string{}, map[string]string{}
	var detailOrder []string
	for _, e := range m.Evidence {
		switch e.Kind {
		case AgreeDiverges:
			agreeDiv = append(agreeDiv, modeName(e))
		case AgreeClean:
			agreeClean = append(agreeClean, modeName(e))
		case Faded:
			faded = append(faded, modeName(e))
		case MarginAgrees:
			marginOK++
		case ChecksAgree:
			checksOK++
		case Missing, Unexpected:
			against = append(against, r.contradiction(c, e))
		default:
			// MarginDiffers, ChecksDiffer: one line per difference, the
			// stages it holds at listed together.
			key := e.Kind.String() + e.Text
			if _, ok := detail[key]; !ok {
				detailOrder = append(detailOrder, key)
				detailText[key] = e.Text
			}
			detail[key] = append(detail[key], modeName(e))
		}
	}
	for _, k := range detailOrder {
		against = append(against, fmt.Sprintf("%s: %s", strings.Join(detail[k], ", "), detailText[k]))
	}
	// A member whose signature moves a stage itself where the best
	// member only carries into it (gemv_f16_acc's attn_out against
	// splitk_drop_tail's) is argued against more strongly: say so.
	for _, e := range m.Evidence {
		if e.Kind != Faded {
			continue
		}
		var hard []string
		for _, o := range c.Members[1:] {
			if ev := o.find(e.Mode, e.Obs.Stage); ev != nil && ev.Kind == Missing {
				hard = append(hard, o.Fault)
			}
		}
		if len(hard) > 0 {
			against = append(against, fmt.Sprintf("%s within tolerance (%s): argues against %s, whose signature%s move%s %s in isolation too", e.Obs.name(), e.Mode, strings.Join(hard, ", "), pluralS(len(hard)), plural(len(hard)), e.Obs.Stage))
		}
	}
	if len(agreeDiv) > 0 {
		fmt.Fprintf(b, "   - for: diverges as the signature predicts: %s\n", strings.Join(agreeDiv, ", "))
	}
	if len(agreeClean) > 0 {
		fmt.Fprintf(b, "   - for: within tolerance as the signature predicts: %s\n", strings.Join(agreeClean, ", "))
	}
	if marginOK > 0 || checksOK > 0 {
		what := "margins"
		if r.Pattern.View == Differences {
			what = "rel L2"
		}
		var parts []string
		if marginOK > 0 {
			parts = append(parts, fmt.Sprintf("%s within a decade of the signature's at %d stages", what, marginOK))
		}
		if checksOK > 0 {
			parts = append(parts, fmt.Sprintf("the same failed checks at %d", checksOK))
		}
		fmt.Fprintf(b, "   - for: %s\n", strings.Join(parts, ", "))
	}
	for _, a := range against {
		fmt.Fprintf(b, "   - against: %s\n", a)
	}
	if len(faded) > 0 {
		them := "them"
		if len(faded) == 1 {
			them = "it"
		}
		fmt.Fprintf(b, "   - against (weak): %s within tolerance although the fault carries a difference into %s (a carried difference can fade downstream)\n", strings.Join(faded, ", "), them)
	}
	if len(c.Members) > 1 {
		for _, s := range r.separate(c) {
			fmt.Fprintf(b, "   - tells them apart: %s\n", s)
		}
	} else if h := hints[m.Fault]; h != "" {
		fmt.Fprintf(b, "   - confirm: %s\n", h)
	}
}

// find returns the member's stage evidence at (mode, st), or nil.
func (fm *FaultMatch) find(m Mode, st stage.Stage) *Evidence {
	for i := range fm.Evidence {
		e := &fm.Evidence[i]
		if e.Mode == m && e.Obs.Stage == st && e.Kind <= Faded {
			return e
		}
	}
	return nil
}

// contradiction words a Missing or Unexpected stage for the whole class:
// the members it argues against, and whether their signatures always
// (on every case that ran it) move or spare the stage.
func (r *Ranking) contradiction(c Class, e Evidence) string {
	st, view := e.Obs.Stage, r.Pattern.View
	var names []string
	ran, hit := 0, 0
	for _, m := range c.Members {
		if ev := m.find(e.Mode, st); ev == nil || ev.Kind != e.Kind {
			continue
		}
		names = append(names, m.Fault)
		f := r.lib.fault(m.Fault)
		for i := range f.Signatures {
			s := &f.Signatures[i]
			if s.notRun[st] {
				continue
			}
			ran++
			if s.at(view, e.Mode, st) != nil {
				hit++
			}
		}
	}
	who := strings.Join(names, ", ")
	if e.Kind == Unexpected {
		how := "on its signature's case"
		if ran > 1 && hit == 0 {
			how = "on every case"
		}
		return fmt.Sprintf("%s diverges (%s), but %s leave%s %s within tolerance %s", e.Obs.name(), e.Mode, who, plural(len(names)), st, how)
	}
	how := "(on its signature's case)"
	if ran > 1 && hit == ran {
		how = "always"
	}
	kind := article(r.lib.family(r.lib.fault(names[0]))) + " fault"
	if len(names) > 1 {
		kind = r.classFamily(c) + " faults"
	}
	return fmt.Sprintf("%s within tolerance (%s): argues against %s (%s), whose signature%s %s move%s %s",
		e.Obs.name(), e.Mode, who, kind, pluralS(len(names)), how, plural(len(names)), st)
}

// plural is the verb ending: "s" for one subject.
func plural(n int) string {
	if n == 1 {
		return "s"
	}
	return ""
}

func pluralS(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func modeName(e Evidence) string {
	if e.Mode == Isolated {
		return e.Obs.name() + " (isolated)"
	}
	return e.Obs.name()
}

// separate says what tells the members of a class apart, a few lines of
// each kind: their signatures' margins (or rel L2) and checks at the
// stages observed, the cases that expose one and not another, the stages
// not observed here where their patterns differ, and the hints.
func (r *Ranking) separate(c Class) []string {
	var out []string
	ms := c.Members
	view := r.Pattern.View
	what := "margin"
	if view == Differences {
		what = "rel L2"
	}
	var mags, checks []string
	for mode := range numModes {
		for _, st := range stage.All() {
			if r.Pattern.obs(Mode(mode), st) == nil {
				continue
			}
			var ml, cl []string
			dm, dc := map[Mag]bool{}, map[string]bool{}
			all := true
			for _, m := range ms {
				sd := m.Sig.at(view, mode, st)
				if sd == nil {
					all = false
					break
				}
				g := sd.Margin
				if view == Differences {
					g = sd.RelL2
				}
				ml = append(ml, fmt.Sprintf("%s ~%s", m.Fault, g))
				cl = append(cl, fmt.Sprintf("%s %s", m.Fault, checkList(sd.Checks)))
				dm[g], dc[checkList(sd.Checks)] = true, true
			}
			if !all {
				continue
			}
			if len(dc) > 1 && view == Verdicts {
				checks = append(checks, fmt.Sprintf("the checks that fail at %s (%s): %s", st, Mode(mode), strings.Join(cl, "; ")))
			}
			if len(dm) > 1 {
				mags = append(mags, fmt.Sprintf("the %s at %s (%s) on their signatures' cases: %s", what, st, Mode(mode), strings.Join(ml, "; ")))
			}
		}
	}
	out = append(out, first(checks, 2)...)
	out = append(out, first(mags, 1)...)

	// Exposure and pattern differences across the library's cases.
	exposed := map[variant]map[string]*Signature{}
	tried := map[variant]map[string]bool{}
	var order []variant
	note := func(v variant, fault string, s *Signature) {
		if tried[v] == nil {
			tried[v], exposed[v] = map[string]bool{}, map[string]*Signature{}
			order = append(order, v)
		}
		tried[v][fault] = true
		if s != nil {
			exposed[v][fault] = s
		}
	}
	for _, m := range ms {
		f := r.lib.fault(m.Fault)
		for i := range f.Signatures {
			s := &f.Signatures[i]
			note(caseVariant(s.Case), f.Fault, s)
		}
		for _, ne := range f.NotExposed {
			note(caseVariant(ne), f.Fault, nil)
		}
	}
	var exposure []string
	for _, v := range order {
		var yes, no []string
		for _, m := range ms {
			if !tried[v][m.Fault] {
				continue
			}
			if exposed[v][m.Fault] != nil {
				yes = append(yes, m.Fault)
			} else {
				no = append(no, m.Fault)
			}
		}
		if len(yes) > 0 && len(no) > 0 {
			exposure = append(exposure, fmt.Sprintf("on %s only %s diverge%s (not %s)", v, strings.Join(yes, ", "), plural(len(yes)), strings.Join(no, ", ")))
		}
	}
	out = append(out, first(exposure, 2)...)
	// Stages not observed here whose verdicts differ between the members
	// exposed on one case: text -> cases.
	more := map[string][]string{}
	var moreOrder []string
	for _, v := range order {
		for mode := range numModes {
			for _, st := range stage.All() {
				if r.Pattern.obs(Mode(mode), st) != nil {
					continue
				}
				var yes, no []string
				for _, m := range ms {
					s := exposed[v][m.Fault]
					if s == nil || s.notRun[st] {
						continue
					}
					if s.at(view, mode, st) != nil {
						yes = append(yes, m.Fault)
					} else {
						no = append(no, m.Fault)
					}
				}
				if len(yes) == 0 || len(no) == 0 {
					continue
				}
				t := fmt.Sprintf("%s (%s) diverges for %s, not for %s", st, Mode(mode), strings.Join(yes, ", "), strings.Join(no, ", "))
				if len(more[t]) == 0 {
					moreOrder = append(moreOrder, t)
				}
				more[t] = append(more[t], v.String())
			}
		}
	}
	var mo []string
	for _, t := range moreOrder {
		mo = append(mo, fmt.Sprintf("observe more stages: %s (on %s)", t, strings.Join(more[t], ", ")))
	}
	out = append(out, first(mo, 3)...)
	for _, m := range ms {
		if h := hints[m.Fault]; h != "" {
			out = append(out, m.Fault+": "+h)
		}
	}
	return out
}

// variant is a signature case without its S and options: model, dtype,
// route ("tiny-k90/f16/mfma").
type variant struct{ model, dtype, route string }

func (v variant) String() string { return v.model + "/" + v.dtype + "/" + v.route }

// caseVariant reads a case name, "tiny-k90/f16/S=9/auto/dist=large_qk".
func caseVariant(name string) variant {
	p := strings.Split(name, "/")
	for len(p) < 4 {
		p = append(p, "")
	}
	return variant{p[0], p[1], p[3]}
}

func first(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// writeTellApart names the experiment that separates the two best classes.
func (r *Ranking) writeTellApart(b *strings.Builder) {
	a, c := r.Classes[0], r.Classes[1]
	fa := r.lib.family(r.lib.fault(a.Members[0].Fault))
	fc := r.lib.family(r.lib.fault(c.Members[0].Fault))
	fmt.Fprintf(b, "To tell #1 (%s) from #2 (%s):\n", classNames(a), classNames(c))
	var lines []string
	for _, f := range []string{fa, fc} {
		if h := familyHints[f]; h != "" && !slices.Contains(lines, h) {
			lines = append(lines, h)
		}
	}
	if len(lines) == 0 || fa == fc {
		lines = nil
		for _, cl := range []Class{a, c} {
			if h := hints[cl.Members[0].Fault]; h != "" {
				lines = append(lines, cl.Members[0].Fault+": "+h)
			}
		}
	}
	if l := r.exposureSplit(a, c); l != "" {
		lines = append(lines, l)
	}
	for _, l := range lines {
		fmt.Fprintf(b, "- %s\n", l)
	}
	b.WriteString("\n")
}

// exposureSplit finds, in the library, the case that best separates two
// classes: every fault of one that was run there diverges, and the most
// faults of the other do not (a forced route preferred).
func (r *Ranking) exposureSplit(a, c Class) string {
	type tally struct{ tried, exposed map[string]bool }
	cases := map[variant]*tally{}
	var order []variant
	for _, cl := range []Class{a, c} {
		for _, m := range cl.Members {
			f := r.lib.fault(m.Fault)
			mark := func(name string, exposed bool) {
				v := caseVariant(name)
				t := cases[v]
				if t == nil {
					t = &tally{map[string]bool{}, map[string]bool{}}
					cases[v] = t
					order = append(order, v)
				}
				t.tried[m.Fault] = true
				t.exposed[m.Fault] = t.exposed[m.Fault] || exposed
			}
			for i := range f.Signatures {
				mark(f.Signatures[i].Case, true)
			}
			for _, ne := range f.NotExposed {
				mark(ne, false)
			}
		}
	}
	best, bestN, bestAuto := "", 0, true
	for _, v := range order {
		t := cases[v]
		for _, pair := range [][2]Class{{a, c}, {c, a}} {
			var yes, no []string
			ok := true
			for _, m := range pair[0].Members {
				if t.tried[m.Fault] {
					if !t.exposed[m.Fault] {
						ok = false
					}
					yes = append(yes, m.Fault)
				}
			}
			auto := v.route == "auto"
			for _, m := range pair[1].Members {
				if !t.tried[m.Fault] || t.exposed[m.Fault] {
					continue
				}
				// On a forced route, only a fault the same shape exposes
				// on AUTO is hidden by the route (not by the shape).
				if au := cases[variant{v.model, v.dtype, "auto"}]; !auto && (au == nil || !au.exposed[m.Fault]) {
					continue
				}
				no = append(no, m.Fault)
			}
			if !ok || len(yes) == 0 || len(no) == 0 || len(no) < bestN || (len(no) == bestN && (auto || !bestAuto)) {
				continue
			}
			how := ""
			if !auto {
				how = fmt.Sprintf(" (both paths forced onto %s: `GRETA_GEMM_FORCE=%s`)", strings.ToUpper(v.route), strings.ToUpper(v.route))
			}
			best = fmt.Sprintf("the library's own runs: on %s%s %s still diverge%s, %s do%s not", v, how,
				strings.Join(yes, ", "), plural(len(yes)), strings.Join(no, ", "), map[bool]string{true: "es", false: ""}[len(no) == 1])
			bestN, bestAuto = len(no), auto
		}
	}
	return best
}

// inputs are the stages each stage reads (internal/harness/stages.go,
// reads); attn_out reads whichever attention stage ran.
var inputs = map[stage.Stage][]stage.Stage{
	stage.QProj: {stage.XNorm}, stage.KProj: {stage.XNorm}, stage.VProj: {stage.XNorm},
	stage.QRope: {stage.QProj}, stage.KRope: {stage.KProj},
	stage.KVCache: {stage.KRope, stage.VProj},
	stage.QK:      {stage.QRope, stage.KVCache}, stage.Softmax: {stage.QK},
	stage.PV: {stage.Softmax, stage.KVCache}, stage.Attn: {stage.QRope, stage.KVCache},
	stage.AttnOut: {stage.PV, stage.Attn},
	// attn_res also reads the layer input x, which is not a stage.
	stage.AttnRes: {stage.AttnOut}, stage.PostNorm: {stage.AttnRes},
	stage.GateProj: {stage.PostNorm}, stage.UpProj: {stage.PostNorm},
	stage.Act: {stage.GateProj, stage.UpProj}, stage.DownProj: {stage.Act},
	stage.MLPRes: {stage.AttnRes, stage.DownProj},
}

// insights reads the pattern itself, without signatures: a stage that
// diverges in isolation, or whose observed inputs are clean, is faulty in
// its own right; k off with v clean points past the projections.
func insights(p *Pattern) []string {
	var out []string
	// kernel -> stages, in first-seen order.
	group := func() (func(k, item string), func() [][2]string) {
		var order []string
		items := map[string][]string{}
		return func(k, item string) {
				if items[k] == nil {
					order = append(order, k)
				}
				items[k] = append(items[k], item)
			}, func() [][2]string {
				var r [][2]string
				for _, k := range order {
					r = append(r, [2]string{k, strings.Join(items[k], ", ")})
				}
				return r
			}
	}
	addIso, iso := group()
	for _, o := range p.Modes[Isolated] {
		if o.Diverges {
			addIso(kernels[o.Stage], o.name())
		}
	}
	for _, g := range iso() {
		out = append(out, fmt.Sprintf("%s diverge%s in isolation (fed prefill's inputs): points at the %s kernel", g[1], plural(strings.Count(g[1], ",")+1), g[0]))
	}
	addCh, ch := group()
	for _, o := range p.Modes[Chained] {
		if !o.Diverges {
			continue
		}
		var clean []string
		allClean := true
		ins := inputs[o.Stage]
		if o.Stage == stage.AttnOut {
			// attn_out reads the fused attention when it ran, else pv.
			ins = ins[:1]
			if p.obs(Chained, stage.Attn) != nil {
				ins = []stage.Stage{stage.Attn}
			}
		}
		for _, in := range ins {
			if io := p.obs(Chained, in); io != nil {
				if io.Diverges {
					allClean = false
				} else {
					clean = append(clean, io.name())
				}
			}
		}
		if allClean && len(clean) > 0 {
			addCh(kernels[o.Stage], o.name())
			for _, c := range clean {
				addCh(kernels[o.Stage]+" inputs", c)
			}
		}
	}
	chg := ch()
	ins := map[string]string{}
	for _, g := range chg {
		ins[g[0]] = g[1]
	}
	for _, g := range chg {
		in, ok := ins[g[0]+" inputs"]
		if !ok {
			continue
		}
		n := strings.Count(g[1], ",") + 1
		var uniq []string
		for _, x := range strings.Split(in, ", ") {
			if !slices.Contains(uniq, x) {
				uniq = append(uniq, x)
			}
		}
		out = append(out, fmt.Sprintf("chained, %s diverge%s while %s input%s %s within tolerance: points at the %s kernel",
			g[1], plural(n), map[bool]string{true: "its", false: "their"}[n == 1], pluralS(len(uniq)), strings.Join(uniq, ", ")+map[bool]string{true: " is", false: " are"}[len(uniq) == 1], g[0]))
	}
	k, v, kp := p.obs(Chained, stage.KRope), p.obs(Chained, stage.VProj), p.obs(Chained, stage.KProj)
	if k != nil && v != nil && k.Diverges && !v.Diverges && (kp == nil || !kp.Diverges) {
		out = append(out, fmt.Sprintf("%s diverges while %s is within tolerance: k and v come out of the same input through projections of the same kind (gp_linear, same route); what k has and v lacks is RoPE", k.name(), v.name()))
	}
	return out
}

// Explain renders the ranking of p as a markdown section.
func (l *Library) Explain(p *Pattern) string {
	return l.Rank(p).section(fmt.Sprintf("### Likely causes: %s (%s)", p.Name, p.Source), 3, 6)
}

// LikelyCauses is the "Likely causes" section of a failure report: the
// result's own pattern (both modes, margins, checks) ranked against the
// embedded signature library.
func LikelyCauses(res *harness.Result) string {
	lib, err := Default()
	if err != nil {
		return "## Likely causes\n\nunavailable: " + err.Error() + "\n"
	}
	p := FromResult(res)
	out := lib.Rank(p).section("## Likely causes (fault signatures, "+Path+")", 2, 3)
	failing, engine := 0, 0
	for i := range res.Stages {
		if s := &res.Stages[i]; !s.OK() {
			failing++
			if s.Within() == "engine" {
				engine++
			}
		}
	}
	if failing > 0 && engine == failing {
		out += "Note: every failing stage is within the engine contract (a rounding-level difference: extra roundings of intermediates), which no shipped fault's signature describes; read the ranking as a pattern match only.\n"
	}
	return out
}

// ExplainTrace ranks every (prompt, layer) of a tracediff report.
func ExplainTrace(rep *trace.Report) (string, error) {
	lib, err := Default()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("\n## Likely causes (fault signatures, " + Path + ")\n")
	for _, p := range FromTrace(rep) {
		b.WriteString("\n" + lib.Explain(p))
	}
	return b.String(), nil
}

// ExplainText parses a typed or pasted pattern (ParsePattern) and ranks
// each of its patterns; diverges reports whether any stage diverges.
func ExplainText(text string, opt PasteOptions) (out string, diverges bool, err error) {
	lib, err := Default()
	if err != nil {
		return "", false, err
	}
	ps, err := ParsePattern(text, opt)
	if err != nil {
		return "", false, err
	}
	var b strings.Builder
	b.WriteString("## Likely causes (fault signatures, " + Path + ")\n")
	for _, g := range groupSame(ps) {
		p := g[0]
		if len(g) > 1 {
			var names []string
			for _, q := range g {
				names = append(names, q.Name)
			}
			p = &Pattern{Name: fmt.Sprintf("%s (the same verdicts; values of %s)", strings.Join(names, ", "), names[0]), Source: g[0].Source, Rule: g[0].Rule, View: g[0].View, Modes: g[0].Modes}
		}
		b.WriteString("\n" + lib.Explain(p))
		diverges = diverges || p.Diverges()
	}
	return b.String(), diverges, nil
}

// groupSame groups patterns whose stage verdicts are identical (the field
// report's two prompts), keeping the first one's values.
func groupSame(ps []*Pattern) [][]*Pattern {
	var out [][]*Pattern
	key := func(p *Pattern) string {
		var b strings.Builder
		for m := range p.Modes {
			for _, o := range p.Modes[m] {
				fmt.Fprintf(&b, "%d:%d:%v ", m, o.Stage, o.Diverges)
			}
		}
		return b.String()
	}
	idx := map[string]int{}
	for _, p := range ps {
		k := key(p)
		if i, ok := idx[k]; ok {
			out[i] = append(out[i], p)
			continue
		}
		idx[k] = len(out)
		out = append(out, []*Pattern{p})
	}
	return out
}
