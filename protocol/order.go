package protocol

import "fmt"

// mt19937 is the Mersenne Twister generator exactly as numpy's legacy
// RandomState uses it (randomkit / mt19937.c): init_genrand seeding and the
// standard tempered 32-bit output.
type mt19937 struct {
	mt  [624]uint32
	pos int
}

// seed runs init_genrand(s): mt[0] = s, mt[i] = 1812433253·(mt[i−1] ⊕
// (mt[i−1] ≫ 30)) + i mod 2³². numpy's np.random.seed(int) for 0 ≤ s < 2³²
// takes this path (mt19937_seed), not init_by_array.
func (r *mt19937) seed(s uint32) {
	r.mt[0] = s
	for i := 1; i < 624; i++ {
		prev := r.mt[i-1]
		r.mt[i] = 1812433253*(prev^(prev>>30)) + uint32(i)
	}
	r.pos = 624
}

func (r *mt19937) generate() {
	const upper, lower, matrixA = 0x80000000, 0x7fffffff, 0x9908b0df
	for i := 0; i < 624; i++ {
		y := r.mt[i]&upper | r.mt[(i+1)%624]&lower
		v := r.mt[(i+397)%624] ^ y>>1
		if y&1 != 0 {
			v ^= matrixA
		}
		r.mt[i] = v
	}
	r.pos = 0
}

// next32 returns the next tempered 32-bit output.
func (r *mt19937) next32() uint32 {
	if r.pos >= 624 {
		r.generate()
	}
	y := r.mt[r.pos]
	r.pos++
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	y ^= y >> 18
	return y
}

// interval draws a uniform integer in [0, max] as numpy's legacy
// random_interval does for max ≤ 0xffffffff: mask = smallest 2^k−1 ≥ max,
// then draw next32() & mask until the value is ≤ max.
func (r *mt19937) interval(max uint32) uint32 {
	if max == 0 {
		return 0
	}
	mask := max
	mask |= mask >> 1
	mask |= mask >> 2
	mask |= mask >> 4
	mask |= mask >> 8
	mask |= mask >> 16
	for {
		if v := r.next32() & mask; v <= max {
			return v
		}
	}
}

// Permutation returns numpy's legacy `np.random.seed(seed);
// np.random.permutation(n)` bit for bit (docs/METHODS.md §3.1): arange(n) shuffled
// by Fisher–Yates from i = n−1 down to 1, swapping a[i] with a[j], j drawn by
// interval(i). The result has length n and holds 0..n−1 once each.
// It returns an error for n < 0 or n ≥ 2³².
func Permutation(seed uint32, n int) ([]int, error) {
	if n < 0 || uint64(n) > 0xffffffff {
		return nil, fmt.Errorf("permutation of %d classes: need 0 ≤ n < 2^32", n)
	}
	a := make([]int, n)
	for i := range a {
		a[i] = i
	}
	var r mt19937
	r.seed(seed)
	for i := n - 1; i >= 1; i-- {
		j := int(r.interval(uint32(i)))
		a[i], a[j] = a[j], a[i]
	}
	return a, nil
}

// ClassOrder returns PILOT's class order for n classes (docs/METHODS.md §3.1): the
// seeded permutation when shuffle is true, else the identity 0..n−1.
// order[k] is the native class index that gets remapped label k.
func ClassOrder(n int, seed uint32, shuffle bool) ([]int, error) {
	if !shuffle {
		if n < 0 {
			return nil, fmt.Errorf("class order of %d classes: n must be ≥ 0", n)
		}
		a := make([]int, n)
		for i := range a {
			a[i] = i
		}
		return a, nil
	}
	return Permutation(seed, n)
}
