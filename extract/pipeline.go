package extract

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/cl-dev/cl/extract/data"
	"github.com/cl-dev/cl/extract/imageproc"
	"github.com/cl-dev/cl/features"
	"github.com/cl-dev/cl/internal/atomicfile"
	"github.com/cl-dev/cl/models"
)

// Backbone is what the pipeline needs of a model; *ort.Backbone is one.
type Backbone interface {
	// Manifest gives the preprocessing (its Crop is the input side S).
	Manifest() models.Manifest
	// Dim is the feature width D.
	Dim() int
	// SHA256 is the model file's hash (hex), Path its file name.
	SHA256() string
	Path() string
	// Fingerprint identifies the features (models.Fingerprint).
	Fingerprint() string
	// Run maps x = float32 [n,3,S,S] to features float32 [n,D].
	Run(x []float32, n int) ([]float32, error)
}

// Options tune Extract. The zero value is usable.
type Options struct {
	// Batch is the number of images per backbone call; 0 = 32.
	Batch int
	// Workers is the number of decode/preprocess goroutines; 0 = NumCPU.
	Workers int
	// Limit keeps the first Limit samples in source order; 0 = all.
	Limit int
	// Strict makes any unreadable image an error (nothing is written);
	// otherwise such images are skipped with a warning.
	Strict bool
	// Progress receives a progress bar ("\r" lines); nil = none. Pass
	// os.Stderr only when it is a terminal.
	Progress io.Writer
	// Log receives a warning per skipped image; nil = slog.Default().
	Log *slog.Logger
	// DecodeMemory bounds the memory of the images being decoded at once,
	// in bytes, as imageproc.Inspect estimates it from each file's header
	// before decoding: an image that alone needs more is skipped (with an
	// error wrapping imageproc.ErrTooLarge), and a worker whose image does
	// not fit beside the others' waits. 0 = imageproc.DefaultDecodeBudget
	// (1 GiB).
	DecodeMemory int64
	// BufferMemory bounds the pipeline's float32 image tensors (the
	// workers' images and two batches; see BufferBytes), in bytes: a run
	// that would need more is refused before it starts. 0 =
	// DefaultBufferMemory.
	BufferMemory int64
	// DecodeBetweenRuns pauses decoding while the backbone runs. Use it when
	// inference already keeps every core busy (ONNX Runtime on the CPU with
	// intra-op threads = cores): a decode worker pre-empting one of those
	// threads stalls all of them at the operator's barrier, which costs more
	// than decoding in the gaps between batches. Leave it off for a GPU
	// backbone or when spare cores exist, where overlap is free.
	DecodeBetweenRuns bool
}

// Skipped is an image that could not be read, decoded or preprocessed.
type Skipped struct {
	// Index is the sample's position in the source, ID its identifier and
	// File its path when the source has files.
	Index int
	ID    string
	File  string
	Err   error
}

// String is "FILE: reason" (or "ID: reason" for array sources).
func (s Skipped) String() string {
	if s.File != "" {
		return fmt.Sprintf("%s: %v", s.File, s.Err)
	}
	return fmt.Sprintf("%s: %v", s.ID, s.Err)
}

// Result summarises an extraction.
type Result struct {
	// Rows is the number of feature rows written, D their width.
	Rows, D int
	// Total is the number of samples attempted (after Limit).
	Total int
	// Skipped lists the images left out, in source order.
	Skipped []Skipped
	// Elapsed is the wall time of the whole run.
	Elapsed time.Duration
}

// ImagesPerSecond is Total / Elapsed.
func (r *Result) ImagesPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Total) / r.Elapsed.Seconds()
}

// ErrNoImages is returned when not one image of the source could be read.
var ErrNoImages = errors.New("no image could be read")

// DefaultBufferMemory is the default Options.BufferMemory: 4 GiB.
const DefaultBufferMemory = 4 << 30

// BufferBytes is the memory of the pipeline's float32 image tensors for a
// model input of side crop: 2·workers + 4 images for the workers, and two
// batches of batch images, each 3·crop² float32 values.
func BufferBytes(batch, workers, crop int) int64 {
	return int64(2*workers+4+2*batch) * 3 * int64(crop) * int64(crop) * 4
}

// Extract computes the features of every sample of src (the first
// opts.Limit) with bb and writes them, in source order, to the feature file
// out (features format) with the metadata docs/FORMATS.md lists: model
// base name, sha256 and fingerprint, preprocessing JSON, src.Spec(), and
// each row's id.
//
// The file appears atomically at the end; on error or cancellation of ctx
// nothing is left under out or beside it. Unreadable images are skipped and
// listed in the Result (with opts.Strict the first one is an error).
func Extract(ctx context.Context, src data.Source, bb Backbone, out string, opts Options) (*Result, error) {
	start := time.Now()
	src = data.Limit(src, opts.Limit)
	pp, err := imageproc.NewPreprocessor(bb.Manifest().Preprocess)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bb.Path(), err)
	}
	n := src.Len()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = src.ID(i)
	}
	if err := checkOut(out); err != nil {
		return nil, err
	}
	w, err := features.Create(out, features.Header{
		D: bb.Dim(), Classes: src.Classes(),
		Model: filepath.Base(bb.Path()), ModelSHA256: bb.SHA256(), Fingerprint: bb.Fingerprint(),
		Preprocess: pp.Preprocess().JSON(), Source: src.Spec(),
	}, ids)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	res, err := run(ctx, src, bb, pp, opts, func(i int, row []float32) error {
		return w.Append(row, src.Label(i), ids[i])
	})
	if res != nil {
		res.Elapsed = time.Since(start)
	}
	if err != nil {
		return res, err
	}
	if err := w.Commit(); err != nil {
		return res, err
	}
	return res, nil
}

// checkOut fails when out cannot be written (missing or read-only folder,
// or out is a folder), before any work is done.
func checkOut(out string) error {
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return fmt.Errorf("cannot write %s: it is a folder (give a file name such as %s)", out, filepath.Join(out, "features.safetensors"))
	}
	return atomicfile.CheckWritable(out)
}

// CheckOut reports, before a long run, whether Extract could write out.
func CheckOut(out string) error { return checkOut(out) }

// job is one image to prepare: sample index and the buffer to fill.
type job struct {
	i   int
	buf []float32
}

// result is a prepared image (err == nil) or the reason it was skipped.
type result struct {
	i   int
	buf []float32
	err error
}

// batch is a packed input [n,3,S,S] and the sample index of each row.
type batch struct {
	x   []float32
	idx []int
}

// run is the pipeline; emit receives each feature row in source order (the
// row is only valid during the call). It returns when all rows are emitted,
// on the first error, or when ctx is done.
func run(ctx context.Context, src data.Source, bb Backbone, pp *imageproc.Preprocessor, opts Options, emit func(i int, row []float32) error) (*Result, error) {
	batchSize, workers := opts.Batch, opts.Workers
	if batchSize <= 0 {
		batchSize = 32
	}
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	batchSize = min(batchSize, max(src.Len(), 1))
	log := opts.Log
	if log == nil {
		log = slog.Default()
	}
	n, d, per := src.Len(), bb.Dim(), pp.Len()
	res := &Result{Total: n, D: d}
	if n == 0 {
		return res, fmt.Errorf("%s: the data set is empty", src.Spec())
	}
	crop := bb.Manifest().Preprocess.Crop
	if per != 3*crop*crop {
		return res, fmt.Errorf("%s: preprocessing gives %d values per image, the model takes 3×%d×%d", bb.Path(), per, crop, crop)
	}
	limit := opts.BufferMemory
	if limit <= 0 {
		limit = DefaultBufferMemory
	}
	if need := BufferBytes(batchSize, workers, crop); need > limit {
		return res, fmt.Errorf("batch %d with %d workers at the model's %d×%d input (preprocess crop %d in %s's manifest) needs %s of image buffers (%d images of %s), over the limit of %s: lower the batch size or the workers, or raise the limit (cl extract --buffer-memory)",
			batchSize, workers, crop, crop, crop, filepath.Base(bb.Path()), imageproc.FormatBytes(need), 2*workers+4+2*batchSize,
			imageproc.FormatBytes(int64(per)*4), imageproc.FormatBytes(limit))
	}
	decodeMemory := opts.DecodeMemory
	if decodeMemory <= 0 {
		decodeMemory = imageproc.DefaultDecodeBudget
	}
	budget := semaphore.NewWeighted(decodeMemory)

	parent := ctx
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	var wg sync.WaitGroup
	goFn := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				cancel(err)
			}
		}()
	}

	// Image buffers: taken by the feeder in index order, so the lowest
	// index not yet batched always holds one and the pipeline cannot stall.
	nbuf := 2*workers + 4
	free := make(chan []float32, nbuf)
	for range nbuf {
		free <- make([]float32, per)
	}
	jobs := make(chan job, workers)
	results := make(chan result, nbuf)
	batchFree := make(chan batch, 2)
	for range 2 {
		batchFree <- batch{x: make([]float32, batchSize*per), idx: make([]int, 0, batchSize)}
	}
	full := make(chan batch, 1)
	bar := newProgress(opts.Progress, n, 250*time.Millisecond)
	defer bar.finish()

	goFn(func() error { // feeder
		defer close(jobs)
		for i := 0; i < n; i++ {
			var buf []float32
			select {
			case buf = <-free:
			case <-ctx.Done():
				return nil
			}
			select {
			case jobs <- job{i, buf}:
			case <-ctx.Done():
				return nil
			}
		}
		return nil
	})

	// gate is write-locked around each backbone call when decoding must
	// pause (DecodeBetweenRuns); workers read-lock it around each image.
	var gate sync.RWMutex
	var wwg sync.WaitGroup
	for range workers {
		wwg.Add(1)
		go func() {
			defer wwg.Done()
			var gray imageproc.RGB
			for j := range jobs {
				if ctx.Err() != nil {
					return
				}
				if opts.DecodeBetweenRuns {
					gate.RLock()
				}
				err := prepare(ctx, src, pp, j.i, j.buf, &gray, budget, decodeMemory)
				if opts.DecodeBetweenRuns {
					gate.RUnlock()
				}
				select {
				case results <- result{j.i, j.buf, err}:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	go func() { wwg.Wait(); close(results) }()

	var skipped []Skipped
	goFn(func() error { // ordered batcher
		defer close(full)
		pending := map[int]result{}
		next := 0
		b := batch{}
		flush := func() bool {
			if len(b.idx) == 0 {
				return true
			}
			select {
			case full <- b:
				b = batch{}
				return true
			case <-ctx.Done():
				return false
			}
		}
		for {
			var r result
			select {
			case x, ok := <-results:
				if !ok {
					goto drained
				}
				r = x
			case <-ctx.Done(): // do not wait for a worker stuck in a read
				return nil
			}
			pending[r.i] = r
			for {
				r, ok := pending[next]
				if !ok {
					break
				}
				delete(pending, next)
				next++
				if r.err != nil {
					s := Skipped{Index: r.i, ID: src.ID(r.i), Err: r.err}
					if f, ok := src.(interface{ Path(int) string }); ok {
						s.File = f.Path(r.i)
					}
					free <- r.buf
					if opts.Strict {
						return fmt.Errorf("%s (--strict: stopping, nothing written)", s)
					}
					log.Warn("skipping image", "id", s.ID, "error", r.err.Error())
					skipped = append(skipped, s)
					bar.add(1)
					continue
				}
				if b.x == nil {
					select {
					case b = <-batchFree:
						b.idx = b.idx[:0]
					case <-ctx.Done():
						return nil
					}
				}
				copy(b.x[len(b.idx)*per:], r.buf)
				b.idx = append(b.idx, r.i)
				free <- r.buf
				if len(b.idx) == batchSize && !flush() {
					return nil
				}
			}
		}
	drained:
		if ctx.Err() == nil {
			flush()
		}
		return nil
	})

	rows := 0
	goFn(func() error { // inference and output, in order
		for b := range full {
			if ctx.Err() != nil {
				return nil
			}
			k := len(b.idx)
			if opts.DecodeBetweenRuns {
				gate.Lock()
			}
			y, err := bb.Run(b.x[:k*per], k)
			if opts.DecodeBetweenRuns {
				gate.Unlock()
			}
			if err != nil {
				return fmt.Errorf("running the model on %s … %s: %w", src.ID(b.idx[0]), src.ID(b.idx[k-1]), err)
			}
			if len(y) != k*d {
				return fmt.Errorf("%s returned %d values for %d images of dimension %d", bb.Path(), len(y), k, d)
			}
			for r, i := range b.idx {
				if err := emit(i, y[r*d:(r+1)*d]); err != nil {
					return err
				}
			}
			rows += k
			bar.add(k)
			batchFree <- b
		}
		return nil
	})

	// The workers are not waited for: all of them have finished unless ctx
	// was cancelled, and then one may be blocked in a read that cannot be
	// interrupted (a hung network file system); it exits when the read
	// returns, touching nothing the caller still uses.
	wg.Wait()
	res.Rows, res.Skipped = rows, skipped
	if ctx.Err() != nil {
		if parent.Err() != nil {
			return res, fmt.Errorf("extraction stopped after %d of %d images: %w", rows+len(skipped), n, context.Cause(parent))
		}
		return res, context.Cause(ctx)
	}
	if rows == 0 {
		return res, fmt.Errorf("%s: %w (%d skipped; first: %s)", src.Spec(), ErrNoImages, len(skipped), skipped[0])
	}
	return res, nil
}

// prepare loads, decodes and preprocesses sample i into buf. gray is the
// worker's scratch image for grey raw samples. An encoded image is decoded
// only within the decode budget: its estimated memory (imageproc.Inspect)
// must fit decodeMemory, and is held in budget while it is decoded and
// preprocessed. A panic in a decoder is turned into an error: a bad file
// must not bring the run down.
func prepare(ctx context.Context, src data.Source, pp *imageproc.Preprocessor, i int, buf []float32, gray *imageproc.RGB,
	budget *semaphore.Weighted, decodeMemory int64) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("decoder failed: %v", p)
		}
	}()
	s, err := src.Load(i)
	if err != nil {
		return err
	}
	if s.Raw == nil {
		in, err := imageproc.Inspect(s.Encoded)
		if err != nil {
			return err
		}
		if in.Bytes > decodeMemory {
			return fmt.Errorf("%w (cl extract --decode-memory raises the budget)", in.TooLarge(decodeMemory))
		}
		if err := budget.Acquire(ctx, in.Bytes); err != nil {
			return err
		}
		defer budget.Release(in.Bytes)
	}
	switch {
	case s.Raw != nil:
		r := s.Raw
		if r.W <= 0 || r.H <= 0 || len(r.Pix) != r.W*r.H*r.C {
			return fmt.Errorf("invalid %dx%dx%d raw image with %d bytes", r.W, r.H, r.C, len(r.Pix))
		}
		switch r.C {
		case 3:
			return pp.ApplyRGB(&imageproc.RGB{W: r.W, H: r.H, Pix: r.Pix}, buf)
		case 1: // Pillow's convert("RGB") of mode L: R = G = B = L
			gray.W, gray.H = r.W, r.H
			if cap(gray.Pix) < 3*len(r.Pix) {
				gray.Pix = make([]uint8, 3*len(r.Pix))
			}
			gray.Pix = gray.Pix[:3*len(r.Pix)]
			for j, v := range r.Pix {
				gray.Pix[3*j], gray.Pix[3*j+1], gray.Pix[3*j+2] = v, v, v
			}
			return pp.ApplyRGB(gray, buf)
		}
		return fmt.Errorf("raw image with %d channels (want 1 or 3)", r.C)
	default:
		img, err := imageproc.DecodeWithin(s.Encoded, decodeMemory)
		if err != nil {
			return err
		}
		return pp.Apply(img, buf)
	}
}
