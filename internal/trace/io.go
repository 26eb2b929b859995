package trace

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
)

// ParseError is a malformed trace line, with its position.
type ParseError struct {
	Pos Pos
	Err error
}

func (e *ParseError) Error() string { return fmt.Sprintf("%v: %v", e.Pos, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// Reader reads records from a JSONL trace, one per line.
type Reader struct {
	name string
	br   *bufio.Reader
	line int
}

// NewReader returns a Reader over r; name is the file name used in errors.
func NewReader(r io.Reader, name string) *Reader {
	return &Reader{name: name, br: bufio.NewReaderSize(r, 1<<16)}
}

// Read returns the next record, io.EOF after the last one, or a *ParseError
// naming file:line. Lines are not length-limited: a kv_cache record of a long
// prompt is megabytes.
func (r *Reader) Read() (Record, error) {
	for {
		line, err := r.br.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			if err == io.EOF {
				return Record{}, io.EOF
			}
			return Record{}, &ParseError{Pos{r.name, r.line + 1}, err}
		}
		r.line++
		if len(bytes.TrimSpace(line)) == 0 {
			if err != nil {
				return Record{}, io.EOF
			}
			continue
		}
		rec, perr := ParseRecord(line)
		if perr != nil {
			return Record{}, &ParseError{Pos{r.name, r.line}, perr}
		}
		rec.Source = Pos{r.name, r.line}
		return rec, nil
	}
}

// ReadAll reads every record up to EOF, stopping at the first error.
func (r *Reader) ReadAll() ([]Record, error) {
	var out []Record
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, rec)
	}
}

// ReadFile reads every record of the trace at path.
func ReadFile(path string) ([]Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return NewReader(f, path).ReadAll()
}

// Writer appends records to a trace. It is safe for concurrent use, and
// writes each record with one Write call, so that parallel subtests (or,
// with [Append], several processes on one file) never interleave lines.
type Writer struct {
	mu sync.Mutex
	w  io.Writer
	c  io.Closer
}

// NewWriter returns a Writer onto w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Append opens path for appending, creating it and its parent directories
// if needed. Appending (not truncating) lets one trace collect every case of
// a test run; delete the file first for a fresh one.
func Append(path string) (*Writer, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &Writer{w: f, c: f}, nil
}

// Write validates rec and writes it as one line.
func (w *Writer) Write(rec Record) error {
	if err := rec.Validate(); err != nil {
		return fmt.Errorf("trace: %s/%s/L%d/h%d/%s: %w", rec.PromptID, rec.Phase, rec.Layer, rec.Head, rec.Stage, err)
	}
	b, err := rec.MarshalJSON()
	if err != nil {
		return err
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	_, err = w.w.Write(b)
	return err
}

// Close closes the file opened by Append; for NewWriter it does nothing.
func (w *Writer) Close() error {
	if w.c == nil {
		return nil
	}
	return w.c.Close()
}
