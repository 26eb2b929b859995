package trace

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"

	"github.com/gretacore/parity/internal/stage"
)

// Phase names. Decode steps are "decode0", "decode1", …; use [DecodePhase].
const (
	PhasePrefillLast = "prefill_last" // row S-1 of the prefill pass
	PhaseReference   = "reference"    // the float64 reference
)

// DecodePhase returns the phase name of decode step n, e.g. "decode0".
func DecodePhase(n int) string { return "decode" + strconv.Itoa(n) }

// phaseRE accepts prefill_last, reference and decodeN without leading zeros,
// so that "decode01" and "decode1" cannot name the same step twice.
var phaseRE = regexp.MustCompile(`^(prefill_last|reference|decode(0|[1-9][0-9]{0,8}))$`)

// ValidPhase reports whether p is a phase name the format allows.
func ValidPhase(p string) bool { return phaseRE.MatchString(p) }

// DTypes the format allows: the dtypes a kernel may store its output in.
var dtypes = map[string]bool{"f32": true, "f16": true, "bf16": true}

// Modes: "" (not recorded), chained or isolated.
const (
	ModeChained  = "chained"
	ModeIsolated = "isolated"
)

// Record is one line of a trace: one stage output of one (prompt, phase,
// layer, head). See the package documentation for the field meanings.
type Record struct {
	PromptID   string
	Phase      string
	Layer      int
	Head       int // -1 for whole-row stages
	Stage      stage.Stage
	PosID      int
	SeqLenUsed int
	DType      string
	Shape      []int
	Values     []float64
	Mode       string // optional: "", "chained", "isolated"
	Backend    string // optional

	// The bounds and verdict of the check that wrote the record (optional;
	// the harness writes them on decode records, see the package doc).
	// TolLocal is the pair tolerance of each element, local(decode's
	// inputs) + local(prefill's inputs); TolProp the allowance for
	// carried input differences (chained mode; nil = none). An element
	// passes the pair check when |decode − prefill| ≤ TolLocal + TolProp.
	TolLocal, TolProp []float64
	// Checks are the harness's checks that failed for the stage (pair,
	// bitwise, ref-decode, ref-prefill, fa, non-finite, integrity); Verdict
	// its verdict: ok, carried or DIVERGES ("" = not recorded).
	Checks  []string
	Verdict string

	// Source is where the Reader found the record; zero for records built
	// in memory. It is not written.
	Source Pos
}

// Pos is a position in a trace file.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	if p.File == "" && p.Line == 0 {
		return "<memory>"
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// wire is the JSON form of Record. Required fields are pointers so that a
// missing field is told apart from a zero one.
type wire struct {
	PromptID   *string  `json:"prompt_id"`
	Phase      *string  `json:"phase"`
	Layer      *int     `json:"layer"`
	Head       *int     `json:"head"`
	Stage      *string  `json:"stage"`
	PosID      *int     `json:"pos_id"`
	SeqLenUsed *int     `json:"seq_len_used"`
	DType      *string  `json:"dtype"`
	Shape      *[]int   `json:"shape"`
	Values     *Values  `json:"values"`
	Mode       string   `json:"mode,omitempty"`
	Backend    string   `json:"backend,omitempty"`
	TolLocal   *Values  `json:"tol_local,omitempty"`
	TolProp    *Values  `json:"tol_prop,omitempty"`
	Checks     []string `json:"checks,omitempty"`
	Verdict    string   `json:"verdict,omitempty"`
}

// Verdicts a record may carry (Record.Verdict).
const (
	VerdictOK       = "ok"       // every check passed within the stage's own budget
	VerdictCarried  = "carried"  // chained: the difference is explained by upstream (or fails only chained)
	VerdictDiverges = "DIVERGES" // the stage fails in its own right
)

// Validate reports the first way r breaks the format, or nil. The Writer
// calls it, so the harness cannot write a record the Reader would reject.
func (r *Record) Validate() error {
	if r.PromptID == "" {
		return errors.New("prompt_id is empty")
	}
	if !ValidPhase(r.Phase) {
		return fmt.Errorf("phase %q does not match prefill_last, reference or decode<N>", r.Phase)
	}
	if r.Layer < 0 {
		return fmt.Errorf("layer %d < 0", r.Layer)
	}
	if !r.Stage.Valid() {
		return fmt.Errorf("invalid stage %v", r.Stage)
	}
	if r.Stage.PerHead() {
		if r.Head < 0 {
			return fmt.Errorf("head %d < 0 for per-head stage %s", r.Head, r.Stage)
		}
	} else if r.Head != -1 {
		return fmt.Errorf("head %d for whole-row stage %s, want -1", r.Head, r.Stage)
	}
	if r.PosID < 0 {
		return fmt.Errorf("pos_id %d < 0", r.PosID)
	}
	if r.SeqLenUsed < 0 {
		return fmt.Errorf("seq_len_used %d < 0", r.SeqLenUsed)
	}
	if !dtypes[r.DType] {
		return fmt.Errorf("dtype %q, want f32, f16 or bf16", r.DType)
	}
	if r.Mode != "" && r.Mode != ModeChained && r.Mode != ModeIsolated {
		return fmt.Errorf("mode %q, want chained, isolated or absent", r.Mode)
	}
	n, err := shapeLen(r.Shape)
	if err != nil {
		return err
	}
	if n != len(r.Values) {
		return fmt.Errorf("len(values) = %d, but shape %v holds %d", len(r.Values), r.Shape, n)
	}
	if r.TolLocal != nil && len(r.TolLocal) != n {
		return fmt.Errorf("len(tol_local) = %d, want len(values) = %d", len(r.TolLocal), n)
	}
	if r.TolProp != nil {
		if r.TolLocal == nil {
			return errors.New("tol_prop without tol_local")
		}
		if len(r.TolProp) != n {
			return fmt.Errorf("len(tol_prop) = %d, want len(values) = %d", len(r.TolProp), n)
		}
	}
	switch r.Verdict {
	case "", VerdictOK, VerdictCarried, VerdictDiverges:
	default:
		return fmt.Errorf("verdict %q, want ok, carried, DIVERGES or absent", r.Verdict)
	}
	for _, c := range r.Checks {
		if c == "" {
			return errors.New("checks holds an empty name")
		}
	}
	return nil
}

// shapeLen returns the product of shape, refusing empty shapes, negative
// dimensions and products that overflow int (fuzzed input has all three).
func shapeLen(shape []int) (int, error) {
	if len(shape) == 0 {
		return 0, errors.New("shape is empty")
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d != 0 && n > math.MaxInt32/d {
			return 0, fmt.Errorf("shape %v is too large", shape)
		}
		n *= d
	}
	return n, nil
}

// MarshalJSON writes r in the wire format. It does not validate; the Writer
// does.
func (r Record) MarshalJSON() ([]byte, error) {
	name := r.Stage.String()
	vals := Values(r.Values)
	shape := r.Shape
	if shape == nil {
		shape = []int{}
	}
	w := wire{
		PromptID: &r.PromptID, Phase: &r.Phase, Layer: &r.Layer, Head: &r.Head,
		Stage: &name, PosID: &r.PosID, SeqLenUsed: &r.SeqLenUsed, DType: &r.DType,
		Shape: &shape, Values: &vals, Mode: r.Mode, Backend: r.Backend,
		Checks: r.Checks, Verdict: r.Verdict,
	}
	if r.TolLocal != nil {
		v := Values(r.TolLocal)
		w.TolLocal = &v
	}
	if r.TolProp != nil {
		v := Values(r.TolProp)
		w.TolProp = &v
	}
	return json.Marshal(w)
}

// ParseRecord decodes and validates one trace line. The error carries no
// position; [Reader] adds file:line. It never panics, whatever the input
// (FuzzParse checks that).
func ParseRecord(line []byte) (Record, error) {
	var w wire
	if err := json.Unmarshal(line, &w); err != nil {
		return Record{}, fmt.Errorf("bad JSON: %w", err)
	}
	for _, f := range []struct {
		name    string
		missing bool
	}{
		{"prompt_id", w.PromptID == nil},
		{"phase", w.Phase == nil},
		{"layer", w.Layer == nil},
		{"head", w.Head == nil},
		{"stage", w.Stage == nil},
		{"pos_id", w.PosID == nil},
		{"seq_len_used", w.SeqLenUsed == nil},
		{"dtype", w.DType == nil},
		{"shape", w.Shape == nil},
		{"values", w.Values == nil},
	} {
		if f.missing {
			return Record{}, fmt.Errorf("missing required field %q", f.name)
		}
	}
	st, err := stage.Parse(*w.Stage)
	if err != nil {
		return Record{}, err
	}
	r := Record{
		PromptID: *w.PromptID, Phase: *w.Phase, Layer: *w.Layer, Head: *w.Head,
		Stage: st, PosID: *w.PosID, SeqLenUsed: *w.SeqLenUsed, DType: *w.DType,
		Shape: *w.Shape, Values: []float64(*w.Values), Mode: w.Mode, Backend: w.Backend,
		Checks: w.Checks, Verdict: w.Verdict,
	}
	if w.TolLocal != nil {
		r.TolLocal = []float64(*w.TolLocal)
	}
	if w.TolProp != nil {
		r.TolProp = []float64(*w.TolProp)
	}
	if err := r.Validate(); err != nil {
		return Record{}, err
	}
	return r, nil
}

// Values is a float64 slice whose JSON form writes NaN and ±Inf as the
// strings "NaN", "+Inf" and "-Inf" (JSON numbers cannot hold them).
type Values []float64

// Float is one float64 with the same JSON encoding as an element of Values.
// cmd/tracediff uses it for metrics, which are NaN when a stage produced NaN.
type Float float64

// AppendFloat appends the JSON form of v: the shortest decimal that parses
// back to exactly v, or "NaN", "+Inf", "-Inf" as a JSON string.
func AppendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsNaN(v):
		return append(b, `"NaN"`...)
	case math.IsInf(v, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(v, -1):
		return append(b, `"-Inf"`...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// parseFloat is the inverse of AppendFloat for one JSON value.
func parseFloat(raw []byte) (float64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		switch s {
		case "NaN":
			return math.NaN(), nil
		case "+Inf":
			return math.Inf(1), nil
		case "-Inf":
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("string %q is not a number; only \"NaN\", \"+Inf\" and \"-Inf\" are allowed", s)
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, fmt.Errorf("%s is not a number", raw)
	}
	v, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		// Out of float64 range: a finite number must not turn into Inf
		// silently, or a bad writer would look like a bad kernel.
		return 0, fmt.Errorf("number %s is out of float64 range", n)
	}
	return v, nil
}

// MarshalJSON implements json.Marshaler.
func (v Values) MarshalJSON() ([]byte, error) {
	if v == nil {
		return []byte("[]"), nil
	}
	b := make([]byte, 0, 2+len(v)*12)
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendFloat(b, x)
	}
	return append(b, ']'), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (v *Values) UnmarshalJSON(b []byte) error {
	if string(bytes.TrimSpace(b)) == "null" {
		return errors.New("values is null")
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("values: %w", err)
	}
	out := make([]float64, len(raw))
	for i, r := range raw {
		x, err := parseFloat(r)
		if err != nil {
			return fmt.Errorf("values[%d]: %w", i, err)
		}
		out[i] = x
	}
	*v = out
	return nil
}

// MarshalJSON implements json.Marshaler.
func (f Float) MarshalJSON() ([]byte, error) { return AppendFloat(nil, float64(f)), nil }

// UnmarshalJSON implements json.Unmarshaler.
func (f *Float) UnmarshalJSON(b []byte) error {
	x, err := parseFloat(b)
	if err != nil {
		return err
	}
	*f = Float(x)
	return nil
}
