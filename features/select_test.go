package features

import (
	"reflect"
	"strings"
	"testing"
)

func TestSubsetAndSelectClasses(t *testing.T) {
	s := testSet([]string{"r0", "r1", "r2", "r3", "r4"}, []int{2, 0, 2, 1, 0}, []string{"cat", "dog", "bird"}, 2, 0)
	sub, err := s.Subset([]int{4, 0, 2})
	if err != nil {
		t.Fatal(err)
	}
	// Classes without rows are dropped; the others keep their order.
	if !reflect.DeepEqual(sub.Classes, []string{"cat", "bird"}) || !reflect.DeepEqual(sub.Labels, []int{0, 1, 1}) ||
		!reflect.DeepEqual(sub.IDs, []string{"r4", "r0", "r2"}) || sub.N != 3 || sub.Space() != s.Space() {
		t.Fatalf("subset %+v", sub)
	}
	for i, r := range []int{4, 0, 2} {
		if !reflect.DeepEqual(sub.Row(i), s.Row(r)) {
			t.Errorf("row %d = %v, want row %d = %v", i, sub.Row(i), r, s.Row(r))
		}
	}
	if err := sub.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Subset([]int{5}); err == nil || !strings.Contains(err.Error(), "row 5 out of range") {
		t.Errorf("out of range: %v", err)
	}

	sel, err := s.SelectClasses([]string{"bird", "cat"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(sel.IDs, []string{"r0", "r1", "r2", "r4"}) || !reflect.DeepEqual(sel.Classes, []string{"cat", "bird"}) {
		t.Fatalf("selected %+v", sel)
	}
	for i := range sel.Labels {
		if sel.Classes[sel.Labels[i]] == "dog" {
			t.Errorf("row %d is a dog", i)
		}
	}
	if _, err := s.SelectClasses([]string{"cow"}); err == nil || !strings.Contains(err.Error(), `no class "cow" (the classes are: bird, cat, dog)`) {
		t.Errorf("unknown class: %v", err)
	}
	if got := s.ClassCounts(); !reflect.DeepEqual(got, []int{2, 1, 2}) {
		t.Errorf("counts %v", got)
	}
	// No ids: the subset has none either.
	s.IDs = nil
	if sub, err := s.Subset([]int{1}); err != nil || sub.IDs != nil {
		t.Errorf("no ids: %v %v", err, sub.IDs)
	}
}

// TestUnlabelledSets: subsets and concatenations of unlabelled sets stay
// unlabelled; labelled and unlabelled sets do not concatenate.
func TestUnlabelledSets(t *testing.T) {
	u := testSet([]string{"p", "q", "r"}, []int{Unlabelled, Unlabelled, Unlabelled}, []string{}, 2, 0)
	if err := u.Validate(); err != nil {
		t.Fatal(err)
	}
	sub, err := u.Subset([]int{2, 0})
	if err != nil || sub.Labelled() || !reflect.DeepEqual(sub.Labels, []int{Unlabelled, Unlabelled}) || sub.Validate() != nil {
		t.Fatalf("subset %v %+v", err, sub)
	}
	if got := u.ClassCounts(); len(got) != 0 {
		t.Errorf("counts %v", got)
	}
	v := testSet([]string{"s"}, []int{Unlabelled}, []string{}, 2, 5)
	c, err := Concat([]string{"U", "V"}, []*Set{u, v})
	if err != nil || c.N != 4 || c.Labelled() || c.Validate() != nil {
		t.Fatalf("concat %v %+v", err, c)
	}
	l := testSet([]string{"t"}, []int{0}, []string{"cat"}, 2, 0)
	if _, err := Concat([]string{"U", "L"}, []*Set{u, l}); err == nil || !strings.Contains(err.Error(), "L is labelled but U is unlabelled") {
		t.Errorf("mixed: %v", err)
	}
}
