package heads

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
)

// RankBatch is the number of rows Rank scores per Scores (or TopK) call when
// the caller does not choose.
const RankBatch = 1024

// rankChunk is the fewest rows RankParallel gives one goroutine: below it
// the goroutine costs more than it saves.
const rankChunk = 1024

// Rank ranks the head's classes for each row of x [n, d] and returns the top
// k labels per row (labels from Classes(), not column indices), row-major
// [n, k'] with k' = min(max(k, 1), len(Classes())), best first, equal scores
// by lower column first; and k'. Heads that implement Ranker go through
// TopK (same ranking, faster); the others through Scores and a stable sort.
// Rows are scored batch at a time (batch ≤ 0 means RankBatch); ctx is
// checked between batches.
func Rank(ctx context.Context, h Head, x []float32, d, k, batch int) ([]int, int, error) {
	if d <= 0 || len(x)%d != 0 {
		return nil, 0, fmt.Errorf("rank: %d values are not rows of dimension %d", len(x), d)
	}
	if batch <= 0 {
		batch = RankBatch
	}
	classes := h.Classes()
	c := len(classes)
	if c == 0 {
		return nil, 0, fmt.Errorf("rank: the %s head has no classes yet", h.Method())
	}
	k = min(max(k, 1), c)
	n := len(x) / d
	out := make([]int, n*k)
	idx := make([]int, c)
	ranker, fast := h.(Ranker)
	for lo := 0; lo < n; lo += batch {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		hi := min(lo+batch, n)
		if fast {
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

// RankParallel is Rank with the rows split into contiguous chunks (at least
// 1024 rows each) across up to threads goroutines (threads ≤ 0: one per
// CPU). Heads score concurrently without locks once learned, so the result
// is exactly Rank's. The first error (or ctx's) is returned.
func RankParallel(ctx context.Context, h Head, x []float32, d, k, threads int) ([]int, int, error) {
	if d <= 0 || len(x)%d != 0 {
		return nil, 0, fmt.Errorf("rank: %d values are not rows of dimension %d", len(x), d)
	}
	c := len(h.Classes())
	if c == 0 {
		return nil, 0, fmt.Errorf("rank: the %s head has no classes yet", h.Method())
	}
	k = min(max(k, 1), c)
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	n := len(x) / d
	chunk := max(rankChunk, (n+threads-1)/threads)
	if n <= chunk {
		return Rank(ctx, h, x, d, k, 0)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make([]int, n*k)
	errs := make([]error, (n+chunk-1)/chunk)
	var wg sync.WaitGroup
	for ci, lo := 0, 0; lo < n; ci, lo = ci+1, lo+chunk {
		hi := min(lo+chunk, n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _, err := Rank(ctx, h, x[lo*d:hi*d], d, k, 0)
			if err != nil {
				errs[ci] = err
				cancel() // the other chunks stop at their next batch
				return
			}
			copy(out[lo*k:hi*k], p)
		}()
	}
	wg.Wait()
	if err := parent.Err(); err != nil {
		return nil, 0, err
	}
	// A failing chunk cancels the others: report its error, not theirs.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, 0, err
		}
	}
	return out, k, nil
}
