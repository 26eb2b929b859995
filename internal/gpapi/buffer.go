package gpapi

import (
	"fmt"
	"unsafe"
)

// GuardBytes is the size of the guard regions placed before and after every
// Buffer. 256 keeps the user region as aligned as gp_malloc's own pointer.
const GuardBytes = 256

// guardByte is the guard pattern at byte i of a guard region: position
// dependent, so a kernel that copies a neighbouring guard still shows.
func guardByte(i int) byte { return byte(0x5a ^ (i * 37)) }

// Buffer is device memory with poisoned guard regions on both sides, so
// that an out-of-bounds write by a kernel is detected (CheckGuards) rather
// than silently corrupting a neighbour.
type Buffer struct {
	lib   *Lib
	Name  string  // what the buffer holds, for messages ("q_proj decode out")
	Ptr   uintptr // device pointer to the user region
	Bytes int     // size of the user region
	base  uintptr
}

// Alloc allocates bytes (> 0) of device memory plus the guards and writes
// the guard pattern.
func (l *Lib) Alloc(name string, bytes int) (*Buffer, error) {
	if bytes <= 0 {
		return nil, fmt.Errorf("alloc %s: size %d must be > 0", name, bytes)
	}
	unlock := l.lock(opMalloc)
	var base uintptr
	err := l.check("gp_malloc", l.malloc(&base, uint64(bytes+2*GuardBytes)))
	unlock()
	if err != nil {
		return nil, fmt.Errorf("alloc %s (%d bytes): %w", name, bytes, err)
	}
	b := &Buffer{lib: l, Name: name, Ptr: base + GuardBytes, Bytes: bytes, base: base}
	g := make([]byte, GuardBytes)
	for i := range g {
		g[i] = guardByte(i)
	}
	if err := l.h2d(base, g, false); err != nil {
		return nil, err
	}
	if err := l.h2d(base+GuardBytes+uintptr(bytes), g, false); err != nil {
		return nil, err
	}
	return b, nil
}

// h2d and d2h are one copy each, staged when src or dst is a staging
// chunk (the account counts those bytes apart).
func (l *Lib) h2d(dst uintptr, src []byte, staged bool) error {
	if len(src) == 0 {
		return nil
	}
	defer l.lock(opH2D)()
	l.moved[opH2D] += int64(len(src))
	if staged {
		l.staged[opH2D] += int64(len(src))
	}
	return l.check("gp_memcpy_h2d", l.memcpyH2D(dst, (*byte)(unsafe.Pointer(&src[0])), uint64(len(src))))
}

func (l *Lib) d2h(dst []byte, src uintptr, staged bool) error {
	if len(dst) == 0 {
		return nil
	}
	defer l.lock(opD2H)()
	l.moved[opD2H] += int64(len(dst))
	if staged {
		l.staged[opD2H] += int64(len(dst))
	}
	return l.check("gp_memcpy_d2h", l.memcpyD2H((*byte)(unsafe.Pointer(&dst[0])), src, uint64(len(dst))))
}

// Write copies data (at most Bytes) to the start of the buffer.
func (b *Buffer) Write(data []byte) error {
	if len(data) > b.Bytes {
		return fmt.Errorf("write %s: %d bytes into a %d-byte buffer", b.Name, len(data), b.Bytes)
	}
	if err := b.lib.putBytes(b.Ptr, data); err != nil {
		return fmt.Errorf("write %s: %w", b.Name, err)
	}
	return nil
}

// Read copies the whole user region back.
func (b *Buffer) Read() ([]byte, error) {
	out, err := b.lib.getBytes(b.Ptr, b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", b.Name, err)
	}
	return out, nil
}

// CheckGuards reads both guard regions back and reports the first byte a
// kernel overwrote, as an offset relative to the buffer's start (negative:
// before it) or end.
func (b *Buffer) CheckGuards() error {
	g := make([]byte, GuardBytes)
	if err := b.lib.d2h(g, b.base, false); err != nil {
		return fmt.Errorf("guards of %s: %w", b.Name, err)
	}
	if err := b.checkBefore(g); err != nil {
		return err
	}
	if err := b.lib.d2h(g, b.Ptr+uintptr(b.Bytes), false); err != nil {
		return fmt.Errorf("guards of %s: %w", b.Name, err)
	}
	return b.checkAfter(g)
}

func (b *Buffer) checkBefore(g []byte) error {
	for i := range g {
		if g[i] != guardByte(i) {
			return fmt.Errorf("out-of-bounds write before %s: byte at offset %d overwritten", b.Name, i-GuardBytes)
		}
	}
	return nil
}

func (b *Buffer) checkAfter(g []byte) error {
	for i := range g {
		if g[i] != guardByte(i) {
			return fmt.Errorf("out-of-bounds write past the end of %s (%d bytes): byte at end+%d overwritten", b.Name, b.Bytes, i)
		}
	}
	return nil
}

// Every call into the library costs tens of microseconds and the harness
// holds it alone (one caller at a time): a table of 2584 real-shape cases
// made 1.9 M calls, 60 s held on an H100, most of them guard copies of a
// few hundred bytes. The guarded forms below move a guard, the user region
// and the other guard in one copy.

// AllocFill is Alloc with data (> 0 bytes) as the user region's first
// content: the guards and data in one copy instead of Alloc's two guard
// copies and a Write.
func (l *Lib) AllocFill(name string, data []byte) (*Buffer, error) {
	return l.allocWith(name, len(data), func(b []byte, off int) { copy(b, data[off:]) })
}

// AllocPattern is AllocFill of bytes (> 0, a multiple of len(pattern))
// holding pattern repeated: the poison of a tensor, written straight into
// the copy (no host slice of the whole buffer).
func (l *Lib) AllocPattern(name string, bytes int, pattern []byte) (*Buffer, error) {
	if len(pattern) == 0 || bytes%len(pattern) != 0 {
		return nil, fmt.Errorf("alloc %s: %d bytes is not a whole number of %d-byte patterns", name, bytes, len(pattern))
	}
	return l.allocWith(name, bytes, patternFill(pattern))
}

func (l *Lib) allocWith(name string, bytes int, user func(b []byte, off int)) (*Buffer, error) {
	if bytes <= 0 {
		return nil, fmt.Errorf("alloc %s: size %d must be > 0", name, bytes)
	}
	base := l.pooled(bytes)
	if base == 0 {
		unlock := l.lock(opMalloc)
		err := l.check("gp_malloc", l.malloc(&base, uint64(bytes+2*GuardBytes)))
		unlock()
		if err != nil {
			return nil, fmt.Errorf("alloc %s (%d bytes): %w", name, bytes, err)
		}
	}
	b := &Buffer{lib: l, Name: name, Ptr: base + GuardBytes, Bytes: bytes, base: base}
	if err := l.put(base, bytes+2*GuardBytes, guardedFill(bytes, user)); err != nil {
		b.Free()
		return nil, fmt.Errorf("alloc %s: %w", name, err)
	}
	return b, nil
}

// WriteGuarded writes data (exactly Bytes) and both guards, restoring them,
// in one copy.
func (b *Buffer) WriteGuarded(data []byte) error {
	if len(data) != b.Bytes {
		return fmt.Errorf("write %s: %d bytes into a %d-byte buffer (WriteGuarded writes all of it)", b.Name, len(data), b.Bytes)
	}
	return b.writeGuarded(func(dst []byte, off int) { copy(dst, data[off:]) })
}

// WritePatternGuarded is WriteGuarded of pattern repeated over the buffer
// (Bytes must be a multiple of len(pattern)).
func (b *Buffer) WritePatternGuarded(pattern []byte) error {
	if len(pattern) == 0 || b.Bytes%len(pattern) != 0 {
		return fmt.Errorf("write %s: %d bytes is not a whole number of %d-byte patterns", b.Name, b.Bytes, len(pattern))
	}
	return b.writeGuarded(patternFill(pattern))
}

func (b *Buffer) writeGuarded(user func(dst []byte, off int)) error {
	if err := b.lib.put(b.base, b.Bytes+2*GuardBytes, guardedFill(b.Bytes, user)); err != nil {
		return fmt.Errorf("write %s: %w", b.Name, err)
	}
	return nil
}

// ReadGuarded copies the guards and the user region back in one copy and
// returns the user region, with CheckGuards's error if a guard changed.
func (b *Buffer) ReadGuarded() ([]byte, error) {
	n := b.Bytes
	user := make([]byte, n)
	var before, after [GuardBytes]byte
	err := b.lib.get(b.base, n+2*GuardBytes, func(c []byte, off int) {
		for len(c) > 0 {
			var k int
			switch {
			case off < GuardBytes:
				k = copy(before[off:], c)
			case off < GuardBytes+n:
				k = copy(user[off-GuardBytes:], c)
			default:
				k = copy(after[off-GuardBytes-n:], c)
			}
			c, off = c[k:], off+k
		}
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", b.Name, err)
	}
	if err := b.checkBefore(before[:]); err != nil {
		return user, err
	}
	return user, b.checkAfter(after[:])
}

// PoolBytes bounds the device memory Release keeps for AllocFill to reuse:
// a case allocates dozens of buffers and frees them when it ends, and the
// next cases of a table ask for the same sizes (gp_malloc and gp_free are
// two library calls a buffer, and a free synchronizes the device). At 4 GB
// a strict GPU table still made 63 k mallocs and 43 k frees, 5.3 s of the
// library's held time; the GPUs it runs on have 78 GB and more.
const PoolBytes = 12 << 30

// pooled takes a released allocation of exactly bytes (plus guards) from
// the pool, or returns 0.
func (l *Lib) pooled(bytes int) uintptr {
	l.poolMu.Lock()
	defer l.poolMu.Unlock()
	bases := l.pool[bytes]
	if len(bases) == 0 {
		return 0
	}
	base := bases[len(bases)-1]
	l.pool[bytes] = bases[:len(bases)-1]
	l.poolHeld -= bytes + 2*GuardBytes
	return base
}

// Release ends the buffer's use: its memory goes to the pool AllocFill
// reuses (whose one copy rewrites guards and content), or is freed when
// the pool is full. A second Release or Free is a no-op.
func (b *Buffer) Release() error {
	if b == nil || b.base == 0 {
		return nil
	}
	l := b.lib
	l.poolMu.Lock()
	if size := b.Bytes + 2*GuardBytes; l.poolHeld+size <= PoolBytes {
		if l.pool == nil {
			l.pool = map[int][]uintptr{}
		}
		l.pool[b.Bytes] = append(l.pool[b.Bytes], b.base)
		l.poolHeld += size
		b.base, b.Ptr = 0, 0
		l.poolMu.Unlock()
		return nil
	}
	l.poolMu.Unlock()
	return b.Free()
}

// Free releases the buffer; a second Free is a no-op.
func (b *Buffer) Free() error {
	if b == nil || b.base == 0 {
		return nil
	}
	defer b.lib.lock(opFree)()
	err := b.lib.check("gp_free", b.lib.free(b.base))
	b.base, b.Ptr = 0, 0
	return err
}
