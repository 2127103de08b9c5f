package serve

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Backbone is the frozen feature extractor the server runs images through:
// *ort.Backbone (models/ort) in the cl binary. Run takes n images
// [n, 3, S, S] row-major float32 and returns features [n, D]; it must be
// safe for concurrent calls.
type Backbone interface {
	Run(x []float32, n int) ([]float32, error)
	Dim() int
}

// errQueueFull is returned when the images of a request do not fit in the
// batcher's queue: the client gets 503 with Retry-After.
var errQueueFull = errors.New("the server is busy: the image queue is full")

// batchJob is one request's images waiting for the backbone.
type batchJob struct {
	x    []float32 // [n, 3, S, S]
	n    int
	out  []float32 // [n, D], set before done is closed
	err  error
	done chan struct{}
	// start and end bracket the backbone call that ran the job's images
	// (set before done is closed): queued → start is the job's wait.
	start, end time.Time
}

// jobTimes is when a job was queued and when its backbone call started and
// ended (Server-Timing's queue and backbone phases).
type jobTimes struct{ queued, start, end time.Time }

// batcher gathers the images of concurrent requests into backbone batches
// of up to maxBatch images. A worker that holds a job waits for more only
// while other images are on their way (reserved by a request and not yet
// taken by a worker: queued, or still being decoded), and at most maxDelay;
// a lone request runs at once. At most queueCap images wait; a request
// whose images do not fit is refused at once (never unbounded memory).
type batcher struct {
	bb       Backbone
	per      int // values per image: 3·S·S
	maxBatch int
	maxDelay time.Duration
	queueCap int64

	queued  atomic.Int64 // images reserved: being decoded, waiting or running
	claimed atomic.Int64 // images taken by a worker: being gathered or running
	jobs    chan *batchJob
	wg      sync.WaitGroup
	stop    chan struct{}
	wake    chan struct{} // release: images a worker may be waiting for will not come
	after   gatherTimer

	onBatch func(images int, d time.Duration) // metrics hook
}

// gatherTimer arms a worker's gather window: it returns a channel that
// receives once d has passed and a function that disarms it. The server
// uses the clock (clockTimer); tests step it by hand.
type gatherTimer func(d time.Duration) (<-chan time.Time, func() bool)

func clockTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

func newBatcher(bb Backbone, per, maxBatch int, maxDelay time.Duration, queueCap, workers int, onBatch func(int, time.Duration)) *batcher {
	return newBatcherTimer(bb, per, maxBatch, maxDelay, queueCap, workers, onBatch, clockTimer)
}

// newBatcherTimer is newBatcher with the gather window's timer.
func newBatcherTimer(bb Backbone, per, maxBatch int, maxDelay time.Duration, queueCap, workers int, onBatch func(int, time.Duration), after gatherTimer) *batcher {
	b := &batcher{bb: bb, per: per, maxBatch: maxBatch, maxDelay: maxDelay, queueCap: int64(queueCap),
		jobs: make(chan *batchJob, queueCap), stop: make(chan struct{}), wake: make(chan struct{}, 1), after: after, onBatch: onBatch}
	for i := 0; i < workers; i++ {
		b.wg.Add(1)
		go b.worker()
	}
	return b
}

// depth is the number of images reserved: being decoded, queued or running.
func (b *batcher) depth() int64 { return b.queued.Load() }

// reserve takes room for n images in the queue, or returns errQueueFull.
// Requests reserve before they decode, so decoded images waiting anywhere
// are bounded by the queue (Config.QueueImages).
func (b *batcher) reserve(n int) error {
	if v := b.queued.Add(int64(n)); v > b.queueCap {
		b.queued.Add(-int64(n))
		return errQueueFull
	}
	return nil
}

// release gives back room reserved for images that will not run, and wakes
// a worker waiting for them.
func (b *batcher) release(n int) {
	b.queued.Add(-int64(n))
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// run computes the features of n images x [n, 3, S, S] (reserve and
// runReserved).
func (b *batcher) run(ctx context.Context, x []float32, n int) ([]float32, error) {
	if err := b.reserve(n); err != nil {
		return nil, err
	}
	return b.runReserved(ctx, x, n, nil)
}

// runReserved computes the features of n images whose room was reserved.
// It returns ctx's error if the caller gives up (the images still run;
// their result is dropped). tm, when not nil, receives the job's times once
// it has run.
func (b *batcher) runReserved(ctx context.Context, x []float32, n int, tm *jobTimes) ([]float32, error) {
	j := &batchJob{x: x, n: n, done: make(chan struct{})}
	if tm != nil {
		tm.queued = time.Now()
	}
	select {
	case b.jobs <- j:
	case <-b.stop:
		b.release(n)
		return nil, errors.New("the server is shutting down")
	}
	select {
	case <-j.done:
		if tm != nil {
			tm.start, tm.end = j.start, j.end
		}
		return j.out, j.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// coming reports whether images are on their way to the workers: reserved
// by a request (being decoded, or in the channel) and not yet taken.
func (b *batcher) coming() bool { return b.queued.Load() > b.claimed.Load() }

func (b *batcher) worker() {
	defer b.wg.Done()
	// Every backbone call of this worker from one OS thread: ONNX Runtime's
	// intra-op pool computes with its calling thread, and a Run whose caller
	// moves between the Go runtime's threads from call to call has a longer
	// tail (docs/SERVE.md, "Latency of a lone request": a bare decode + Run
	// loop, p99 5.9–7.6 ms unlocked against 4.0–5.4 ms locked, MobileNetV2
	// on 2 cores).
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var held *batchJob // a job that did not fit the previous batch (claimed)
	for {
		var batch []*batchJob
		size := 0
		if held != nil {
			batch, size, held = append(batch, held), held.n, nil
		} else {
			select {
			case j := <-b.jobs:
				b.claimed.Add(int64(j.n))
				batch, size = append(batch, j), j.n
			case <-b.stop:
				return
			}
		}
		// Gather more while some are coming; a lone request (nothing else
		// reserved, queued or gathered) runs at once, without the timer.
		if size < b.maxBatch && b.coming() {
			expired, disarm := b.after(b.maxDelay)
		gather:
			for size < b.maxBatch && b.coming() {
				select {
				case j := <-b.jobs:
					b.claimed.Add(int64(j.n))
					if size+j.n > b.maxBatch {
						held = j
						break gather
					}
					batch, size = append(batch, j), size+j.n
				case <-b.wake: // check coming again
				case <-expired:
					break gather
				}
			}
			disarm()
		}
		b.runBatch(batch, size)
	}
}

// runBatch runs the jobs' images as one backbone call (or, for one job
// larger than maxBatch, chunks of maxBatch) and hands each job its rows.
func (b *batcher) runBatch(batch []*batchJob, size int) {
	d := b.bb.Dim()
	var out []float32
	var err error
	start := time.Now()
	if len(batch) == 1 {
		j := batch[0]
		out = make([]float32, 0, j.n*d)
		for s := 0; s < j.n && err == nil; s += b.maxBatch {
			e := min(s+b.maxBatch, j.n)
			var y []float32
			y, err = b.bb.Run(j.x[s*b.per:e*b.per], e-s)
			out = append(out, y...)
			if b.onBatch != nil {
				b.onBatch(e-s, time.Since(start))
			}
		}
	} else {
		x := make([]float32, 0, size*b.per)
		for _, j := range batch {
			x = append(x, j.x...)
		}
		out, err = b.bb.Run(x, size)
		if b.onBatch != nil {
			b.onBatch(size, time.Since(start))
		}
	}
	end := time.Now()
	off := 0
	for _, j := range batch {
		j.start, j.end = start, end
		if err != nil {
			j.err = err
		} else {
			j.out = out[off*d : (off+j.n)*d : (off+j.n)*d]
		}
		off += j.n
		// queued first: claimed > queued for a moment is harmless, the
		// reverse would make a gathering worker wait for nothing.
		b.queued.Add(-int64(j.n))
		b.claimed.Add(-int64(j.n))
		close(j.done)
	}
}

// close stops the workers after the batches in progress.
func (b *batcher) close() {
	close(b.stop)
	b.wg.Wait()
}
