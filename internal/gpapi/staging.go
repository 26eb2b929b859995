package gpapi

import (
	"errors"
	"fmt"
)

// A copy from or to pageable host memory (Go's heap) goes through the
// runtime's own bounce buffer: on an H100 the harness's copies ran at about
// 3.5 GB/s, and a real-shape table moved 89 GB, 32 s of the 47 s it held
// the library (docs/PERFORMANCE.md, "Suite speed"). A copy from page-locked
// memory runs at the link's speed. The library under test has no way to
// allocate it (the ABI has none, and it must not need one), so the harness
// brings its own (HostMemory, the float64 reference's library) and stages
// its larger copies through a few chunks of it: the Go side fills a chunk
// without holding the library, and only the copy itself holds it.

// HostMemory allocates page-locked host memory that the library under test
// copies from and to at the link's speed (refdev.Lib: gprd_host_alloc).
type HostMemory interface {
	HostAlloc(bytes int) ([]byte, error)
	HostFree(b []byte) error
}

// Staging defaults: 32 chunks of 16 MB. A chunk's copy takes about a
// millisecond, long beside a call's ~10 µs, and 32 chunks let that many
// cases fill or drain one while another copies.
const (
	StageChunks     = 32
	StageChunkBytes = 16 << 20
	// stageMinBytes: smaller copies go straight from Go memory, where
	// the bounce costs less than filling a chunk.
	stageMinBytes = 64 << 10
)

type staging struct {
	mem      HostMemory
	chunks   chan []byte // idle chunks
	all      [][]byte
	chunk    int // bytes per chunk
	minBytes int
}

// StageThrough makes every later copy of at least 64 KB (or chunkBytes, if
// less) between host and device go through chunks × chunkBytes of mem's
// page-locked memory, allocated now. On an error nothing is staged and
// what was allocated is freed. A second call is an error.
func (l *Lib) StageThrough(mem HostMemory, chunks, chunkBytes int) error {
	if chunks < 1 || chunkBytes < 1 {
		return fmt.Errorf("StageThrough: %d chunks of %d bytes: both must be > 0", chunks, chunkBytes)
	}
	if l.stage != nil {
		return errors.New("StageThrough: copies are already staged")
	}
	s := &staging{mem: mem, chunks: make(chan []byte, chunks), chunk: chunkBytes, minBytes: min(stageMinBytes, chunkBytes)}
	for range chunks {
		b, err := mem.HostAlloc(chunkBytes)
		if err == nil && len(b) != chunkBytes {
			err = fmt.Errorf("HostAlloc(%d) returned %d bytes", chunkBytes, len(b))
		}
		if err != nil {
			for _, c := range s.all {
				_ = mem.HostFree(c)
			}
			return fmt.Errorf("StageThrough: page-locked chunk %d of %d: %w", len(s.all)+1, chunks, err)
		}
		s.all = append(s.all, b)
		s.chunks <- b
	}
	l.stage = s
	return nil
}

// StagedSummary says how copies moved: "staged through 32 × 16 MB of
// page-locked memory: 54.1 of 55.0 GB h2d, 33.9 of 34.0 GB d2h", or that
// they were not staged.
func (l *Lib) StagedSummary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stage == nil {
		return "not staged (no page-locked memory: copies from and to Go memory)"
	}
	return fmt.Sprintf("staged through %d × %d MB of page-locked memory: %.1f of %.1f GB h2d, %.1f of %.1f GB d2h",
		len(l.stage.all), l.stage.chunk>>20, float64(l.staged[opH2D])/1e9, float64(l.moved[opH2D])/1e9,
		float64(l.staged[opD2H])/1e9, float64(l.moved[opD2H])/1e9)
}

// CopyH2D and CopyD2H are one gp_memcpy call each from or to host memory
// of any kind, never staged: the benchmarks compare Go memory, page-locked
// memory and the staged copies (Buffer.Write, Buffer.Read).
func (l *Lib) CopyH2D(dst uintptr, src []byte) error { return l.h2d(dst, src, false) }

// CopyD2H: see CopyH2D.
func (l *Lib) CopyD2H(dst []byte, src uintptr) error { return l.d2h(dst, src, false) }

// put copies n bytes to dst, the bytes fill writes: fill(b, off) writes
// bytes [off, off+len(b)) of the content. Staged, a chunk at a time.
func (l *Lib) put(dst uintptr, n int, fill func(b []byte, off int)) error {
	s := l.stage
	if s == nil || n < s.minBytes {
		b := make([]byte, n)
		fill(b, 0)
		return l.h2d(dst, b, false)
	}
	for off := 0; off < n; off += s.chunk {
		c := (<-s.chunks)[:min(s.chunk, n-off)]
		fill(c, off)
		err := l.h2d(dst+uintptr(off), c, true)
		s.chunks <- c[:cap(c)]
		if err != nil {
			return err
		}
	}
	return nil
}

// putBytes copies data to dst, staged when large.
func (l *Lib) putBytes(dst uintptr, data []byte) error {
	if s := l.stage; s == nil || len(data) < s.minBytes {
		return l.h2d(dst, data, false)
	}
	return l.put(dst, len(data), func(b []byte, off int) { copy(b, data[off:]) })
}

// get copies n bytes from src and hands them to take: take(b, off)
// receives bytes [off, off+len(b)), valid until it returns.
func (l *Lib) get(src uintptr, n int, take func(b []byte, off int)) error {
	s := l.stage
	if s == nil || n < s.minBytes {
		b := make([]byte, n)
		if err := l.d2h(b, src, false); err != nil {
			return err
		}
		take(b, 0)
		return nil
	}
	for off := 0; off < n; off += s.chunk {
		c := (<-s.chunks)[:min(s.chunk, n-off)]
		err := l.d2h(c, src+uintptr(off), true)
		if err == nil {
			take(c, off)
		}
		s.chunks <- c[:cap(c)]
		if err != nil {
			return err
		}
	}
	return nil
}

// getBytes copies n bytes from src into a new slice, staged when large.
func (l *Lib) getBytes(src uintptr, n int) ([]byte, error) {
	out := make([]byte, n)
	if s := l.stage; s == nil || n < s.minBytes {
		return out, l.d2h(out, src, false)
	}
	return out, l.get(src, n, func(b []byte, off int) { copy(out[off:], b) })
}

// guardedFill returns the fill of guard | user | guard for put, the user
// region's n bytes written by user(b, off).
func guardedFill(n int, user func(b []byte, off int)) func(b []byte, off int) {
	return func(b []byte, off int) {
		for len(b) > 0 {
			var k int
			switch {
			case off < GuardBytes:
				k = min(len(b), GuardBytes-off)
				for i := range k {
					b[i] = guardByte(off + i)
				}
			case off < GuardBytes+n:
				k = min(len(b), GuardBytes+n-off)
				user(b[:k], off-GuardBytes)
			default:
				g := off - GuardBytes - n
				k = min(len(b), GuardBytes-g)
				for i := range k {
					b[i] = guardByte(g + i)
				}
			}
			b, off = b[k:], off+k
		}
	}
}

// patternFill writes pattern repeated from the content's start: bytes
// [off, off+len(b)) of pattern, pattern, ...
func patternFill(pattern []byte) func(b []byte, off int) {
	p := len(pattern)
	return func(b []byte, off int) {
		k := min(p, len(b))
		for i := range k {
			b[i] = pattern[(off+i)%p]
		}
		for ; k < len(b); k *= 2 {
			copy(b[k:], b[:k])
		}
	}
}
