package parity

import (
	"flag"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// caseTimes records when each table case ran, for the account's line on
// where a run's time went: a model's span (its first case's start to its
// last case's end; on a GPU a model's tail overlaps the next one's start,
// modelGate) and the slowest cases (a model's tail).
var caseTimes struct {
	sync.Mutex
	spans []caseSpan
}

type caseSpan struct {
	name       string
	start, end time.Time
}

// timeCase runs f and records its span under t's name.
func timeCase(t *testing.T, f func()) {
	start := time.Now()
	defer func() {
		caseTimes.Lock()
		caseTimes.spans = append(caseTimes.spans, caseSpan{t.Name(), start, time.Now()})
		caseTimes.Unlock()
	}()
	f()
}

// timingAccount is the account's line on the table's time: "table time:
// 59.1 s; by model: llama3-8b 9.8 s, ...; slowest cases: NAME 4.2 s, ...".
func timingAccount() string {
	caseTimes.Lock()
	spans := append([]caseSpan(nil), caseTimes.spans...)
	caseTimes.Unlock()
	if len(spans) == 0 {
		return ""
	}
	type modelSpan struct {
		name       string
		start, end time.Time
	}
	var models []*modelSpan
	byName := map[string]*modelSpan{}
	first, last := spans[0].start, spans[0].end
	for _, s := range spans {
		parts := strings.Split(s.name, "/")
		m := parts[min(1, len(parts)-1)]
		ms := byName[m]
		if ms == nil {
			ms = &modelSpan{m, s.start, s.end}
			byName[m] = ms
			models = append(models, ms)
		}
		if s.start.Before(ms.start) {
			ms.start = s.start
		}
		if s.end.After(ms.end) {
			ms.end = s.end
		}
		if s.start.Before(first) {
			first = s.start
		}
		if s.end.After(last) {
			last = s.end
		}
	}
	sort.Slice(models, func(i, j int) bool { return models[i].start.Before(models[j].start) })
	var by []string
	for _, m := range models {
		by = append(by, fmt.Sprintf("%s %.1f s", m.name, m.end.Sub(m.start).Seconds()))
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].end.Sub(spans[i].start) > spans[j].end.Sub(spans[j].start) })
	var slow []string
	for _, s := range spans[:min(3, len(spans))] {
		slow = append(slow, fmt.Sprintf("%s %.1f s", strings.TrimPrefix(s.name, "TestParity/"), s.end.Sub(s.start).Seconds()))
	}
	return fmt.Sprintf("table time: %.1f s of cases; by model: %s; slowest cases: %s\n",
		last.Sub(first).Seconds(), strings.Join(by, ", "), strings.Join(slow, ", "))
}

// TestModelGate: model i's cases wait until every case of model i-1 has
// started, or its test ended; the gate is off where it could hold the
// parallel slots the running model needs, or where -run selects subtests
// (a case that never starts would hold the next model forever).
func TestModelGate(t *testing.T) {
	cases := []namedCase{{path: []string{"a", "x"}}, {path: []string{"a", "y"}}, {path: []string{"b", "x"}}, {path: []string{"c", "x"}}}
	restore := func(name string) func() {
		old := testFlag(name)
		return func() { flag.Set(name, old) }
	}
	defer restore("test.parallel")()
	defer restore("test.run")()
	flag.Set("test.parallel", "6")
	flag.Set("test.run", "^TestParity$")
	g := newModelGate(cases)
	if g == nil {
		t.Fatal("no gate for 3 models at -test.parallel=6")
	}
	passed := make(chan int, 3)
	for i := range 3 {
		go func() { g.wait(i); passed <- i }()
	}
	if got := <-passed; got != 0 {
		t.Fatalf("model %d passed first, want 0", got)
	}
	g.started(0)
	select {
	case got := <-passed:
		t.Fatalf("model %d passed with one of model a's two cases started", got)
	case <-time.After(50 * time.Millisecond):
	}
	g.started(0)
	if got := <-passed; got != 1 {
		t.Fatalf("model %d passed after a's cases started, want 1", got)
	}
	g.open(1) // b's test ended before its case started
	if got := <-passed; got != 2 {
		t.Fatalf("model %d passed after b ended, want 2", got)
	}
	g.started(1) // a late start after the end opens nothing twice

	flag.Set("test.parallel", "5")
	if newModelGate(cases) != nil {
		t.Error("a gate at -test.parallel=5 for 3 models: waiting models could hold the slots")
	}
	flag.Set("test.parallel", "64")
	flag.Set("test.run", "^TestParity$/llama3-8b")
	if newModelGate(cases) != nil {
		t.Error("a gate with -run selecting subtests: a case that never starts would hold the next model")
	}
}
