package main

import (
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/models/ort"
)

// A stream is one thing --streams measures at concurrency 1: a server (one
// predict of one image per turn) or the backbone called directly in this
// process (decode, preprocess and Run of one image per turn: the reference).
type stream struct {
	name string
	url  string // a server, or "" for the backbone
	// the backbone (url == ""): its session and preprocessing
	bb *ort.Backbone
	pp *imageproc.Preprocessor
	x  []float32

	client *http.Client
	total  []time.Duration // the whole turn: the request, or decode+preprocess+Run
	run    []time.Duration // the backbone's Run alone
	timed  []timedRequest
	errors int
}

// parseStreams parses NAME=URL or NAME=backbone:THREADS[:spin], comma
// separated; backbone streams open model with those session options.
func parseStreams(spec, model string) ([]*stream, error) {
	var out []*stream
	for _, f := range strings.Split(spec, ",") {
		name, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok || name == "" || v == "" {
			return nil, fmt.Errorf("%q: want NAME=URL or NAME=backbone:THREADS[:spin]", f)
		}
		s := &stream{name: name}
		if rest, isBB := strings.CutPrefix(v, "backbone:"); isBB {
			th, spin, _ := strings.Cut(rest, ":")
			threads, err := strconv.Atoi(th)
			if err != nil || threads < 0 || (spin != "" && spin != "spin") {
				return nil, fmt.Errorf("%q: want backbone:THREADS or backbone:THREADS:spin", f)
			}
			if model == "" {
				return nil, fmt.Errorf("%q: a backbone stream needs --ref-model MODEL.onnx", f)
			}
			bb, err := ort.Open(model, ort.Options{Threads: threads, NoSpinning: spin == ""})
			if err != nil {
				return nil, err
			}
			pp, err := imageproc.NewPreprocessor(bb.Manifest().Preprocess)
			if err != nil {
				return nil, err
			}
			s.bb, s.pp, s.x = bb, pp, make([]float32, pp.Len())
		} else {
			s.url = v
			s.client = &http.Client{Timeout: time.Minute}
		}
		out = append(out, s)
	}
	return out, nil
}

// turn sends im to the stream once and records the times.
func (s *stream) turn(im encoded, record bool) {
	t0 := time.Now()
	if s.bb != nil {
		img, err := imageproc.Decode(im.body)
		if err == nil {
			err = s.pp.Apply(img, s.x)
		}
		t1 := time.Now()
		if err == nil {
			_, err = s.bb.Run(s.x, 1)
		}
		if !record {
			return
		}
		if err != nil {
			s.errors++
			return
		}
		t2 := time.Now()
		s.total, s.run = append(s.total, t2.Sub(t0)), append(s.run, t2.Sub(t1))
		return
	}
	tr, err := predict(s.client, s.url, im)
	if !record {
		return
	}
	if err != nil {
		s.errors++
		return
	}
	s.total, s.timed = append(s.total, tr.latency), append(s.timed, tr)
}

// interleave gives every stream one turn, n times over (after
// warmup untimed turns each), with the same image for all streams in a
// turn: the streams see the same machine at the same moments, which a
// shared, loaded machine needs for a fair comparison. It prints one line
// per stream (backbone streams: the image and the Run alone; servers: the
// request and its phases).
func interleave(streams []*stream, imgs []encoded, n, warmup int) {
	// The backbone streams' Runs from one OS thread, as cl serve's batch
	// workers make them (serve/batcher.go).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for i := 0; i < warmup+n; i++ {
		for k := range streams { // each turn starts one stream later: no stream always follows the same one
			streams[(i+k)%len(streams)].turn(imgs[i%len(imgs)], i >= warmup)
		}
	}
	for _, s := range streams {
		fmt.Printf("stream %s: %d turns (%d errors), p50 %.3f ms, p99 %.3f ms", s.name, len(s.total), s.errors,
			quantileMs(s.total, 0.5), quantileMs(s.total, 0.99))
		if s.bb != nil {
			fmt.Printf(", backbone p50 %.3f ms, p99 %.3f ms\n", quantileMs(s.run, 0.5), quantileMs(s.run, 0.99))
			continue
		}
		fmt.Println()
		if ph := phases(s.timed); len(ph) > 0 {
			fmt.Printf("  %s phases ms (median; p99; mean of the slowest 1%% of requests):", s.name)
			for _, p := range ph {
				fmt.Printf(" %s %.3f; %.3f; %.3f", p.Name, p.MedianMs, p.P99Ms, p.TailMeanMs)
			}
			fmt.Println()
		}
	}
}
