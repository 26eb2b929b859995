package harness

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/gretacore/parity/internal/dtype"
	"github.com/gretacore/parity/internal/gpapi"
	"github.com/gretacore/parity/internal/stage"
)

// tensor is a guarded device buffer of n elements of a storage dtype.
type tensor struct {
	buf *gpapi.Buffer
	dt  dtype.Dtype
	n   int
	// poisoned: the buffer holds the poison pattern and intact guards
	// since its allocation (device.alloc), and nothing wrote it since.
	poisoned bool
}

// poison writes the poison pattern and both guards (one copy), unless the
// buffer still holds them from its allocation.
func (t *tensor) poison() error {
	if t.poisoned {
		t.poisoned = false
		return nil
	}
	return t.buf.WritePatternGuarded(t.dt.PoisonBytes(1))
}

func (t *tensor) upload(v []float64) error {
	t.poisoned = false
	return t.buf.Write(t.dt.Encode(v))
}

func (t *tensor) download() ([]byte, error) { return t.buf.Read() }

// device owns the buffers of one case and runs kernels under a watchdog.
type device struct {
	lib     *gpapi.Lib
	timeout time.Duration
	bufs    []*gpapi.Buffer
	// arm, if set, is called before each stage's launch in prefill and
	// decode: the layers mode arms a fault for the head's stages only.
	arm func(st stage.Stage) error
}

// armFor runs the arm hook (if any) before st's launch.
func (d *device) armFor(st stage.Stage) error {
	if d.arm == nil {
		return nil
	}
	if err := d.arm(st); err != nil {
		return fmt.Errorf("%s: %w", st, err)
	}
	return nil
}

// alloc allocates a tensor that holds the poison pattern (guards and
// poison in one copy: gpapi.AllocPattern), so that its first poison() is
// free.
func (d *device) alloc(name string, dt dtype.Dtype, n int) (*tensor, error) {
	b, err := d.lib.AllocPattern(name, n*dt.Size(), dt.PoisonBytes(1))
	if err != nil {
		return nil, err
	}
	d.bufs = append(d.bufs, b)
	return &tensor{buf: b, dt: dt, n: n, poisoned: true}, nil
}

func (d *device) allocPos(name string, pos []int32) (*gpapi.Buffer, error) {
	raw := make([]byte, 4*len(pos))
	for i, p := range pos {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(p))
	}
	b, err := d.lib.AllocFill(name, raw)
	if err != nil {
		return nil, err
	}
	d.bufs = append(d.bufs, b)
	return b, nil
}

func (d *device) free() {
	if hungErr(d.lib) != nil {
		// The stuck call holds the library: freeing would block behind it.
		// The buffers leak with the unusable library.
		d.bufs = nil
		return
	}
	for _, b := range d.bufs {
		b.Release()
	}
	d.bufs = nil
}

// hungKernels remembers a library whose kernel missed its deadline: the
// stuck call still holds it, so every later case fails fast instead of
// hanging behind it.
var hungKernels = struct {
	sync.Mutex
	m map[*gpapi.Lib]error
}{m: map[*gpapi.Lib]error{}}

func hungErr(l *gpapi.Lib) error {
	hungKernels.Lock()
	defer hungKernels.Unlock()
	return hungKernels.m[l]
}

// launch poisons outs, runs f and a synchronize under the watchdog, then
// reads back outs and extra (buffers the kernel writes in part, such as the
// KV cache), in that order, each with its guards (one copy a buffer), and
// fails on a changed guard. what names the stage and path for messages.
func (d *device) launch(what string, outs, extra []*tensor, f func() (gpapi.Launch, error)) (gpapi.Launch, [][]byte, error) {
	if err := hungErr(d.lib); err != nil {
		return gpapi.Launch{}, nil, fmt.Errorf("%s: not run: an earlier kernel hung: %w", what, err)
	}
	for _, t := range outs {
		if err := t.poison(); err != nil {
			return gpapi.Launch{}, nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	for _, t := range extra {
		t.poisoned = false // the kernel writes it
	}
	type result struct {
		l   gpapi.Launch
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := f()
		if err == nil {
			err = d.lib.Synchronize()
		}
		done <- result{l, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(d.timeout):
		err := fmt.Errorf("%s: kernel did not return within %v (watchdog)", what, d.timeout)
		hungKernels.Lock()
		hungKernels.m[d.lib] = err
		hungKernels.Unlock()
		return gpapi.Launch{}, nil, err
	}
	if r.err != nil {
		return gpapi.Launch{}, nil, fmt.Errorf("%s: %w", what, r.err)
	}
	var raw [][]byte
	for _, t := range append(append([]*tensor{}, outs...), extra...) {
		b, err := t.buf.ReadGuarded()
		if err != nil {
			return r.l, nil, fmt.Errorf("%s: %w", what, err)
		}
		raw = append(raw, b)
	}
	return r.l, raw, nil
}

// rowsOf decodes elements [off, off+n) of raw, returning the values, their
// bits and how many still hold the poison pattern (never written).
func rowsOf(dt dtype.Dtype, raw []byte, off, n int) (vals []float64, bits []uint32, unwritten int) {
	sz := dt.Size()
	seg := raw[off*sz : (off+n)*sz]
	vals = dt.Decode(seg)
	bits = make([]uint32, n)
	p := dt.Poison()
	for i := range bits {
		bits[i] = dt.Bits(seg, i)
		if bits[i] == p {
			unwritten++
		}
	}
	return vals, bits, unwritten
}
