package harness

import (
	"fmt"
	"time"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/stage"
)

// The frame every run of a case on a library shares (Execute, the chunk
// and batch modes): the plan and the library's declarations, the weights
// on the device, allocation, and the release of every buffer.

// allocFunc allocates a device tensor or panics with allocErr, so that the
// dozens of allocations of a run read one line each; onDevice recovers the
// panic into the run's error, and no panic leaves it.
type allocFunc func(name string, dt dtype.Dtype, n int) *tensor

type allocErr struct{ err error }

func panickingAlloc(d *device) allocFunc {
	return func(name string, dt dtype.Dtype, n int) *tensor {
		t, err := d.alloc(name, dt, n)
		if err != nil {
			panic(allocErr{err})
		}
		return t
	}
}

// onDevice is the frame of a run on lib: the plan and the trace's
// declarations (newTrace), the weights on the device, buffers freed at the
// end, an allocation failure returned as an error. f fills the trace.
func onDevice(lib *gpapi.Lib, c Case, in *Inputs, timeout time.Duration, arm func(stage.Stage) error, f func(d *device, alloc allocFunc, w *weightBufs, p *plan, tr *Trace) error) (err error) {
	if err := hungErr(lib); err != nil {
		return fmt.Errorf("case %s not run: an earlier kernel hung: %w", c.Name(), err)
	}
	p, tr, err := newTrace(lib, c)
	if err != nil {
		return err
	}
	d := &device{lib: lib, timeout: timeout, arm: arm}
	defer d.free()
	defer func() {
		if r := recover(); r != nil {
			ae, ok := r.(allocErr)
			if !ok {
				panic(r)
			}
			err = ae.err
		}
	}()
	w, release, err := weightsOn(lib, in.W, c.Dtype)
	if err != nil {
		return err
	}
	defer release()
	return f(d, panickingAlloc(d), w, &p, tr)
}

// newTrace is the plan of c on lib and an empty trace with what the
// library declares: the stages run and their batch invariance.
func newTrace(lib *gpapi.Lib, c Case) (plan, *Trace, error) {
	p, err := newPlan(lib, c)
	if err != nil {
		return p, nil, fmt.Errorf("case %s: %w", c.Name(), err)
	}
	tr := &Trace{Ran: p.ran, Attention: p.attention}
	if lib.Has(gpapi.CapInvariance) {
		tr.InvarianceDeclared = true
		for _, n := range lib.BatchInvariantStages() {
			if st, err := stage.Parse(n); err == nil {
				tr.Invariant[st] = true
			}
		}
	}
	return p, tr, nil
}

// launchTargets returns where def's launch writes: its outputs (poisoned
// before the launch), or for the cache stage nothing to poison and the
// caches as extra targets, with their contents before the launch, which
// the cache integrity check compares the rows the call must not touch
// against. Every mode (decode, chunked, batched) launches through it.
func launchTargets(def *stageDef, outs *[stage.Count][]*tensor) (o, extra []*tensor, before [2][]byte, err error) {
	if def.kind != outCache {
		return outs[def.st], nil, before, nil
	}
	extra = outs[def.st]
	for i, t := range extra {
		if before[i], err = t.download(); err != nil {
			return nil, nil, before, err
		}
	}
	return nil, extra, before, nil
}
