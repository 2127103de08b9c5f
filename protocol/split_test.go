package protocol

import (
	"reflect"
	"testing"
)

func TestIncrements(t *testing.T) {
	for _, c := range []struct {
		n, init, inc int
		want         []int
	}{
		{100, 0, 5, rep(5, 20)},    // CIFAR B0 Inc5: 20 stages
		{100, 10, 10, rep(10, 10)}, // PILOT simplecil.json
		{200, 0, 20, rep(20, 10)},
		{300, 30, 30, rep(30, 10)},
		{10, 3, 3, []int{3, 3, 3, 1}}, // remainder stage
		{10, 4, 3, []int{4, 3, 3}},
		{10, 10, 5, []int{10}},
		{10, 0, 2, rep(2, 5)}, // Fashion-MNIST B0 Inc2
		{7, 5, 10, []int{5, 2}},
		{1, 0, 1, []int{1}},
	} {
		got, err := Increments(c.n, c.init, c.inc)
		if err != nil {
			t.Errorf("%+v: %v", c, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Increments(%d, %d, %d) = %v, want %v", c.n, c.init, c.inc, got, c.want)
		}
	}
	for _, c := range [][3]int{{10, 11, 1}, {10, 0, 0}, {0, 1, 1}, {10, -1, 2}, {10, 0, 11}} {
		if _, err := Increments(c[0], c[1], c[2]); err == nil {
			t.Errorf("Increments%v accepted", c)
		}
	}
}

func rep(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestSplit(t *testing.T) {
	s, err := NewSplit([]int{3, 0, 4, 1, 2}, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s.Stages() != 3 {
		t.Fatalf("stages %d", s.Stages())
	}
	lo, hi := s.Range(1)
	if lo != 2 || hi != 4 {
		t.Errorf("Range(1) = %d,%d", lo, hi)
	}
	lo, hi = s.Range(2)
	if lo != 4 || hi != 5 {
		t.Errorf("Range(2) = %d,%d", lo, hi)
	}
	for c, want := range []int{1, 3, 4, 0, 2} {
		if got := s.Label(c); got != want {
			t.Errorf("Label(%d) = %d, want %d", c, got, want)
		}
	}
	for k, want := range []int{0, 0, 1, 1, 2} {
		if got := s.Stage(k); got != want {
			t.Errorf("Stage(%d) = %d, want %d", k, got, want)
		}
	}
	if _, err := NewSplit([]int{0, 0, 1}, 1, 1); err == nil {
		t.Error("non-permutation accepted")
	}
}
