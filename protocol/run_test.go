package protocol

import (
	"context"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/cl-dev/cl/heads"
)

func method(t testing.TB, name string) Method {
	t.Helper()
	spec, ok := heads.Lookup(name)
	if !ok {
		t.Fatalf("method %s not registered (have %v)", name, heads.Methods())
	}
	return Method{Name: name, New: func() (heads.Head, error) { return spec.New(nil) }}
}

// onehot returns e_c scaled in dimension d plus extra·e_k.
func point(d, c int, extra float32, k int) []float32 {
	x := make([]float32, d)
	x[c] = 1
	x[k] += extra
	return x
}

// TestRunHandComputed runs NCM over 4 classes, B0 Inc2, no shuffle.
// Training: each class c has two rows e_c ± 0.1·e_c, mean e_c.
// Test (per class, 2 rows):
//
//	class 0: e_0 (always right); e_2 + 0.1·e_0: nearest of {e0,e1} is e0
//	         (right at stage 1), nearest of all is e2 (wrong at stage 2)
//	class 1: e_1, e_1            (right)
//	class 2: e_2, e_3 + 0.1·e_2  (second is nearest e3: wrong)
//	class 3: e_3, e_3            (right)
//
// Task 0 = classes {0,1} (4 rows), task 1 = {2,3} (4 rows).
// a = [[100 75] [- 75]], A = [100, 75] (6/8), Ā = 87.5, F = 100 − 75 = 25,
// old/new at stage 2: 3/4 → 75, 3/4 → 75.
func TestRunHandComputed(t *testing.T) {
	const d = 4
	var train, test Data
	train.D, test.D = d, d
	for c := 0; c < 4; c++ {
		train.X = append(append(train.X, point(d, c, 0.1, c)...), point(d, c, -0.1, c)...)
		train.Labels = append(train.Labels, c, c)
	}
	add := func(c int, x []float32) { test.X = append(test.X, x...); test.Labels = append(test.Labels, c) }
	add(0, point(d, 0, 0, 0))
	add(0, point(d, 2, 0.1, 0))
	add(1, point(d, 1, 0, 1))
	add(1, point(d, 1, 0, 1))
	add(2, point(d, 2, 0, 2))
	add(2, point(d, 3, 0.1, 2))
	add(3, point(d, 3, 0, 3))
	add(3, point(d, 3, 0, 3))
	rep, err := Run(context.Background(), Config{Classes: 4, Init: 0, Inc: 2}, train, test,
		[]Method{method(t, "ncm"), method(t, "simplecil")})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep.ClassOrder, []int{0, 1, 2, 3}) || !reflect.DeepEqual(rep.Increments, []int{2, 2}) {
		t.Fatalf("order %v increments %v", rep.ClassOrder, rep.Increments)
	}
	m := rep.Methods[0]
	if m.Method != "ncm" || !reflect.DeepEqual(m.Curve, []float64{100, 75}) || m.AvgAccuracy != 87.5 ||
		m.LastAccuracy != 75 || m.Forgetting != 25 {
		t.Errorf("ncm: %+v", m.Metrics)
	}
	if m.AccuracyMatrix[0][1] != 75 || m.AccuracyMatrix[1][1] != 75 || *m.OldNew[1].Old != 75 || m.OldNew[1].New != 75 {
		t.Errorf("ncm matrix %v old/new %+v", m.AccuracyMatrix, m.OldNew)
	}
	// Cosine SimpleCIL agrees on these points (unit-norm means e_c).
	if s := rep.Methods[1]; !reflect.DeepEqual(s.Curve, m.Curve) {
		t.Errorf("simplecil curve %v", s.Curve)
	}
}

// clusters makes well-separated data: class c is centred on 10·e_(c mod d)
// + c·e_0 with small deterministic jitter.
func clusters(classes, perClass, d int, shift float32) Data {
	data := Data{D: d}
	for c := 0; c < classes; c++ {
		for r := 0; r < perClass; r++ {
			x := make([]float32, d)
			for j := range x {
				x[j] = float32((c*7+r*3+j*5)%11)/100 + shift
			}
			x[c%d] += 10
			x[(c+1)%d] += float32(c / d)
			data.X = append(data.X, x...)
			data.Labels = append(data.Labels, c)
		}
	}
	return data
}

func TestRunShuffledSeparable(t *testing.T) {
	train, test := clusters(10, 5, 12, 0), clusters(10, 3, 12, 0.01)
	rep, err := Run(context.Background(), Config{Classes: 10, Init: 4, Inc: 3, Seed: 1993, Shuffle: true}, train, test,
		[]Method{method(t, "ncm")})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Permutation(1993, 10)
	if !reflect.DeepEqual(rep.ClassOrder, want) || !reflect.DeepEqual(rep.Increments, []int{4, 3, 3}) {
		t.Errorf("order %v increments %v", rep.ClassOrder, rep.Increments)
	}
	m := rep.Methods[0]
	if m.AvgAccuracy != 100 || m.LastAccuracy != 100 || m.Forgetting != 0 {
		t.Errorf("separable data: %+v", m.Metrics)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var shape map[string]any
	json.Unmarshal(b, &shape)
	for _, k := range []string{"class_order", "init", "inc", "seed", "methods"} {
		if _, ok := shape[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, b)
		}
	}
	meth := shape["methods"].([]any)[0].(map[string]any)
	for _, k := range []string{"method", "curve", "curve_rounded", "avg_accuracy", "last_accuracy", "forgetting", "old_new", "accuracy_matrix", "seconds"} {
		if _, ok := meth[k]; !ok {
			t.Errorf("method JSON lacks %q", k)
		}
	}
}

func TestRunErrors(t *testing.T) {
	train, test := clusters(4, 2, 4, 0), clusters(4, 2, 4, 0)
	// Drop class 2's training rows: the error names the class.
	var tr Data
	tr.D = 4
	for i, y := range train.Labels {
		if y != 2 {
			tr.X = append(tr.X, train.X[i*4:(i+1)*4]...)
			tr.Labels = append(tr.Labels, y)
		}
	}
	_, err := Run(context.Background(), Config{Classes: 4, ClassNames: []string{"a", "b", "coat", "d"}, Inc: 2}, tr, test, []Method{method(t, "ncm")})
	if err == nil || !strings.Contains(err.Error(), `"coat"`) || !strings.Contains(err.Error(), "no training rows") {
		t.Errorf("empty class: %v", err)
	}
	_, err = Run(context.Background(), Config{Classes: 3, Inc: 2}, train, test, []Method{method(t, "ncm")})
	if err == nil || !strings.Contains(err.Error(), "label 3") {
		t.Errorf("label out of range: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Config{Classes: 4, Inc: 2}, train, test, []Method{method(t, "ncm")}); err == nil {
		t.Error("cancelled run succeeded")
	}
}

// TestJointIsMarkedUpperBound: the joint head runs like any method and is
// marked as the upper bound; on separable classes it is always right.
func TestJointIsMarkedUpperBound(t *testing.T) {
	train, test := clusters(6, 6, 8, 0), clusters(6, 3, 8, 0.01)
	rep, err := Run(context.Background(), Config{Classes: 6, Inc: 2, Seed: 1993, Shuffle: true}, train, test,
		[]Method{method(t, "ncm"), method(t, "joint")})
	if err != nil {
		t.Fatal(err)
	}
	j := rep.Methods[1]
	if !j.UpperBound || rep.Methods[0].UpperBound || j.LastAccuracy != 100 || len(j.Curve) != 3 || math.IsNaN(j.AvgAccuracy) {
		t.Errorf("joint %+v", j)
	}
}
