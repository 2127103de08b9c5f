package protocol

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/cl-dev/cl/internal/atomicfile"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

type reportRow struct {
	name    string
	joint   bool
	metrics *Metrics
	seconds float64
}

// rows lists the report's methods and then the joint bound, if any.
func (r *Report) rows() []reportRow {
	var out []reportRow
	for i := range r.Methods {
		m := &r.Methods[i]
		out = append(out, reportRow{m.Method, false, &m.Metrics, m.Seconds})
	}
	if r.Joint != nil {
		out = append(out, reportRow{r.Joint.Method, true, &r.Joint.Metrics, r.Joint.Seconds})
	}
	return out
}

// Split names the split as the survey does: "B0 Inc5" when every stage has
// the same number of classes (init 0, or init = inc as PILOT's init_cls =
// increment configs), "B50 Inc10" for a larger first stage.
func (r *Report) Split() string {
	base := r.Init
	if base == r.Inc {
		base = 0
	}
	return fmt.Sprintf("B%d Inc%d", base, r.Inc)
}

// WriteTable prints the survey-style table: method, Ā, A_B, forgetting (all
// %, two decimals), stages and seconds.
func (r *Report) WriteTable(w io.Writer) error {
	order := "no shuffle"
	if r.Shuffle {
		order = fmt.Sprintf("seed %d", r.Seed)
	}
	fmt.Fprintf(w, "%s, %d stages, %d classes (%s), %d train / %d test rows\n",
		r.Split(), len(r.Increments), len(r.ClassOrder), order, r.TrainRows, r.TestRows)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\tĀ\tA_B\tforgetting\tseconds\t")
	for _, row := range r.rows() {
		name := row.name
		if row.joint {
			name += " (joint upper bound)"
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.1f\t\n", name, row.metrics.AvgAccuracy,
			row.metrics.LastAccuracy, row.metrics.Forgetting, row.seconds)
	}
	return tw.Flush()
}

// WriteJSON writes the report as one JSON object followed by a newline.
func (r *Report) WriteJSON(w io.Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteCSV writes the curves: one row per stage with columns stage, classes
// (number seen), then one unrounded A_b column per method.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	rows := r.rows()
	head := []string{"stage", "classes"}
	for _, row := range rows {
		head = append(head, row.name)
	}
	cw.Write(head)
	seen := 0
	for b, inc := range r.Increments {
		seen += inc
		rec := []string{strconv.Itoa(b + 1), strconv.Itoa(seen)}
		for _, row := range rows {
			rec = append(rec, strconv.FormatFloat(row.metrics.Curve[b], 'f', -1, 64))
		}
		cw.Write(rec)
	}
	cw.Flush()
	return cw.Error()
}

// Plot draws accuracy (%) against the number of classes seen, one line per
// method (and the joint bound, dashed).
func (r *Report) Plot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Class-incremental accuracy, %s", r.Split())
	p.X.Label.Text = "classes seen"
	p.Y.Label.Text = "top-1 accuracy (%)"
	// Zoom the y axis to the curves (in steps of 10 %) so that differences
	// between methods stay visible.
	lo := 100.0
	for _, row := range r.rows() {
		for _, v := range row.metrics.Curve {
			lo = math.Min(lo, v)
		}
	}
	p.Y.Min, p.Y.Max = math.Max(0, math.Floor(lo/10)*10-10), 100
	p.Legend.Top = false
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	for i, row := range r.rows() {
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
		if row.joint {
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

// WriteDir writes results.json, curve.csv and accuracy.png into dir (which
// must exist), each atomically.
func (r *Report) WriteDir(dir string) error {
	if err := atomicfile.WriteFile(filepath.Join(dir, "results.json"), r.WriteJSON); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "curve.csv"), r.WriteCSV); err != nil {
		return err
	}
	p, err := r.Plot()
	if err != nil {
		return fmt.Errorf("plotting: %w", err)
	}
	wt, err := p.WriterTo(7*vg.Inch, 4.5*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("plotting: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, "accuracy.png"), func(w io.Writer) error {
		_, err := wt.WriteTo(w)
		return err
	})
}
