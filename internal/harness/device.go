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
}

func (t *tensor) poison() error { return t.buf.Write(t.dt.PoisonBytes(t.n)) }

func (t *tensor) upload(v []float64) error { return t.buf.Write(t.dt.Encode(v)) }

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

func (d *device) alloc(name string, dt dtype.Dtype, n int) (*tensor, error) {
	b, err := d.lib.Alloc(name, n*dt.Size())
	if err != nil {
		return nil, err
	}
	d.bufs = append(d.bufs, b)
	return &tensor{buf: b, dt: dt, n: n}, nil
}

func (d *device) allocPos(name string, pos []int32) (*gpapi.Buffer, error) {
	b, err := d.lib.Alloc(name, 4*len(pos))
	if err != nil {
		return nil, err
	}
	d.bufs = append(d.bufs, b)
	raw := make([]byte, 4*len(pos))
	for i, p := range pos {
		binary.LittleEndian.PutUint32(raw[4*i:], uint32(p))
	}
	return b, b.Write(raw)
}

func (d *device) free() {
	if hungErr(d.lib) != nil {
		// The stuck call holds the library: freeing would block behind it.
		// The buffers leak with the unusable library.
		d.bufs = nil
		return
	}
	for _, b := range d.bufs {
		b.Free()
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
// checks the guards of outs and of extra (buffers the kernel writes in part,
// such as the KV cache). what names the stage and path for messages.
func (d *device) launch(what string, outs, extra []*tensor, f func() (gpapi.Launch, error)) (gpapi.Launch, error) {
	if err := hungErr(d.lib); err != nil {
		return gpapi.Launch{}, fmt.Errorf("%s: not run: an earlier kernel hung: %w", what, err)
	}
	for _, t := range outs {
		if err := t.poison(); err != nil {
			return gpapi.Launch{}, fmt.Errorf("%s: %w", what, err)
		}
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
		return gpapi.Launch{}, err
	}
	if r.err != nil {
		return gpapi.Launch{}, fmt.Errorf("%s: %w", what, r.err)
	}
	for _, t := range append(append([]*tensor{}, outs...), extra...) {
		if err := t.buf.CheckGuards(); err != nil {
			return r.l, fmt.Errorf("%s: %w", what, err)
		}
	}
	return r.l, nil
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
