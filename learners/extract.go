package learners

import (
	"context"
	"fmt"

	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/models/ort"
	"github.com/cl-dev/cl/tune"
)

// extractBatch is the number of images per backbone call when learners
// extract features themselves.
const extractBatch = 32

// Extract runs bb on every image of d with the backbone's test transform
// (its manifest's preprocessing) and returns the features, row-major
// [d.Len(), bb.Dim()], in d's order.
func Extract(ctx context.Context, bb *ort.Backbone, d *tune.Dataset, workers int) ([]float32, error) {
	pp, err := imageproc.NewPreprocessor(bb.Manifest().Preprocess)
	if err != nil {
		return nil, err
	}
	rows := tune.EpochOrder(d.Len(), 0, 0, false)
	batches, berr := tune.Batches(ctx, d, rows, extractBatch, false, tune.EvalTransform{P: pp}, 0, 0, workers)
	out := make([]float32, 0, d.Len()*bb.Dim())
	for b := range batches {
		y, err := bb.Run(b.X, b.N())
		if err != nil {
			for range batches {
			}
			return nil, err
		}
		out = append(out, y...)
	}
	if err := berr(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(out) != d.Len()*bb.Dim() {
		return nil, fmt.Errorf("extracted %d values for %d images of dimension %d", len(out), d.Len(), bb.Dim())
	}
	return out, nil
}

// concatRows returns [a_i ; b_i] for every row: [n, da+db].
func concatRows(a []float32, da int, b []float32, db int) []float32 {
	n := len(a) / da
	out := make([]float32, 0, n*(da+db))
	for i := 0; i < n; i++ {
		out = append(out, a[i*da:(i+1)*da]...)
		out = append(out, b[i*db:(i+1)*db]...)
	}
	return out
}
