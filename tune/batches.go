package tune

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/cl-dev/cl/extract"
	"github.com/cl-dev/cl/extract/imageproc"
)

// Transform turns one decoded image into a model input: float32 CHW of
// 3·Size()·Size() values. key seeds whatever randomness the transform uses
// (augmentation); the same (image, key) gives the same output whatever the
// worker, so a run is reproducible for any number of workers.
type Transform interface {
	Apply(img *imageproc.RGB, key uint64, dst []float32) error
	Size() int
}

// EvalTransform is the deterministic test transform of a manifest
// (resize, centre crop, scale, normalise): the key is ignored.
type EvalTransform struct{ P *imageproc.Preprocessor }

// Apply implements Transform.
func (t EvalTransform) Apply(img *imageproc.RGB, _ uint64, dst []float32) error {
	return t.P.ApplyRGB(img, dst)
}

// Size implements Transform.
func (t EvalTransform) Size() int { return t.P.Size() }

// AugmentTransform is a training augmentation (RandomResizedCrop, flip);
// the key seeds its random draws.
type AugmentTransform struct{ A *imageproc.Augmenter }

// Apply implements Transform.
func (t AugmentTransform) Apply(img *imageproc.RGB, key uint64, dst []float32) error {
	_, _, err := t.A.ApplyRGB(img, rand.New(rand.NewPCG(key, key^0x6a09e667f3bcc909)), dst)
	return err
}

// Size implements Transform.
func (t AugmentTransform) Size() int { return t.A.Size() }

// Batch is a mini-batch of model inputs.
type Batch struct {
	// X is [N,3,S,S] row-major float32.
	X []float32
	// Labels are the dense labels of the N images.
	Labels []int64
	// Rows are the dataset rows of the N images.
	Rows []int
}

// N is the number of images in the batch.
func (b *Batch) N() int { return len(b.Labels) }

// EpochOrder is the order of the rows of an n-image dataset in epoch e
// (0-based): a permutation drawn from (seed, e) with PCG, or 0..n−1 when
// shuffle is false.
func EpochOrder(n int, seed uint64, epoch int, shuffle bool) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	if shuffle {
		r := rand.New(rand.NewPCG(seed, uint64(epoch)+0x9e3779b97f4a7c15))
		r.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	}
	return order
}

// SampleKey is the augmentation key of dataset row r in epoch e for a run
// seeded with seed.
func SampleKey(seed uint64, epoch, row int) uint64 {
	x := seed ^ uint64(epoch)*0xbf58476d1ce4e5b9 ^ uint64(row)*0x94d049bb133111eb
	// splitmix64 finaliser: nearby (epoch, row) pairs give unrelated keys.
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Batches prepares the batches of rows (in that order, size batch, the last
// one smaller unless dropLast) with workers goroutines, keeping at most two
// batches ahead of the consumer. It sends them in order on the returned
// channel, which is closed at the end; the error function reports the first
// failure (a sample that does not decode names its ID) once the channel is
// closed. Cancelling ctx stops the workers.
func Batches(ctx context.Context, d *Dataset, rows []int, batch int, dropLast bool, tf Transform, seed uint64, epoch, workers int) (<-chan *Batch, func() error) {
	out := make(chan *Batch, 1)
	var (
		errMu sync.Mutex
		err   error
	)
	setErr := func(e error) {
		errMu.Lock()
		if err == nil {
			err = e
		}
		errMu.Unlock()
	}
	per := 3 * tf.Size() * tf.Size()
	go func() {
		defer close(out)
		if batch <= 0 {
			setErr(fmt.Errorf("batch size %d must be ≥ 1", batch))
			return
		}
		workers = max(workers, 1)
		for start := 0; start < len(rows); start += batch {
			end := min(start+batch, len(rows))
			if dropLast && end-start < batch {
				break
			}
			b := &Batch{X: make([]float32, (end-start)*per), Labels: make([]int64, end-start), Rows: rows[start:end]}
			var wg sync.WaitGroup
			jobs := make(chan int)
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for j := range jobs {
						r := b.Rows[j]
						img, e := extract.DecodeSample(d.Samples[r])
						if e == nil {
							e = tf.Apply(img, SampleKey(seed, epoch, r), b.X[j*per:(j+1)*per])
						}
						if e != nil {
							setErr(fmt.Errorf("image %s: %w", d.IDs[r], e))
						}
						b.Labels[j] = int64(d.Labels[r])
					}
				}()
			}
			for j := range b.Rows {
				jobs <- j
			}
			close(jobs)
			wg.Wait()
			errMu.Lock()
			failed := err != nil
			errMu.Unlock()
			if failed {
				return
			}
			select {
			case out <- b:
			case <-ctx.Done():
				setErr(ctx.Err())
				return
			}
		}
	}()
	return out, func() error {
		errMu.Lock()
		defer errMu.Unlock()
		return err
	}
}
