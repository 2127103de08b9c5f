package protocol

import (
	"context"
	"fmt"
	"sort"

	"github.com/cl-dev/cl/heads"
)

// DefaultBatch is the number of rows scored per Head.Scores call.
const DefaultBatch = 1024

// Predict ranks the head's classes for each row of x [n, d] and returns the
// top k labels per row, row-major [n, k'] with k' = min(k, len(Classes()))
// (best first; ties keep the lower label first), together with k'. Rows are
// scored batch at a time (batch ≤ 0 means DefaultBatch); ctx is checked
// between batches.
func Predict(ctx context.Context, h heads.Head, x []float32, d, k, batch int) ([]int, int, error) {
	if d <= 0 || len(x)%d != 0 {
		return nil, 0, fmt.Errorf("predict: %d values are not rows of dimension %d", len(x), d)
	}
	if batch <= 0 {
		batch = DefaultBatch
	}
	classes := h.Classes()
	c := len(classes)
	if c == 0 {
		return nil, 0, fmt.Errorf("predict: the %s head has no classes yet", h.Method())
	}
	if k > c {
		k = c
	}
	if k < 1 {
		k = 1
	}
	n := len(x) / d
	out := make([]int, n*k)
	idx := make([]int, c)
	ranker, fast := h.(heads.Ranker)
	for lo := 0; lo < n; lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		hi := min(lo+batch, n)
		if fast {
			// Same ranking as Scores + sort below, computed faster
			// (int8 shortlist, exact float64 re-score).
			dst := out[lo*k : hi*k]
			if err := ranker.TopK(x[lo*d:hi*d], k, dst); err != nil {
				return nil, 0, fmt.Errorf("%s scores: %w", h.Method(), err)
			}
			for i, j := range dst {
				dst[i] = classes[j]
			}
			continue
		}
		s, err := h.Scores(x[lo*d : hi*d])
		if err != nil {
			return nil, 0, fmt.Errorf("%s scores: %w", h.Method(), err)
		}
		if len(s) != (hi-lo)*c {
			return nil, 0, fmt.Errorf("%s scores: got %d values for %d rows × %d classes", h.Method(), len(s), hi-lo, c)
		}
		for r := lo; r < hi; r++ {
			row := s[(r-lo)*c : (r-lo+1)*c]
			dst := out[r*k : (r+1)*k]
			if k == 1 {
				best := 0
				for j := 1; j < c; j++ {
					if row[j] > row[best] {
						best = j
					}
				}
				dst[0] = classes[best]
				continue
			}
			for j := range idx {
				idx[j] = j
			}
			sort.SliceStable(idx, func(a, b int) bool { return row[idx[a]] > row[idx[b]] })
			for j := range dst {
				dst[j] = classes[idx[j]]
			}
		}
	}
	return out, k, nil
}
