package parity

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/harness"
	"github.com/gretacore/parity/internal/model"
	"pgregory.net/rapid"
)

// TestPropertyParity draws random cases (caseGen) and requires each to
// pass. A failure is shrunk by rapid to a minimal case, and its message
// prints the command that replays exactly that case (-parity.replay, the
// case as JSON): it works whether or not rapid wrote a fail file
// (-rapid.nofailfile), on any machine, with no rapid state. rapid's own
// "To reproduce" line (-rapid.failfile or -rapid.seed) replays the whole
// search instead.
func TestPropertyParity(t *testing.T) {
	lib := openLib(t)
	if *flagReplay != "" {
		c, err := parseReplay(*flagReplay)
		if err != nil {
			t.Fatalf("-parity.replay: %v", err)
		}
		c.Contract = contract(t)
		t.Logf("replaying %s", c.Name())
		checkCase(t, lib, c)
		return
	}
	maxHidden, maxS := 1024, 129
	if backendKind == "cpu" && !*flagFull {
		maxHidden, maxS = 320, 65 // a CPU GEMM costs M·N·K: keep the default run short
	}
	gen := caseGen(maxHidden, maxS, libRoutes(lib))
	rapid.Check(t, func(rt *rapid.T) {
		c := gen.Draw(rt, "case")
		c.Contract = contract(t)
		res, err := runCase(rt, lib, c)
		if err != nil {
			rt.Fatalf("%v\nreplay: %s", err, replayCommand(t, c))
		}
		if !res.Pass() {
			rt.Fatalf("decode diverges from prefill\n%s\n%s\nreplay this case: %s", res.Summary(), res.Table(), replayCommand(t, c))
		}
	})
}

// replayCase is a drawn case as -parity.replay takes it.
type replayCase struct {
	Model model.Shape `json:"model"`
	S     int         `json:"s"`
	Steps int         `json:"steps"`
	Pos0  int         `json:"pos0"`
	Dtype string      `json:"dtype"`
	Route string      `json:"route"`
	Dist  string      `json:"dist"`
	Seed  uint64      `json:"seed"`
}

// formatReplay is the JSON of a case for -parity.replay.
func formatReplay(c harness.Case) string {
	b, _ := json.Marshal(replayCase{Model: c.Model, S: c.S, Steps: c.Steps, Pos0: c.PosOffset,
		Dtype: c.Dtype.String(), Route: c.Route.String(), Dist: string(c.Dist), Seed: c.Seed})
	return string(b)
}

// parseReplay is formatReplay's inverse; unknown fields are errors.
func parseReplay(s string) (harness.Case, error) {
	var r replayCase
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return harness.Case{}, err
	}
	dt, err := dtype.Parse(r.Dtype)
	if err != nil {
		return harness.Case{}, err
	}
	route := gpapi.RouteBLAS
	if r.Route != route.String() {
		if route, err = gpapi.ParseRoute(r.Route); err != nil {
			return harness.Case{}, err
		}
	}
	c := harness.Case{Model: r.Model, S: r.S, Steps: r.Steps, PosOffset: r.Pos0, Dtype: dt, Route: route,
		Dist: harness.Dist(r.Dist), Seed: r.Seed}
	return c, c.Validate()
}

// replayCommand is the command that reruns one drawn case: the test's
// rerun command with -parity.replay instead of rapid's search.
func replayCommand(t testing.TB, c harness.Case) string {
	js := formatReplay(c)
	return fmt.Sprintf("%s -parity.replay '%s'", rerunCommand(t), strings.ReplaceAll(js, "'", `'\''`))
}
