// Package report turns a protocol run (protocol.Report) into what people and
// programs read: the survey-style table, one JSON object, the curves as CSV
// and a plot of accuracy against classes seen (docs/PROTOCOL.md, §4).
//
// It is the only package that imports gonum/plot, so ranking and
// prediction (heads) and the stage loop (protocol) do not pull it in.
package report

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"text/tabwriter"

	"github.com/cl-dev/cl/internal/atomicfile"
	"github.com/cl-dev/cl/protocol"
)

// row is one line of the table, CSV and plot: a method (or the joint bound).
type row struct {
	name    string
	bound   bool // a reference upper bound, not a class-incremental method
	metrics *protocol.Metrics
	seconds float64
}

// rows lists the report's methods in order.
func rows(r *protocol.Report) []row {
	var out []row
	for i := range r.Methods {
		m := &r.Methods[i]
		out = append(out, row{m.Method, m.UpperBound, &m.Metrics, m.Seconds})
	}
	return out
}

// Split names a split as the survey does: "B0 Inc5" when every stage has the
// same number of classes (init 0, or init = inc as PILOT's init_cls =
// increment configs), "B50 Inc10" for a larger first stage.
func Split(init, inc int) string {
	if init == inc {
		init = 0
	}
	return fmt.Sprintf("B%d Inc%d", init, inc)
}

// plural is "1 stage", "2 stages".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// Table prints the survey-style table: a title line (split, stages,
// classes, order, rows), then per method Ā, A_B and forgetting (all %, two
// decimals) and seconds.
func Table(w io.Writer, r *protocol.Report) error {
	order := "no shuffle"
	if r.Shuffle {
		order = fmt.Sprintf("seed %d", r.Seed)
	}
	fmt.Fprintf(w, "%s, %s, %s (%s), %d train / %d test rows\n", Split(r.Init, r.Inc),
		plural(len(r.Increments), "stage", "stages"), plural(len(r.ClassOrder), "class", "classes"), order, r.TrainRows, r.TestRows)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\tĀ\tA_B\tforgetting\tseconds\t")
	for _, row := range rows(r) {
		name := row.name
		if row.bound {
			name += " (joint upper bound)"
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.1f\t\n", name, row.metrics.AvgAccuracy,
			row.metrics.LastAccuracy, row.metrics.Forgetting, row.seconds)
	}
	return tw.Flush()
}

// JSON writes the report as one indented JSON object and a newline (the
// schema is in docs/PROTOCOL.md).
func JSON(w io.Writer, r *protocol.Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// CSV writes the curves: one row per stage with columns stage (from 1),
// classes (number seen), then one unrounded A_b (%) column per method.
func CSV(w io.Writer, r *protocol.Report) error {
	cw := csv.NewWriter(w)
	rs := rows(r)
	head := []string{"stage", "classes"}
	for _, row := range rs {
		head = append(head, row.name)
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	seen := 0
	for b, inc := range r.Increments {
		seen += inc
		rec := []string{strconv.Itoa(b + 1), strconv.Itoa(seen)}
		for _, row := range rs {
			if b >= len(row.metrics.Curve) {
				return fmt.Errorf("report: %s has %d curve points for %d stages", row.name, len(row.metrics.Curve), len(r.Increments))
			}
			rec = append(rec, strconv.FormatFloat(row.metrics.Curve[b], 'f', -1, 64))
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Files are the names WriteDir writes.
var Files = []string{"results.json", "curve.csv", "accuracy.png"}

// WriteDir writes results.json (JSON), curve.csv (CSV) and accuracy.png
// (Plot, 7 × 4.5 inches) into dir, which must exist, each atomically.
func WriteDir(dir string, r *protocol.Report) error {
	if err := atomicfile.WriteFile(filepath.Join(dir, Files[0]), func(w io.Writer) error { return JSON(w, r) }); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, Files[1]), func(w io.Writer) error { return CSV(w, r) }); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, Files[2]), func(w io.Writer) error { return PNG(w, r) })
}
