package features

import (
	"strings"
	"testing"
)

// testSet builds a set whose row i is base + 10·i + j in column j.
func testSet(ids []string, labels []int, classes []string, d int, base float32) *Set {
	s := &Set{N: len(labels), D: d, IDs: ids, Labels: labels, Classes: classes,
		Model: "m.onnx", ModelSHA256: "sha", Preprocess: "{}", Fingerprint: "fp"}
	for i := range labels {
		for j := 0; j < d; j++ {
			s.X = append(s.X, base+float32(10*i+j))
		}
	}
	return s
}

func TestConcatByID(t *testing.T) {
	classes := []string{"cat", "dog"}
	a := testSet([]string{"x", "y", "z"}, []int{0, 1, 0}, classes, 2, 0)
	// b lists the same samples in another order, with its classes reversed.
	b := testSet([]string{"z", "x", "y"}, []int{1, 1, 0}, []string{"dog", "cat"}, 3, 100)
	b.Fingerprint = "fp2"
	c, err := ConcatByID(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if c.N != 3 || c.D != 5 || strings.Join(c.IDs, ",") != "x,y,z" {
		t.Fatalf("got N=%d D=%d ids %v", c.N, c.D, c.IDs)
	}
	// Row "y" = a row 1 ++ b row 2.
	want := []float32{10, 11, 120, 121, 122}
	for i, v := range c.Row(1) {
		if v != want[i] {
			t.Fatalf("row y = %v, want %v", c.Row(1), want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	c2, _ := ConcatByID(a, b)
	if !Same(c.Space(), c2.Space()) || Same(c.Space(), a.Space()) || len(c.Fingerprint) != 64 {
		t.Errorf("joined space %v (again %v, first %v)", c.Space(), c2.Space(), a.Space())
	}
	if c.Model != "m.onnx+m.onnx" || c.Preprocess != `["{}","{}"]` {
		t.Errorf("joined model %q preprocess %q", c.Model, c.Preprocess)
	}
	// Without fingerprints the joined space has none either (the legacy rule
	// compares the joined hashes and preprocessing).
	a.Fingerprint = ""
	if c3, _ := ConcatByID(a, b); c3.Fingerprint != "" || c3.ModelSHA256 != "sha+sha" {
		t.Errorf("legacy join: %v", c3.Space())
	}

	for name, tc := range map[string]struct {
		b    *Set
		want string
	}{
		"missing in second": {testSet([]string{"z", "x"}, []int{1, 1}, []string{"dog", "cat"}, 3, 0), `"y" is in the first`},
		"extra in second":   {testSet([]string{"z", "x", "y", "w"}, []int{1, 1, 0, 0}, []string{"dog", "cat"}, 3, 0), `"w" is in the second`},
		"duplicate":         {testSet([]string{"z", "x", "x"}, []int{1, 1, 1}, []string{"dog", "cat"}, 3, 0), `duplicate sample id "x"`},
		"label differs":     {testSet([]string{"z", "x", "y"}, []int{1, 1, 1}, []string{"dog", "cat"}, 3, 0), `"y" has class "dog"`},
		"no ids":            {&Set{N: 1, D: 1, X: []float32{1}, Labels: []int{0}, Classes: classes}, "sample ids"},
	} {
		if _, err := ConcatByID(a, tc.b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %s", name, err, tc.want)
		}
	}
	dupA := testSet([]string{"x", "x"}, []int{0, 0}, classes, 2, 0)
	if _, err := ConcatByID(dupA, testSet([]string{"x"}, []int{0}, classes, 1, 0)); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Errorf("duplicate in first: %v", err)
	}
}

func TestConcatRows(t *testing.T) {
	a := testSet([]string{"a0", "a1"}, []int{0, 1}, []string{"cat", "dog"}, 2, 0)
	b := testSet([]string{"b0", "b1", "b2"}, []int{1, 0, 1}, []string{"dog", "bird"}, 2, 100)
	b.Source = "other"
	c, err := Concat([]string{"A", "B"}, []*Set{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.N != 5 || c.D != 2 || strings.Join(c.Classes, ",") != "cat,dog,bird" || strings.Join(c.IDs, ",") != "a0,a1,b0,b1,b2" {
		t.Fatalf("got N=%d D=%d classes %v ids %v", c.N, c.D, c.Classes, c.IDs)
	}
	// Every row keeps its values and its class name.
	for i, src := range []struct {
		s *Set
		r int
	}{{a, 0}, {a, 1}, {b, 0}, {b, 1}, {b, 2}} {
		if c.Classes[c.Labels[i]] != src.s.Classes[src.s.Labels[src.r]] {
			t.Errorf("row %d has class %q, want %q", i, c.Classes[c.Labels[i]], src.s.Classes[src.s.Labels[src.r]])
		}
		for j, v := range src.s.Row(src.r) {
			if c.Row(i)[j] != v {
				t.Errorf("row %d = %v, want %v", i, c.Row(i), src.s.Row(src.r))
			}
		}
	}
	if c.Source != "other" {
		t.Errorf("source %q", c.Source)
	}

	// Legacy first file: the fingerprint comes from the second.
	old := testSet(nil, []int{0}, []string{"cat"}, 2, 0)
	old.Fingerprint = ""
	if c, err := Concat([]string{"OLD", "B"}, []*Set{old, b}); err != nil || c.Fingerprint != "fp" || c.IDs[0] != "" || c.IDs[1] != "b0" {
		t.Errorf("legacy + current: %v %+v", err, c)
	}

	for name, tc := range map[string]struct {
		b    *Set
		want string
	}{
		"dimension": {testSet([]string{"b"}, []int{0}, []string{"cat"}, 3, 0), "B has dimension 3 but A has 2"},
		"space": {func() *Set {
			s := testSet([]string{"b"}, []int{0}, []string{"cat"}, 2, 0)
			s.Fingerprint = "other"
			return s
		}(), "B comes from model"},
		"shared id":   {testSet([]string{"b", "a1"}, []int{0, 0}, []string{"cat"}, 2, 0), `sample id "a1" is in A (row 1) and in B (row 1)`},
		"invalid set": {testSet([]string{"b"}, []int{1}, []string{"cat"}, 2, 0), "B: features: row 0 has label 1"},
	} {
		if _, err := Concat([]string{"A", "B"}, []*Set{a, tc.b}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %s", name, err, tc.want)
		}
	}
	if _, err := Concat(nil, nil); err == nil {
		t.Error("no sets accepted")
	}
}
