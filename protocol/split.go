package protocol

import "fmt"

// Split is a class order cut into stages (docs/METHODS.md §3.2).
type Split struct {
	// Order[k] is the native class index that gets remapped label k.
	Order []int
	// Increments[t] is the number of new classes of stage t; they sum to
	// len(Order).
	Increments []int
	// rank[c] is the remapped label of native class c.
	rank []int
	// start[t] is the first remapped label of stage t; start[B] = len(Order).
	start []int
}

// Increments returns PILOT's DataManager stage sizes for n classes:
// [init, inc, inc, …, remainder], the remainder stage only when it is
// non-empty. init = 0 means "B0": the first stage has inc classes (PILOT's
// JSON then sets init_cls = increment).
func Increments(n, init, inc int) ([]int, error) {
	if n <= 0 {
		return nil, fmt.Errorf("split: no classes")
	}
	if inc <= 0 {
		return nil, fmt.Errorf("split: increment %d must be ≥ 1", inc)
	}
	if init < 0 {
		return nil, fmt.Errorf("split: init %d must be ≥ 0", init)
	}
	if init == 0 {
		init = inc
	}
	if init > n {
		return nil, fmt.Errorf("split: first stage has %d classes but there are only %d", init, n)
	}
	incs := []int{init}
	sum := init
	for sum+inc < n {
		incs = append(incs, inc)
		sum += inc
	}
	if n > sum {
		incs = append(incs, n-sum)
	}
	return incs, nil
}

// NewSplit cuts order (a permutation of 0..len(order)−1) into stages of
// Increments(len(order), init, inc).
func NewSplit(order []int, init, inc int) (*Split, error) {
	incs, err := Increments(len(order), init, inc)
	if err != nil {
		return nil, err
	}
	rank := make([]int, len(order))
	for i := range rank {
		rank[i] = -1
	}
	for k, c := range order {
		if c < 0 || c >= len(order) || rank[c] >= 0 {
			return nil, fmt.Errorf("split: class order is not a permutation of 0..%d (entry %d is %d)", len(order)-1, k, c)
		}
		rank[c] = k
	}
	start := make([]int, len(incs)+1)
	for t, m := range incs {
		start[t+1] = start[t] + m
	}
	return &Split{Order: append([]int(nil), order...), Increments: incs, rank: rank, start: start}, nil
}

// Stages is the number of stages B.
func (s *Split) Stages() int { return len(s.Increments) }

// Range returns the remapped labels [lo, hi) that stage t introduces.
func (s *Split) Range(t int) (lo, hi int) { return s.start[t], s.start[t+1] }

// Label returns the remapped label of native class c (its position in Order).
func (s *Split) Label(c int) int { return s.rank[c] }

// Stage returns the stage that introduces remapped label k.
func (s *Split) Stage(k int) int {
	for t := range s.Increments {
		if k < s.start[t+1] {
			return t
		}
	}
	return -1
}
