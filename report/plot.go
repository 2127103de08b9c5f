package report

import (
	"fmt"
	"image/color"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/cl-dev/cl/protocol"
)

// Plot draws top-1 accuracy (%) against the number of classes seen, one line
// per method; an upper bound (the joint head) is grey and dashed. The y axis
// is zoomed to the curves in steps of 10 % so that differences stay visible.
func Plot(r *protocol.Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Class-incremental accuracy, %s", Split(r.Init, r.Inc))
	p.X.Label.Text = "classes seen"
	p.Y.Label.Text = "top-1 accuracy (%)"
	rs := rows(r)
	lo := 100.0
	for _, row := range rs {
		for _, v := range row.metrics.Curve {
			lo = math.Min(lo, v)
		}
	}
	p.Y.Min, p.Y.Max = math.Max(0, math.Floor(lo/10)*10-10), 100
	p.Legend.Top = false
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	for i, row := range rs {
		if len(row.metrics.Curve) < len(r.Increments) {
			return nil, fmt.Errorf("report: %s has %d curve points for %d stages", row.name, len(row.metrics.Curve), len(r.Increments))
		}
		pts := make(plotter.XYs, len(r.Increments))
		seen := 0
		for b, inc := range r.Increments {
			seen += inc
			pts[b].X, pts[b].Y = float64(seen), row.metrics.Curve[b]
		}
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return nil, err
		}
		c := plotutil.Color(i)
		if row.bound {
			c = color.Gray{Y: 80}
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		l.Color, s.Color = c, c
		s.Shape = plotutil.Shape(i)
		p.Add(l, s)
		p.Legend.Add(row.name, l, s)
	}
	return p, nil
}

// PNG writes Plot as a 7 × 4.5 inch PNG image.
func PNG(w io.Writer, r *protocol.Report) error {
	p, err := Plot(r)
	if err != nil {
		return fmt.Errorf("plotting: %w", err)
	}
	wt, err := p.WriterTo(7*vg.Inch, 4.5*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("plotting: %w", err)
	}
	_, err = wt.WriteTo(w)
	return err
}
