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
	if rows <= 0 || cols <= 0 {
		return fmt.Errorf("heatmap: dims %d×%d, want both > 0", rows, cols)
	}
	if rows > maxCells/cols {
		return fmt.Errorf("heatmap: dims %d×%d exceed %d cells", rows, cols, maxCells)
	}
	if len(values) != rows*cols {
		return fmt.Errorf("heatmap: len(values) = %d, want rows×cols = %d×%d = %d", len(values), rows, cols, rows*cols)
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
	p.X.Label.Text = colLabel
	p.Y.Label.Text = rowLabel
	p.Add(hm)
	// Cells are centred on integers; show their full extent.
	p.X.Min, p.X.Max = -0.5, float64(cols)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(rows)-0.5
	p.X.Tick.Marker, p.Y.Tick.Marker = intTicks{}, intTicks{}

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

// intTicks keeps only the integer ticks of plot.DefaultTicks: rows and
// columns are indices, and a tick at head 2.5 means nothing.
type intTicks struct{}

func (intTicks) Ticks(min, max float64) []plot.Tick {
	var out []plot.Tick
	for _, t := range (plot.DefaultTicks{}).Ticks(min, max) {
		if t.Value != math.Trunc(t.Value) {
			continue
		}
		if t.Label != "" {
			t.Label = fmt.Sprintf("%d", int(t.Value))
		}
		out = append(out, t)
	}
	return out
}
