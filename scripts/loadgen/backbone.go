package main

import (
	"fmt"
	"runtime"
	"sort"
	"time"

	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/models/ort"
)

// backboneTimes is what --time-backbone measures, in milliseconds: one
// image per call, as the server runs a lone request.
type backboneTimes struct {
	Runs int `json:"runs"`
	// Backbone: ort.Backbone.Run of one preprocessed image.
	BackboneMedianMs float64 `json:"backbone_median_ms"`
	BackboneP99Ms    float64 `json:"backbone_p99_ms"`
	// Preprocess: decoding the image as sent (PNG for raw pixels) and the
	// model's preprocessing (resize, crop, normalise) into [3, S, S].
	PreprocessMedianMs float64 `json:"preprocess_median_ms"`
	PreprocessP99Ms    float64 `json:"preprocess_p99_ms"`
	// Image: decode, preprocess and backbone of one image, as one call of
	// cl extract costs per image without batching.
	ImageMedianMs float64 `json:"image_median_ms"`
	ImageP99Ms    float64 `json:"image_p99_ms"`
}

// timeBackbone opens model with the server's session options (threads;
// idle threads not spinning unless spin) and times runs single-image calls
// over imgs (decode, preprocess, backbone), after warmup calls.
func timeBackbone(model string, threads int, spin bool, imgs []encoded, runs, warmup int) (backboneTimes, error) {
	// One OS thread for every Run, as cl serve's batch workers (serve/batcher.go).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	bb, err := ort.Open(model, ort.Options{Threads: threads, NoSpinning: !spin})
	if err != nil {
		return backboneTimes{}, err
	}
	defer bb.Close()
	pp, err := imageproc.NewPreprocessor(bb.Manifest().Preprocess)
	if err != nil {
		return backboneTimes{}, err
	}
	x := make([]float32, pp.Len())
	var pre, run, all []time.Duration
	for i := 0; i < warmup+runs; i++ {
		im := imgs[i%len(imgs)]
		t0 := time.Now()
		img, err := imageproc.Decode(im.body)
		if err != nil {
			return backboneTimes{}, fmt.Errorf("image %s: %w", im.id, err)
		}
		if err := pp.Apply(img, x); err != nil {
			return backboneTimes{}, fmt.Errorf("image %s: %w", im.id, err)
		}
		t1 := time.Now()
		if _, err := bb.Run(x, 1); err != nil {
			return backboneTimes{}, err
		}
		t2 := time.Now()
		if i >= warmup {
			pre, run, all = append(pre, t1.Sub(t0)), append(run, t2.Sub(t1)), append(all, t2.Sub(t0))
		}
	}
	return backboneTimes{Runs: runs, BackboneMedianMs: quantileMs(run, 0.5), BackboneP99Ms: quantileMs(run, 0.99),
		PreprocessMedianMs: quantileMs(pre, 0.5), PreprocessP99Ms: quantileMs(pre, 0.99),
		ImageMedianMs: quantileMs(all, 0.5), ImageP99Ms: quantileMs(all, 0.99)}, nil
}

// quantileMs is the q-quantile of d (the element at rank ⌊q·n⌋ of the
// sorted durations) in milliseconds; d is sorted in place.
func quantileMs(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return float64(d[min(len(d)-1, int(q*float64(len(d))))].Microseconds()) / 1000
}
