package signature

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/gretacore/parity/internal/stage"
)

// The weights of the evidence (Rank). A stage where diverging is at stake
// (either side diverges) weighs 1; agreeing that a stage is clean weighs
// little, since most faults leave most stages clean; so does an observed
// clean stage the signature only carries an upstream difference into (in
// chained mode a carried difference can fade below the threshold: attention
// averages it, and the field report's pv and attn_out are 10⁴ below its q);
// margins and checks refine a stage verdict that agrees.
const (
	WeightStage    = 1.0
	WeightClean    = 0.25
	WeightFaded    = 0.25
	WeightMargin   = 0.25
	WeightChecks   = 0.25
	MatchThreshold = 0.7 // a ranking whose best score is below it matches nothing
)

// Kind classifies a piece of evidence.
type Kind int

// The kinds of evidence.
const (
	AgreeDiverges Kind = iota // both diverge (for)
	AgreeClean                // both within tolerance (for, weak)
	Unexpected                // observed diverging, the signature leaves it clean (against)
	Missing                   // observed clean, the signature's fault moves it itself (against)
	Faded                     // observed clean, the signature only carries into it (against, weak)
	MarginAgrees              // margins within a decade (for)
	MarginDiffers             // margins more than a decade apart (against)
	ChecksAgree               // the same checks fired (for)
	ChecksDiffer              // other checks fired (partly against)
)

func (k Kind) String() string {
	return [...]string{"agree-diverges", "agree-clean", "unexpected", "missing", "faded", "margin-agrees", "margin-differs", "checks-agree", "checks-differ"}[k]
}

// Evidence is one reason for or against a fault.
type Evidence struct {
	Kind    Kind
	Mode    Mode
	Obs     *Obs
	For     float64 // weight for
	Against float64 // weight against
	Text    string  // for MarginDiffers, ChecksDiffer
}

// FaultMatch is how well one fault's best-matching signature fits.
type FaultMatch struct {
	Fault    string
	Sig      *Signature // the best-matching signature of the fault
	Score    float64    // for / (for + against), 0..1
	Evidence []Evidence
	key      string // stage pattern of Sig over the observed stages
}

// Class is a set of faults the observation cannot tell apart by the
// per-stage pattern: their best signatures agree on every observed stage.
// Their scores may still differ by margins and checks.
type Class struct {
	Members []FaultMatch // best first
	Score   float64      // the best member's
}

// Ranking is the result of Rank.
type Ranking struct {
	Pattern   *Pattern
	Classes   []Class // best first
	Threshold float64
	lib       *Library
}

// Best returns the best score (0 when nothing was compared).
func (r *Ranking) Best() float64 {
	if len(r.Classes) == 0 {
		return 0
	}
	return r.Classes[0].Score
}

// Matches reports whether the best class reaches the threshold.
func (r *Ranking) Matches() bool { return r.Pattern.Diverges() && r.Best() >= r.Threshold }

// Top returns the faults of the best class.
func (r *Ranking) Top() []string {
	if len(r.Classes) == 0 {
		return nil
	}
	var out []string
	for _, m := range r.Classes[0].Members {
		out = append(out, m.Fault)
	}
	return out
}

// ClassOf returns the rank (0-based) of the class holding fault, and the
// fault's match, or -1.
func (r *Ranking) ClassOf(fault string) (int, *FaultMatch) {
	for i := range r.Classes {
		for j := range r.Classes[i].Members {
			if m := &r.Classes[i].Members[j]; m.Fault == fault {
				return i, m
			}
		}
	}
	return -1, nil
}

// Rank scores every fault's signatures against p and groups the faults
// into classes the per-stage pattern cannot separate, best first.
//
// For each observed stage the signature ran, in each observed mode:
// both diverge: WeightStage for (plus WeightMargin for margins within a
// decade of each other, or against; plus WeightChecks split by the overlap
// of the checks that fired, when the input knows them); observed diverging
// where the signature is clean: WeightStage against; observed clean where
// the fault moves the stage itself (isolated, or chained and also
// isolated): WeightStage against; observed clean where the signature only
// carries into it (chained only): WeightFaded against; both clean:
// WeightClean for. The score is for / (for + against); a fault's score is
// that of its best signature. Stages the input does not give, or the
// signature's case did not run, are no evidence either way.
func (l *Library) Rank(p *Pattern) *Ranking {
	r := &Ranking{Pattern: p, Threshold: MatchThreshold, lib: l}
	var all []FaultMatch
	for fi := range l.Faults {
		f := &l.Faults[fi]
		var best *FaultMatch
		for si := range f.Signatures {
			m := l.score(f, &f.Signatures[si], p)
			if best == nil || m.Score > best.Score || (m.Score == best.Score && likeness(m.Sig, p) > likeness(best.Sig, p)) {
				best = &m
			}
		}
		if best != nil {
			all = append(all, *best)
		}
	}
	byKey := map[string]int{}
	for _, m := range all {
		i, ok := byKey[m.key]
		if !ok {
			i = len(r.Classes)
			byKey[m.key] = i
			r.Classes = append(r.Classes, Class{})
		}
		r.Classes[i].Members = append(r.Classes[i].Members, m)
	}
	for i := range r.Classes {
		c := &r.Classes[i]
		slices.SortStableFunc(c.Members, func(a, b FaultMatch) int {
			return cmp.Or(cmp.Compare(b.Score, a.Score), strings.Compare(a.Fault, b.Fault))
		})
		c.Score = c.Members[0].Score
	}
	slices.SortStableFunc(r.Classes, func(a, b Class) int {
		return cmp.Or(cmp.Compare(b.Score, a.Score), strings.Compare(a.Members[0].Fault, b.Members[0].Fault))
	})
	return r
}

// score matches one signature.
func (l *Library) score(f *Fault, s *Signature, p *Pattern) FaultMatch {
	fm := FaultMatch{Fault: f.Fault, Sig: s}
	var key strings.Builder
	var pro, con float64
	add := func(e Evidence) {
		fm.Evidence = append(fm.Evidence, e)
		pro += e.For
		con += e.Against
	}
	for m := range numModes {
		for i := range p.Modes[m] {
			o := &p.Modes[m][i]
			st := o.Stage
			if s.notRun[st] {
				key.WriteByte('-')
				continue
			}
			sd := s.at(p.View, m, st)
			switch {
			case o.Diverges && sd != nil:
				key.WriteByte('1')
				add(Evidence{Kind: AgreeDiverges, Mode: m, Obs: o, For: WeightStage})
				what, om, sm := "margin", o.Margin, sd.Margin
				if p.View == Differences {
					what, om, sm = "rel L2", o.RelL2, sd.RelL2
				}
				if om != "" && sm != "" {
					a, okA := om.decade()
					b, okB := sm.decade()
					switch {
					case !okA || !okB:
					case a-b <= 1 && b-a <= 1:
						add(Evidence{Kind: MarginAgrees, Mode: m, Obs: o, For: WeightMargin})
					default:
						add(Evidence{Kind: MarginDiffers, Mode: m, Obs: o, Against: WeightMargin,
							Text: fmt.Sprintf("%s ~%s, %s's signature ~%s", what, om, f.Fault, sm)})
					}
				}
				if o.HasChecks && p.View == Verdicts {
					j := jaccard(o.Checks, sd.Checks)
					e := Evidence{Kind: ChecksAgree, Mode: m, Obs: o, For: WeightChecks * j, Against: WeightChecks * (1 - j)}
					if j < 1 {
						e.Kind = ChecksDiffer
						e.Text = fmt.Sprintf("fails %s, %s's signature %s", checkList(o.Checks), f.Fault, checkList(sd.Checks))
					}
					add(e)
				}
			case o.Diverges:
				key.WriteByte('0')
				add(Evidence{Kind: Unexpected, Mode: m, Obs: o, Against: WeightStage})
			case sd != nil && m == Chained && s.carriedOnly(p.View, st):
				key.WriteByte('1')
				add(Evidence{Kind: Faded, Mode: m, Obs: o, Against: WeightFaded})
			case sd != nil:
				key.WriteByte('1')
				add(Evidence{Kind: Missing, Mode: m, Obs: o, Against: WeightStage})
			default:
				key.WriteByte('0')
				add(Evidence{Kind: AgreeClean, Mode: m, Obs: o, For: WeightClean})
			}
		}
		key.WriteByte('|')
	}
	fm.key = key.String()
	if pro+con > 0 {
		fm.Score = pro / (pro + con)
	}
	return fm
}

// likeness breaks ties between a fault's signatures: the observation's own
// case first, then its model and dtype, then its model (a harness result's
// and the harness's traces' names are case names, "tiny-k90/f16/S=9/auto").
func likeness(s *Signature, p *Pattern) int {
	switch {
	case s.Case == p.Name:
		return 3
	case strings.HasPrefix(p.Name, s.Model+"/"+s.Dtype+"/"):
		return 2
	case strings.HasPrefix(p.Name, s.Model+"/"):
		return 1
	}
	return 0
}

func article(s string) string {
	if s != "" && strings.ContainsRune("aeiouAEIOU", rune(s[0])) {
		return "an " + s
	}
	return "a " + s
}

func jaccard(a, b []string) float64 {
	if len(a) == 0 && len(b) == 0 {
		return 1
	}
	inter, union := 0, len(b)
	for _, x := range a {
		if slices.Contains(b, x) {
			inter++
		} else {
			union++
		}
	}
	return float64(inter) / float64(union)
}

func checkList(c []string) string {
	if len(c) == 0 {
		return "no check"
	}
	return strings.Join(c, ",")
}

// kernels names the kernel that computes each stage.
var kernels = [stage.Count]string{
	stage.XNorm:    "RMSNorm (gp_rmsnorm)",
	stage.QProj:    "projection (gp_linear)",
	stage.KProj:    "projection (gp_linear)",
	stage.VProj:    "projection (gp_linear)",
	stage.QRope:    "RoPE (gp_rope)",
	stage.KRope:    "RoPE (gp_rope)",
	stage.KVCache:  "KV append (gp_kv_append)",
	stage.QK:       "attention-score (gp_attn_scores)",
	stage.Softmax:  "softmax (gp_softmax)",
	stage.PV:       "P·V (gp_attn_pv)",
	stage.Attn:     "fused-attention (gp_attention)",
	stage.AttnOut:  "projection (gp_linear)",
	stage.AttnRes:  "residual add (gp_residual_add)",
	stage.PostNorm: "RMSNorm (gp_rmsnorm_offset)",
	stage.GateProj: "projection (gp_linear)",
	stage.UpProj:   "projection (gp_linear)",
	stage.Act:      "gated activation (gp_gated_act)",
	stage.DownProj: "projection (gp_linear)",
	stage.MLPRes:   "residual add (gp_residual_add)",
}

// family names the kernels a fault's signatures blame (the stages that fail
// in isolation), e.g. "RoPE (gp_rope)".
func (l *Library) family(f *Fault) string {
	var names []string
	for i := range f.Signatures {
		for _, st := range f.Signatures[i].blamed() {
			if k := kernels[st]; !slices.Contains(names, k) {
				names = append(names, k)
			}
		}
	}
	if len(names) == 0 {
		return "unlocalized"
	}
	return strings.Join(names, " + ")
}
