package learners

import (
	"context"
	"fmt"
	"time"

	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/protocol"
	"github.com/cl-dev/cl/tune"
)

// BenchData is a benchmark's images (labels: native class indices of the
// data set) and, when available, the frozen pre-trained backbone's features
// of the same rows (row-major, Dim wide).
type BenchData struct {
	Train, Test         *tune.Dataset
	TrainFeat, TestFeat []float32
	Dim                 int
}

// BenchMethod is one learner to run: a registered method and its options.
type BenchMethod struct {
	Name    string
	Options map[string]string
}

// Bench runs the class-incremental protocol over learners: for each stage
// t every learner learns the stage's training images (and frozen features)
// with global labels, then scores the whole test set; accuracy counts the
// test rows of the classes seen so far (docs/PROTOCOL.md). Learners that
// need images get them; frozen heads get features. All learners see the
// same stages.
func Bench(ctx context.Context, env Env, split *protocol.Split, d BenchData, methods []BenchMethod) ([]protocol.MethodResult, error) {
	B := split.Stages()
	global := func(ds *tune.Dataset) []int {
		g := make([]int, ds.Len())
		for i, y := range ds.Labels {
			g[i] = split.Label(ds.Native[y])
		}
		return g
	}
	names := make([]string, len(split.Order))
	for k, c := range split.Order {
		names[k] = d.Train.Classes[c]
	}
	trainG, testG := global(d.Train), global(d.Test)
	// The test set relabelled globally (learners cache by this pointer).
	test := &tune.Dataset{Samples: d.Test.Samples, IDs: d.Test.IDs, Labels: testG, Classes: names, Native: split.Order}
	total := make([]int, B)
	for _, k := range testG {
		total[split.Stage(k)]++
	}
	for t, n := range total {
		if n == 0 {
			return nil, fmt.Errorf("stage %d has no test images; its accuracy is undefined", t+1)
		}
	}
	type state struct {
		l       Learner
		correct [][]int
		elapsed time.Duration
	}
	st := make([]*state, len(methods))
	for i, m := range methods {
		spec, err := Lookup(m.Name)
		if err != nil {
			return nil, err
		}
		if !spec.NeedsImages && d.TrainFeat == nil {
			return nil, fmt.Errorf("%s needs the frozen backbone's features", m.Name)
		}
		l, err := spec.New(env, m.Options)
		if err != nil {
			return nil, err
		}
		c := make([][]int, B)
		for j := range c {
			c[j] = make([]int, B)
		}
		st[i] = &state{l: l, correct: c}
	}
	for t := 0; t < B; t++ {
		lo, hi := split.Range(t)
		var rows []int
		for i, k := range trainG {
			if k >= lo && k < hi {
				rows = append(rows, i)
			}
		}
		if len(rows) == 0 {
			return nil, fmt.Errorf("stage %d has no training images", t+1)
		}
		stage := Stage{Index: t, Names: names, Dim: d.Dim}
		for k := lo; k < hi; k++ {
			stage.Classes = append(stage.Classes, k)
		}
		img := d.Train.Subset(rows)
		img.Labels = make([]int, len(rows))
		for j, r := range rows {
			img.Labels[j] = trainG[r]
		}
		img.Classes, img.Native = names, split.Order
		stage.Images, stage.Labels, stage.IDs = img, img.Labels, img.IDs
		if d.TrainFeat != nil {
			stage.Features = gatherRows(d.TrainFeat, d.Dim, rows)
		}
		ev := Eval{Images: test, Features: d.TestFeat, Dim: d.Dim, N: test.Len()}
		for _, s := range st {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			t0 := time.Now()
			if err := s.l.Learn(ctx, stage); err != nil {
				return nil, fmt.Errorf("%s: stage %d: %w", s.l.Method(), t+1, err)
			}
			scores, cols, err := s.l.Scores(ctx, ev)
			if err != nil {
				return nil, fmt.Errorf("%s: stage %d: scoring: %w", s.l.Method(), t+1, err)
			}
			if len(scores) != ev.N*len(cols) {
				return nil, fmt.Errorf("%s: stage %d: %d scores for %d rows × %d classes", s.l.Method(), t+1, len(scores), ev.N, len(cols))
			}
			for i, k := range testG {
				if k >= hi {
					continue // a class not seen yet
				}
				if cols[argmax(scores[i*len(cols):(i+1)*len(cols)])] == k {
					s.correct[split.Stage(k)][t]++
				}
			}
			s.elapsed += time.Since(t0)
			seen, right := 0, 0
			for i := 0; i <= t; i++ {
				seen += total[i]
				right += s.correct[i][t]
			}
			env.Logf("%s: stage %d/%d done, accuracy %.2f%% on %d test images, %.1f s", s.l.Method(), t+1, B, 100*float64(right)/float64(seen), seen, s.elapsed.Seconds())
		}
	}
	var out []protocol.MethodResult
	for _, s := range st {
		f, isFrozen := s.l.(*frozen)
		out = append(out, protocol.MethodResult{Method: s.l.Method(), Metrics: protocol.ComputeMetrics(s.correct, total), Seconds: s.elapsed.Seconds(),
			UpperBound: isFrozen && heads.IsUpperBound(f.head)})
	}
	return out, nil
}

// labelRows returns the indices i (ascending) with labels[i] == c.
func labelRows(labels []int, c int) []int {
	var rows []int
	for i, y := range labels {
		if y == c {
			rows = append(rows, i)
		}
	}
	return rows
}

// gatherRows returns the given rows of x [*, d], in that order: [len(rows), d].
func gatherRows(x []float32, d int, rows []int) []float32 {
	out := make([]float32, 0, len(rows)*d)
	for _, r := range rows {
		out = append(out, x[r*d:(r+1)*d]...)
	}
	return out
}

func argmax(v []float64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}
