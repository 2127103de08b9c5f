// Command featdiff compares two cl feature files row by row, for
// scripts/test-arm64-bundle.sh (the arm64 bundle's features against the amd64
// build's; docs/EDGE.md).
//
// Usage: go run ./scripts/featdiff [--max-abs T] A.safetensors B.safetensors
//
// Both files must have the same shape [N, D], ids, labels, classes, model
// hash and preprocessing. It prints the largest absolute difference
// max|Δ| = max_ij |A_ij − B_ij| (in feature units), the largest |A_ij| for
// scale, the number of differing elements, and the smallest row cosine
// similarity; it exits 1 when max|Δ| > T, or when the files disagree on
// anything but the feature values (2 for a bad command line).
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"slices"

	"github.com/cl-dev/cl/features"
)

func main() {
	maxAbs := flag.Float64("max-abs", math.Inf(1), "fail when max|Δ| exceeds `T` (feature units)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: featdiff [--max-abs T] A.safetensors B.safetensors")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 || *maxAbs < 0 || math.IsNaN(*maxAbs) {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), flag.Arg(1), *maxAbs); err != nil {
		fmt.Fprintln(os.Stderr, "featdiff:", err)
		os.Exit(1)
	}
}

func run(pathA, pathB string, maxAbs float64) error {
	a, err := features.ReadAny(pathA)
	if err != nil {
		return err
	}
	b, err := features.ReadAny(pathB)
	if err != nil {
		return err
	}
	switch {
	case a.N != b.N || a.D != b.D:
		return fmt.Errorf("shapes differ: %s is [%d,%d], %s is [%d,%d]", pathA, a.N, a.D, pathB, b.N, b.D)
	case !slices.Equal(a.IDs, b.IDs):
		return fmt.Errorf("row ids differ between %s and %s", pathA, pathB)
	case !slices.Equal(a.Labels, b.Labels) || !slices.Equal(a.Classes, b.Classes):
		return fmt.Errorf("labels or classes differ between %s and %s", pathA, pathB)
	case a.ModelSHA256 != b.ModelSHA256 || a.Preprocess != b.Preprocess:
		return fmt.Errorf("made by different models or preprocessing: %s (%s, %s) vs %s (%s, %s)",
			pathA, a.ModelSHA256, a.Preprocess, pathB, b.ModelSHA256, b.Preprocess)
	}
	var worst, scale float64
	worstAt, differ := -1, 0
	minCos := 1.0
	for i := 0; i < a.N; i++ {
		ra, rb := a.Row(i), b.Row(i)
		var dot, na, nb float64
		for j := range ra {
			x, y := float64(ra[j]), float64(rb[j])
			if math.IsNaN(x) || math.IsNaN(y) || math.IsInf(x, 0) || math.IsInf(y, 0) {
				return fmt.Errorf("row %d column %d is not finite (%v, %v)", i, j, x, y)
			}
			if d := math.Abs(x - y); d > worst {
				worst, worstAt = d, i*a.D+j
			}
			if x != y {
				differ++
			}
			scale = max(scale, math.Abs(x))
			dot += x * y
			na += x * x
			nb += y * y
		}
		if na > 0 && nb > 0 {
			minCos = min(minCos, dot/math.Sqrt(na*nb))
		} else if na != nb {
			minCos = 0
		}
	}
	where := ""
	if worstAt >= 0 {
		where = fmt.Sprintf(" at row %d column %d", worstAt/a.D, worstAt%a.D)
	}
	fmt.Printf("featdiff: %d rows × %d: max|Δ| %.3g%s (max|A| %.3g), %d of %d values differ, min row cosine %.9f\n",
		a.N, a.D, worst, where, scale, differ, a.N*a.D, minCos)
	if worst > maxAbs {
		return fmt.Errorf("max|Δ| %.3g exceeds the tolerance %.3g", worst, maxAbs)
	}
	return nil
}
