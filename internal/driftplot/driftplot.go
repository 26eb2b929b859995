// Package driftplot draws how a parity margin evolves through the layers of
// a model: margin against layer, one line per stage group (attention, MLP,
// head…), with the pass limit (margin 1) drawn across. A few ulps at one
// layer that grow through the residual stream show as a rising line; a bug
// injected at one layer shows as a step at that layer.
package driftplot

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Floor and Ceil bound the drawn margins on the log axis. A margin of 0
// (decode bit-identical to prefill) has no place on a log scale and is drawn
// at Floor; +Inf and NaN (a non-finite output, an overflow) are drawn at
// Ceil, and the title counts them, so that neither is mistaken for a finite
// value.
const (
	Floor = 1e-4
	Ceil  = 1e4
)

const (
	width  = 20 * vg.Centimeter
	height = 12 * vg.Centimeter
)

// Series is one line of the plot: a name (a stage group, e.g. "attention")
// and its margin at each layer, Margins[i] for layer First+i (0-based). A
// group that runs after the last layer only (the head) starts late.
type Series struct {
	Name    string
	Margins []float64
	First   int
}

// WritePNG writes the drift plot to path, creating its directory. Every
// series must have at least one margin and end at the same layer (First +
// len(Margins)); margins must be ≥ 0 or NaN/+Inf (a margin is a share of
// an error budget).
func WritePNG(path, title string, series []Series) error {
	if len(series) == 0 {
		return errors.New("driftplot: no series")
	}
	layers := series[0].First + len(series[0].Margins)
	nonFinite := 0
	for _, s := range series {
		if s.Name == "" {
			return errors.New("driftplot: a series has no name")
		}
		if len(s.Margins) == 0 {
			return fmt.Errorf("driftplot: series %q has no layers", s.Name)
		}
		if s.First < 0 {
			return fmt.Errorf("driftplot: series %q starts at layer %d < 0", s.Name, s.First)
		}
		if end := s.First + len(s.Margins); end != layers {
			return fmt.Errorf("driftplot: series %q has %d layers from %d, %q has %d from %d: every series ends at the same layer",
				s.Name, len(s.Margins), s.First, series[0].Name, len(series[0].Margins), series[0].First)
		}
		for l, m := range s.Margins {
			switch {
			case math.IsNaN(m) || math.IsInf(m, 1):
				nonFinite++
			case m < 0 || math.IsInf(m, -1):
				return fmt.Errorf("driftplot: series %q layer %d: margin %v < 0", s.Name, l, m)
			}
		}
	}
	if nonFinite > 0 {
		title += fmt.Sprintf(" [%d non-finite, drawn at %g]", nonFinite, Ceil)
	}

	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "layer"
	p.Y.Label.Text = fmt.Sprintf("worst margin (≤ 1 passes; 0 drawn at %g)", Floor)
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = Floor, Ceil
	p.X.Min, p.X.Max = 0, math.Max(1, float64(layers-1))
	p.Legend.Left = true

	limit := plotter.NewFunction(func(float64) float64 { return 1 })
	limit.Color = color.RGBA{R: 200, A: 255}
	limit.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(limit)
	p.Legend.Add("pass limit (margin 1)", limit)

	for i, s := range series {
		pts := make(plotter.XYs, len(s.Margins))
		for l, m := range s.Margins {
			pts[l] = plotter.XY{X: float64(s.First + l), Y: clamp(m)}
		}
		line, marks, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("driftplot: series %q: %w", s.Name, err)
		}
		line.Color = plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i)
		marks.Color = plotutil.Color(i)
		marks.Shape = plotutil.Shape(i)
		p.Add(line, marks)
		p.Legend.Add(s.Name, line, marks)
	}

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("driftplot: %w", err)
	}
	if err := p.Save(width, height, path); err != nil {
		return fmt.Errorf("driftplot: %w", err)
	}
	return nil
}

// clamp maps a margin onto the drawn range [Floor, Ceil].
func clamp(m float64) float64 {
	switch {
	case math.IsNaN(m) || m >= Ceil:
		return Ceil
	case m <= Floor:
		return Floor
	}
	return m
}
