// Package heatmap draws |Δ| between two stage outputs as a PNG heat map
// (e.g. heads × positions-in-head), so a failing parity case shows at a
// glance whether the error is everywhere, in one head, or in a block of
// columns (a wrong tile of a GEMM route shows as a stripe).
package heatmap

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Colours of the cells that have no place on the colour scale. The scale is
// Moreland's smooth blue-red, which contains neither.
var (
	NaNColor color.Color = color.RGBA{A: 255}         // black
	InfColor color.Color = color.RGBA{G: 200, A: 255} // green
)

const (
	width    = 20 * vg.Centimeter // the whole image
	height   = 12 * vg.Centimeter
	barWidth = 3 * vg.Centimeter // the colour bar and its axis, at the right
	maxCells = 1 << 24           // refuse absurd sizes before allocating
)

// grid adapts row-major values to plotter.GridXYZ: column c is x, row r is y.
type grid struct {
	rows, cols int
	v          []float64
}

func (g grid) Dims() (c, r int)   { return g.cols, g.rows }
func (g grid) Z(c, r int) float64 { return math.Abs(g.v[r*g.cols+c]) }
func (g grid) X(c int) float64    { return float64(c) }
func (g grid) Y(r int) float64    { return float64(r) }

// Axis is one axis of a map: its label and, optionally, the segments its
// indices fall into, each numbered from 0 on its own — the K and V halves
// of a KV cache row (head_dim 16: K0…K15 then V0…V15, not 0…31), or a
// head's output and its LSE. Without segments the indices are numbered
// 0…n-1. The segments' lengths must add up to the axis length.
type Axis struct {
	Label    string
	Segments []Segment
}

// Segment is a named run of indices of an Axis.
type Segment struct {
	Name string // prefix of its tick labels, e.g. "K"
	N    int
}

// WritePNG writes a heat map of |values| to path, creating its directory.
// values is row-major, rows × cols: values[r*cols+c] is drawn at x = c,
// y = r (row 0 at the bottom). rowLabel and colLabel name the axes, e.g.
// "head" and "position in head".
//
// The colour scale runs from 0 to the largest finite |value|. NaN cells are
// drawn black and ±Inf cells green, and the title says how many there are,
// because a NaN is the most important thing on the map and must not be
// mistaken for a small error.
func WritePNG(path, title string, rows, cols int, values []float64, rowLabel, colLabel string) error {
	return WritePNGAxes(path, title, rows, cols, values, Axis{Label: rowLabel}, Axis{Label: colLabel})
}

// WritePNGAxes is WritePNG with segmented axes (see Axis).
func WritePNGAxes(path, title string, rows, cols int, values []float64, rowAxis, colAxis Axis) error {
	if rows <= 0 || cols <= 0 {
		return fmt.Errorf("heatmap: dims %d×%d, want both > 0", rows, cols)
	}
	if rows > maxCells/cols {
		return fmt.Errorf("heatmap: dims %d×%d exceed %d cells", rows, cols, maxCells)
	}
	if len(values) != rows*cols {
		return fmt.Errorf("heatmap: len(values) = %d, want rows×cols = %d×%d = %d", len(values), rows, cols, rows*cols)
	}
	for _, a := range []struct {
		ax Axis
		n  int
	}{{rowAxis, rows}, {colAxis, cols}} {
		if err := a.ax.check(a.n); err != nil {
			return err
		}
	}
	maxAbs, nNaN, nInf := 0.0, 0, 0
	for _, v := range values {
		switch {
		case math.IsNaN(v):
			nNaN++
		case math.IsInf(v, 0):
			nInf++
		default:
			maxAbs = math.Max(maxAbs, math.Abs(v))
		}
	}
	if maxAbs == 0 {
		maxAbs = 1 // all zero (or non-finite): any range draws them as its minimum
	}
	if nNaN > 0 || nInf > 0 {
		title += fmt.Sprintf(" [%d NaN black, %d Inf green]", nNaN, nInf)
	}

	cm := moreland.SmoothBlueRed()
	cm.SetMin(0)
	cm.SetMax(maxAbs)
	hm := plotter.NewHeatMap(grid{rows, cols, values}, cm.Palette(255))
	hm.Min, hm.Max = 0, maxAbs
	hm.NaN, hm.Overflow, hm.Underflow = NaNColor, InfColor, NaNColor

	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = colAxis.label()
	p.Y.Label.Text = rowAxis.label()
	p.Add(hm)
	// Segment boundaries: a thin line between K and V.
	for _, x := range colAxis.bounds() {
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: -0.5}, {X: x, Y: float64(rows) - 0.5}})
		if err == nil {
			l.Color, l.Width = color.Black, vg.Points(1)
			p.Add(l)
		}
	}
	for _, y := range rowAxis.bounds() {
		l, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: y}, {X: float64(cols) - 0.5, Y: y}})
		if err == nil {
			l.Color, l.Width = color.Black, vg.Points(1)
			p.Add(l)
		}
	}
	// Cells are centred on integers; show their full extent.
	p.X.Min, p.X.Max = -0.5, float64(cols)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(rows)-0.5
	p.X.Tick.Marker, p.Y.Tick.Marker = colAxis.ticker(cols), rowAxis.ticker(rows)

	bar := plot.New()
	bar.Title.Text = "|Δ|"
	bar.Add(&plotter.ColorBar{ColorMap: cm, Vertical: true})
	bar.HideX()
	bar.Y.Padding = 0

	img := vgimg.New(width, height)
	dc := draw.New(img)
	p.Draw(draw.Crop(dc, 0, -barWidth, 0, 0))
	bar.Draw(draw.Crop(dc, width-barWidth, -vg.Centimeter/2, 0, 0))

	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, werr := vgimg.PngCanvas{Canvas: img}.WriteTo(f)
	return errors.Join(werr, f.Close())
}

func (a Axis) check(n int) error {
	if len(a.Segments) == 0 {
		return nil
	}
	sum := 0
	for _, s := range a.Segments {
		if s.N <= 0 {
			return fmt.Errorf("heatmap: axis %q: segment %q has %d indices", a.Label, s.Name, s.N)
		}
		sum += s.N
	}
	if sum != n {
		return fmt.Errorf("heatmap: axis %q: segments hold %d indices, the axis %d", a.Label, sum, n)
	}
	return nil
}

// label is the axis label, with the segments' extents when there are
// several: "position in head (K 0..15 | V 0..15)".
func (a Axis) label() string {
	if len(a.Segments) < 2 {
		return a.Label
	}
	parts := make([]string, len(a.Segments))
	for i, s := range a.Segments {
		parts[i] = fmt.Sprintf("%s 0..%d", s.Name, s.N-1)
	}
	return a.Label + " (" + strings.Join(parts, " | ") + ")"
}

// bounds are the positions between segments.
func (a Axis) bounds() []float64 {
	var out []float64
	off := 0
	for i, s := range a.Segments {
		off += s.N
		if i < len(a.Segments)-1 {
			out = append(out, float64(off)-0.5)
		}
	}
	return out
}

func (a Axis) ticker(n int) plot.Ticker {
	if len(a.Segments) == 0 {
		return segTicks{{N: n}}
	}
	return segTicks(a.Segments)
}

// Ticks returns the tick labels of an axis of n indices, by position: what
// the map shows along it (unlabelled ticks left out).
func (a Axis) Ticks(n int) map[int]string {
	out := map[int]string{}
	for _, t := range a.ticker(n).Ticks(-0.5, float64(n)-0.5) {
		if t.Label != "" {
			out[int(t.Value)] = t.Label
		}
	}
	return out
}

// segTicks numbers each segment from 0, its first index prefixed by its
// name ("K0", "2", …, "15", "V0", "2", …, "15"), always labelling both ends
// of each segment so the map shows its real extent, with labels at a round step in between
// and unlabelled ticks at every index of short axes. Indices only: a
// tick at head 2.5 means nothing.
type segTicks []Segment

func (st segTicks) Ticks(min, max float64) []plot.Tick {
	var out []plot.Tick
	off := 0
	for _, s := range st {
		step := labelStep(s.N)
		for i := 0; i < s.N; i++ {
			label := ""
			switch {
			case i == 0:
				label = fmt.Sprintf("%s%d", s.Name, i) // the segment's name on its first index only
			case i == s.N-1 || (i%step == 0 && i < s.N-1-step/2):
				label = fmt.Sprintf("%d", i)
			}
			if label != "" || s.N <= 64 {
				out = append(out, plot.Tick{Value: float64(off + i), Label: label})
			}
		}
		off += s.N
	}
	return out
}

// labelStep is the round step (1, 2, 5, 10, 20, 50, …) that puts at most
// about 8 labels on n indices.
func labelStep(n int) int {
	for step := 1; ; step *= 10 {
		for _, m := range []int{1, 2, 5} {
			if n/(step*m) <= 8 {
				return step * m
			}
		}
	}
}
