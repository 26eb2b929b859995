package softkernels

import (
	"bytes"
	"strings"
	"testing"
)

// TestGuardedBufferCalls: gpapi's one-copy forms (AllocFill, WriteGuarded,
// ReadGuarded) keep the guards Alloc and CheckGuards keep, and Release's
// pool hands the same memory to the next AllocFill of that size with its
// new content and intact guards. A guard overwritten through a
// neighbouring buffer's write is reported by ReadGuarded.
func TestGuardedBufferCalls(t *testing.T) {
	lib := New()
	data := []byte("0123456789abcdef")
	b, err := lib.AllocFill("a", data)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.CheckGuards(); err != nil {
		t.Fatalf("AllocFill: %v", err)
	}
	got, err := b.ReadGuarded()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadGuarded = %q, %v; want %q", got, err, data)
	}
	if err := b.WriteGuarded([]byte("short")); err == nil {
		t.Error("WriteGuarded accepted 5 bytes into a 16-byte buffer")
	}
	ptr := b.Ptr
	if err := b.Release(); err != nil {
		t.Fatal(err)
	}
	other := []byte("fedcba9876543210")
	c, err := lib.AllocFill("b", other)
	if err != nil {
		t.Fatal(err)
	}
	if c.Ptr != ptr {
		t.Errorf("AllocFill after Release of the same size: pointer %#x, want the pooled %#x", c.Ptr, ptr)
	}
	if got, err := c.ReadGuarded(); err != nil || !bytes.Equal(got, other) {
		t.Fatalf("pooled buffer: ReadGuarded = %q, %v; want %q", got, err, other)
	}
	// A write of 17 bytes from the start overwrites the first byte of the
	// guard after the user region.
	big, err := lib.AllocFill("big", make([]byte, 17))
	if err != nil {
		t.Fatal(err)
	}
	if err := lib.CopyD2D(c.Ptr, big.Ptr, 17); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadGuarded(); err == nil || !strings.Contains(err.Error(), "past the end of b") {
		t.Errorf("ReadGuarded after a write past the end: %v", err)
	}
	if err := c.WriteGuarded(other); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckGuards(); err != nil {
		t.Errorf("WriteGuarded did not restore the guards: %v", err)
	}
}
