package tune

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/cl-dev/cl/extract/data"
)

// Dataset is the labelled images one training run sees, held in memory as
// the source stores them (encoded file bytes or raw pixels: a few KB to a few
// hundred KB per image), decoded again for every epoch so that augmentation
// starts from the original pixels.
type Dataset struct {
	// Samples are the stored images, in source order.
	Samples []data.Sample
	// Labels[i] is the dense training label of Samples[i], in [0, len(Classes)).
	Labels []int
	// IDs[i] is the source's identifier of Samples[i].
	IDs []string
	// Classes are the class names of the dense labels.
	Classes []string
	// Native[k] is the source's class index of dense label k.
	Native []int
}

// Len is the number of images.
func (d *Dataset) Len() int { return len(d.Samples) }

// LoadClasses reads every image of src whose class is in classes (source
// class indices, in the order that defines the dense labels 0..len−1).
// limit > 0 keeps at most limit images per class (the first ones in source
// order). Unreadable images are an error naming the sample: training on a
// silently smaller set would not be reproducible.
func LoadClasses(ctx context.Context, src data.Source, classes []int, limit int) (*Dataset, error) {
	names := src.Classes()
	dense := map[int]int{}
	d := &Dataset{}
	for k, c := range classes {
		if c < 0 || c >= len(names) {
			return nil, fmt.Errorf("%s: class index %d out of range (the source has %d classes)", src.Spec(), c, len(names))
		}
		if _, dup := dense[c]; dup {
			return nil, fmt.Errorf("%s: class %q selected twice", src.Spec(), names[c])
		}
		dense[c] = k
		d.Classes = append(d.Classes, names[c])
		d.Native = append(d.Native, c)
	}
	per := make([]int, len(classes))
	var idx []int
	for i := 0; i < src.Len(); i++ {
		k, ok := dense[src.Label(i)]
		if !ok || (limit > 0 && per[k] >= limit) {
			continue
		}
		per[k]++
		idx = append(idx, i)
	}
	for k, n := range per {
		if n == 0 {
			return nil, fmt.Errorf("%s: class %q has no images", src.Spec(), d.Classes[k])
		}
	}
	d.Samples = make([]data.Sample, len(idx))
	d.Labels = make([]int, len(idx))
	d.IDs = make([]string, len(idx))
	workers := min(runtime.GOMAXPROCS(0), 8)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		firstEr error
		next    = make(chan int)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range next {
				i := idx[j]
				s, err := src.Load(i)
				if err != nil {
					mu.Lock()
					if firstEr == nil {
						firstEr = fmt.Errorf("%s: sample %s: %w", src.Spec(), src.ID(i), err)
					}
					mu.Unlock()
					continue
				}
				d.Samples[j], d.Labels[j], d.IDs[j] = s, dense[src.Label(i)], src.ID(i)
			}
		}()
	}
feed:
	for j := range idx {
		select {
		case next <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if firstEr != nil {
		return nil, firstEr
	}
	return d, nil
}

// Subset returns the dataset restricted to the given rows (shared storage).
func (d *Dataset) Subset(rows []int) *Dataset {
	s := &Dataset{Classes: d.Classes, Native: d.Native}
	for _, r := range rows {
		s.Samples = append(s.Samples, d.Samples[r])
		s.Labels = append(s.Labels, d.Labels[r])
		s.IDs = append(s.IDs, d.IDs[r])
	}
	return s
}
