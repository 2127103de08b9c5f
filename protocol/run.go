package protocol

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/cl-dev/cl/heads"
)

// Data is a labelled feature matrix.
type Data struct {
	// X is row-major [N, D].
	X []float32
	D int
	// Labels are native class indices in [0, Config.Classes), one per row.
	Labels []int
}

// Rows is N.
func (d Data) Rows() int {
	if d.D == 0 {
		return 0
	}
	return len(d.X) / d.D
}

// Config sets up a protocol run.
type Config struct {
	// Classes is the number of native classes; ClassNames (optional, same
	// length) name them in error messages and reports.
	Classes    int
	ClassNames []string
	// Init and Inc make the split "B{Init} Inc{Inc}" (Init 0 = first stage
	// of Inc classes).
	Init, Inc int
	// Seed and Shuffle choose the class order (docs/METHODS.md §3.1).
	Seed    uint32
	Shuffle bool
	// Batch is the number of rows per Scores call (0 = heads.RankBatch).
	Batch int
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// Method is one head to run through the stages.
type Method struct {
	// Name labels the method in reports ("simplecil", "ranpac", …).
	Name string
	// New builds the empty head.
	New func() (heads.Head, error)
}

// MethodResult is one method's outcome.
type MethodResult struct {
	Method string `json:"method"`
	Metrics
	// Seconds is the wall time spent learning and evaluating this method.
	Seconds float64 `json:"seconds"`
	// UpperBound marks a reference that is not class-incremental (the joint
	// head, which refits on every row seen at each stage); reports set it
	// apart.
	UpperBound bool `json:"upper_bound,omitempty"`
}

// Report is the outcome of a run over one or more methods.
type Report struct {
	// ClassOrder[k] is the native class that got remapped label k.
	ClassOrder []int `json:"class_order"`
	// ClassNames are the names in class order, when known.
	ClassNames []string `json:"class_names,omitempty"`
	Init       int      `json:"init"`
	Inc        int      `json:"inc"`
	Seed       uint32   `json:"seed"`
	Shuffle    bool     `json:"shuffle"`
	// Increments are the stage sizes.
	Increments []int `json:"increments"`
	// TrainRows / TestRows count the rows used.
	TrainRows int `json:"train_rows"`
	TestRows  int `json:"test_rows"`
	// Methods are the results in the order the methods were given; the
	// joint upper bound, when run, is one of them (UpperBound set).
	Methods []MethodResult `json:"methods"`
}

// prepared is the checked data and its split: the class order, the stages,
// and per stage the training rows (remapped labels) and test rows.
type prepared struct {
	split      *Split
	trainRows  [][]int // per stage, row indices into train
	testRows   [][]int // per stage, row indices into test
	trainLabel []int   // remapped label per train row
	testLabel  []int
}

func (cfg Config) className(c int) string {
	if c < len(cfg.ClassNames) {
		return fmt.Sprintf("%d (%q)", c, cfg.ClassNames[c])
	}
	return fmt.Sprint(c)
}

func prepare(cfg Config, train, test Data) (*prepared, error) {
	if cfg.ClassNames != nil && len(cfg.ClassNames) != cfg.Classes {
		return nil, fmt.Errorf("protocol: %d class names for %d classes", len(cfg.ClassNames), cfg.Classes)
	}
	if train.D <= 0 || test.D != train.D {
		return nil, fmt.Errorf("protocol: train features have dimension %d, test features %d", train.D, test.D)
	}
	for name, d := range map[string]Data{"train": train, "test": test} {
		if len(d.X) != len(d.Labels)*d.D {
			return nil, fmt.Errorf("protocol: %s has %d values for %d labels of dimension %d", name, len(d.X), len(d.Labels), d.D)
		}
		for i, y := range d.Labels {
			if y < 0 || y >= cfg.Classes {
				return nil, fmt.Errorf("protocol: %s row %d has label %d outside the %d classes", name, i, y, cfg.Classes)
			}
		}
	}
	order, err := ClassOrder(cfg.Classes, cfg.Seed, cfg.Shuffle)
	if err != nil {
		return nil, err
	}
	split, err := NewSplit(order, cfg.Init, cfg.Inc)
	if err != nil {
		return nil, err
	}
	p := &prepared{split: split}
	group := func(d Data) ([][]int, []int, []int) {
		rows := make([][]int, split.Stages())
		perClass := make([]int, cfg.Classes)
		lab := make([]int, len(d.Labels))
		for i, y := range d.Labels {
			k := split.Label(y)
			lab[i] = k
			t := split.Stage(k)
			rows[t] = append(rows[t], i)
			perClass[y]++
		}
		return rows, lab, perClass
	}
	var trainCount []int
	p.trainRows, p.trainLabel, trainCount = group(train)
	p.testRows, p.testLabel, _ = group(test)
	for k, c := range order {
		if trainCount[c] == 0 {
			return nil, fmt.Errorf("protocol: class %s has no training rows, so stage %d cannot learn it (drop the class or supply its features)", cfg.className(c), split.Stage(k)+1)
		}
	}
	for t, rows := range p.testRows {
		if len(rows) == 0 {
			lo, hi := split.Range(t)
			names := ""
			for k := lo; k < hi; k++ {
				if k > lo {
					names += ", "
				}
				names += cfg.className(order[k])
			}
			return nil, fmt.Errorf("protocol: stage %d has no test rows (classes %s); its accuracy is undefined", t+1, names)
		}
	}
	return p, nil
}

// gather copies rows of d into a contiguous [len(rows), D] matrix.
func gather(d Data, rows []int) []float32 {
	out := make([]float32, len(rows)*d.D)
	for j, i := range rows {
		copy(out[j*d.D:(j+1)*d.D], d.X[i*d.D:(i+1)*d.D])
	}
	return out
}

// Run executes the class-incremental protocol (docs/METHODS.md §2.0, §3): for each
// stage t, every method's head learns the training rows of the stage's new
// classes (Learn, then EndStage), then is evaluated on the test rows of all
// classes seen so far. Labels given to heads are remapped labels (positions
// in the class order). All methods see the same stages; each method's
// Seconds counts only its own learning and evaluation.
func Run(ctx context.Context, cfg Config, train, test Data, methods []Method) (*Report, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(methods) == 0 {
		return nil, fmt.Errorf("protocol: no method to run")
	}
	p, err := prepare(cfg, train, test)
	if err != nil {
		return nil, err
	}
	B := p.split.Stages()
	rep := &Report{
		ClassOrder: p.split.Order, Init: cfg.Init, Inc: cfg.Inc, Seed: cfg.Seed, Shuffle: cfg.Shuffle,
		Increments: p.split.Increments, TrainRows: train.Rows(), TestRows: test.Rows(),
	}
	if cfg.ClassNames != nil {
		for _, c := range p.split.Order {
			rep.ClassNames = append(rep.ClassNames, cfg.ClassNames[c])
		}
	}
	hs := make([]heads.Head, len(methods))
	elapsed := make([]time.Duration, len(methods))
	correct := make([][][]int, len(methods)) // [method][task][stage]
	for m, meth := range methods {
		h, err := meth.New()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", meth.Name, err)
		}
		hs[m] = h
		correct[m] = make([][]int, B)
		for i := range correct[m] {
			correct[m][i] = make([]int, B)
		}
	}
	total := make([]int, B)
	for t := range B {
		total[t] = len(p.testRows[t])
	}
	var seenTest []int // test rows of stages ≤ t, grouped by stage
	for t := range B {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		rows := p.trainRows[t]
		x := gather(train, rows)
		y := make([]int, len(rows))
		for j, i := range rows {
			y[j] = p.trainLabel[i]
		}
		seenTest = append(seenTest, p.testRows[t]...)
		xt := gather(test, seenTest)
		lo, hi := p.split.Range(t)
		for m, meth := range methods {
			start := time.Now()
			h := hs[m]
			if err := h.Learn(x, y); err != nil {
				return nil, fmt.Errorf("%s: stage %d: learning: %w", meth.Name, t+1, err)
			}
			if err := h.EndStage(); err != nil {
				return nil, fmt.Errorf("%s: stage %d: %w", meth.Name, t+1, err)
			}
			pred, _, err := heads.Rank(ctx, h, xt, test.D, 1, cfg.Batch)
			if err != nil {
				return nil, fmt.Errorf("%s: stage %d: evaluating: %w", meth.Name, t+1, err)
			}
			for j, i := range seenTest {
				if k := p.testLabel[i]; pred[j] == k {
					correct[m][p.split.Stage(k)][t]++
				}
			}
			elapsed[m] += time.Since(start)
			seen := 0
			for i := 0; i <= t; i++ {
				seen += correct[m][i][t]
			}
			log.Info("stage done", "method", meth.Name, "stage", fmt.Sprintf("%d/%d", t+1, B),
				"classes", fmt.Sprintf("%d-%d", lo, hi-1), "train_rows", len(rows),
				"accuracy", fmt.Sprintf("%.2f", pct(seen, len(seenTest))), "seconds", fmt.Sprintf("%.2f", elapsed[m].Seconds()))
		}
	}
	for m, meth := range methods {
		rep.Methods = append(rep.Methods, MethodResult{
			Method: meth.Name, Metrics: ComputeMetrics(correct[m], total), Seconds: elapsed[m].Seconds(),
			UpperBound: heads.IsUpperBound(hs[m]),
		})
	}
	return rep, nil
}
