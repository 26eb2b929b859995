package softkernels

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// goHostMemory stands in for page-locked memory (refdev.Lib) with Go
// slices; failAt > 0 fails that allocation.
type goHostMemory struct {
	mu            sync.Mutex
	allocs, frees int
	failAt        int
}

func (m *goHostMemory) HostAlloc(n int) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.allocs++
	if m.allocs == m.failAt {
		return nil, errors.New("out of page-locked memory")
	}
	return make([]byte, n), nil
}

func (m *goHostMemory) HostFree([]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.frees++
	return nil
}

// pattern returns n bytes that differ from position to position, so that a
// chunk copied to the wrong offset shows.
func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251 + seed)
	}
	return b
}

// TestStagedCopies: with copies staged through chunks smaller than the
// buffers (gpapi.Lib.StageThrough), every guarded and plain copy moves the
// same bytes as an unstaged one, a write past the end is still reported,
// and the account counts the staged bytes. Many goroutines share two
// chunks without mixing their contents.
func TestStagedCopies(t *testing.T) {
	lib := New()
	mem := &goHostMemory{}
	if err := lib.StageThrough(mem, 2, 64); err != nil {
		t.Fatal(err)
	}
	if err := lib.StageThrough(mem, 2, 64); err == nil {
		t.Error("a second StageThrough was accepted")
	}
	data := pattern(1000, 1) // 1512 bytes with guards: 24 chunks
	b, err := lib.AllocFill("a", data)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CheckGuards(); err != nil {
		t.Fatalf("staged AllocFill: %v", err)
	}
	if got, err := b.ReadGuarded(); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("staged ReadGuarded: %v, equal %v", err, bytes.Equal(got, data))
	}
	if got, err := b.Read(); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("staged Read: %v, equal %v", err, bytes.Equal(got, data))
	}
	poison := []byte{0xc1, 0x7f, 0x01, 0xff}
	if err := b.WritePatternGuarded(poison); err != nil {
		t.Fatal(err)
	}
	if got, err := b.ReadGuarded(); err != nil || !bytes.Equal(got, bytes.Repeat(poison, 250)) {
		t.Fatalf("staged WritePatternGuarded, then ReadGuarded: %v, want the pattern repeated", err)
	}
	part := pattern(300, 2)
	if err := b.Write(part); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte{}, part...), bytes.Repeat(poison, 250)[300:]...)
	if got, err := b.Read(); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("staged Write of a prefix, then Read: %v, equal %v", err, bytes.Equal(got, want))
	}
	if _, err := lib.AllocPattern("odd", 1001, poison); err == nil {
		t.Error("AllocPattern accepted 1001 bytes of a 4-byte pattern")
	}

	// A write of one byte past the end, from a larger buffer.
	c, err := lib.AllocPattern("c", 1004, poison)
	if err != nil {
		t.Fatal(err)
	}
	if err := lib.CopyD2D(b.Ptr, c.Ptr, 1001); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReadGuarded(); err == nil || !strings.Contains(err.Error(), "past the end of a") {
		t.Errorf("staged ReadGuarded after a write past the end: %v", err)
	}

	if s := lib.StagedSummary(); !strings.Contains(s, "staged through 2 × 0 MB") {
		t.Errorf("StagedSummary = %q", s)
	}
	if s := lib.HeldSummary(); !strings.Contains(s, "h2d ") || !strings.Contains(s, "(median ≤") || !strings.Contains(s, ", p99 ≤") {
		t.Errorf("HeldSummary gives no median and p99 per kind of call: %q", s)
	}

	// Goroutines share the two chunks.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 16 {
		wg.Go(func() {
			d := pattern(700+g, g)
			buf, err := lib.AllocFill(fmt.Sprint("g", g), d)
			if err != nil {
				errs <- err
				return
			}
			for range 5 {
				if err := buf.WriteGuarded(d); err != nil {
					errs <- err
					return
				}
				if got, err := buf.ReadGuarded(); err != nil || !bytes.Equal(got, d) {
					errs <- fmt.Errorf("goroutine %d: ReadGuarded: %v, equal %v", g, err, bytes.Equal(got, d))
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestStageThroughFails: a chunk that cannot be allocated leaves copies
// unstaged, frees the chunks already allocated and says which one failed.
func TestStageThroughFails(t *testing.T) {
	lib := New()
	mem := &goHostMemory{failAt: 3}
	err := lib.StageThrough(mem, 4, 64)
	if err == nil || !strings.Contains(err.Error(), "chunk 3 of 4") || !strings.Contains(err.Error(), "out of page-locked memory") {
		t.Fatalf("StageThrough with a failing third chunk: %v", err)
	}
	if mem.frees != 2 {
		t.Errorf("freed %d chunks, want the 2 allocated", mem.frees)
	}
	if s := lib.StagedSummary(); !strings.HasPrefix(s, "not staged") {
		t.Errorf("StagedSummary after a failed StageThrough = %q", s)
	}
	if err := lib.StageThrough(mem, 0, 64); err == nil {
		t.Error("StageThrough accepted 0 chunks")
	}
}
