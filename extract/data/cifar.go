package data

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// CIFAR image geometry: 32×32 RGB, stored planar (1024 R, 1024 G, 1024 B).
const (
	cifarSide   = 32
	cifarPixels = 3 * cifarSide * cifarSide
)

// cifarLayout describes one CIFAR binary release.
type cifarLayout struct {
	folder string              // extracted folder name
	splits map[string][]string // split → batch files, in order
	names  string              // class names file
	prefix int                 // label bytes before the pixels (1, or 2 = coarse, fine)
}

var cifarLayouts = map[int]cifarLayout{
	10: {
		folder: "cifar-10-batches-bin",
		splits: map[string][]string{
			"train": {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"},
			"test":  {"test_batch.bin"},
		},
		names:  "batches.meta.txt",
		prefix: 1,
	},
	100: {
		folder: "cifar-100-binary",
		splits: map[string][]string{"train": {"train.bin"}, "test": {"test.bin"}},
		names:  "fine_label_names.txt",
		prefix: 2,
	},
}

// CIFAR is a split of the CIFAR-10 or CIFAR-100 binary release. Samples are
// in file order (for CIFAR-10 train: data_batch_1 … data_batch_5), which is
// torchvision's order; CIFAR-100 uses the fine labels.
type CIFAR struct {
	spec    string
	split   string
	classes []string
	parts   []cifarPart
	labels  []uint8
	rec     int // record size in bytes
	prefix  int
}

type cifarPart struct {
	name  string
	r     io.ReaderAt
	first int // index of the part's first record
	n     int
}

// OpenCIFAR opens arg = DIR[:train|test] of the CIFAR-k binary release (k =
// 10 or 100). DIR is the extracted folder (cifar-10-batches-bin,
// cifar-100-binary) or its parent. It reads every label and checks file
// sizes and label ranges before returning.
func OpenCIFAR(k int, arg, spec string) (*CIFAR, error) {
	lay, ok := cifarLayouts[k]
	if !ok {
		return nil, fmt.Errorf("cifar%d: no such data set (use cifar10 or cifar100)", k)
	}
	dir, split := arg, "train"
	if i := strings.LastIndex(arg, ":"); i >= 0 {
		if _, err := os.Stat(arg); err != nil { // a folder name may contain ':'
			dir, split = arg[:i], arg[i+1:]
		}
	}
	files, ok := lay.splits[split]
	if !ok {
		return nil, fmt.Errorf("--data %s: unknown split %q (use :train or :test)", spec, split)
	}
	if dir == "" {
		return nil, fmt.Errorf("--data %s: missing folder (cifar%d:DIR[:train|test])", spec, k)
	}
	if _, err := os.Stat(filepath.Join(dir, lay.names)); err != nil {
		if _, err2 := os.Stat(filepath.Join(dir, lay.folder, lay.names)); err2 == nil {
			dir = filepath.Join(dir, lay.folder)
		} else {
			return nil, fmt.Errorf("--data %s: %s has neither %s nor %s/%s (download and extract the CIFAR-%d binary version)",
				spec, dir, lay.names, lay.folder, lay.names, k)
		}
	}
	names, err := readNames(filepath.Join(dir, lay.names))
	if err != nil {
		return nil, err
	}
	if len(names) != k {
		return nil, fmt.Errorf("%s: %d class names, CIFAR-%d has %d", filepath.Join(dir, lay.names), len(names), k, k)
	}
	c := &CIFAR{spec: spec, split: split, classes: names}
	for _, f := range files {
		path := filepath.Join(dir, f)
		fh, err := openRegular(path)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("cifar%d %s split: %w", k, split, err)
		}
		st, err := fh.Stat()
		if err != nil {
			fh.Close()
			c.Close()
			return nil, fmt.Errorf("cifar%d: %w", k, err)
		}
		if err := c.addPart(path, fh, st.Size(), lay.prefix); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// newCIFAR builds a CIFAR source over in-memory or open parts (tests, fuzzing).
func newCIFAR(spec, split string, classes []string) *CIFAR {
	return &CIFAR{spec: spec, split: split, classes: classes}
}

// addPart appends one batch file of size bytes, reading its labels.
func (c *CIFAR) addPart(name string, r io.ReaderAt, size int64, prefix int) error {
	rec := prefix + cifarPixels
	c.rec, c.prefix = rec, prefix
	if size == 0 || size%int64(rec) != 0 {
		return fmt.Errorf("%s: %d bytes is not a whole number of %d-byte CIFAR records (wrong file, or truncated download?)", name, size, rec)
	}
	n := int(size / int64(rec))
	first := len(c.labels)
	br := bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16)
	buf := make([]byte, rec)
	for i := 0; i < n; i++ {
		if _, err := io.ReadFull(br, buf); err != nil {
			return fmt.Errorf("%s: record %d: %w", name, i, err)
		}
		y := buf[prefix-1] // CIFAR-10: the label; CIFAR-100: the fine label
		if int(y) >= len(c.classes) {
			return fmt.Errorf("%s: record %d has label %d, but there are %d classes", name, i, y, len(c.classes))
		}
		c.labels = append(c.labels, y)
	}
	c.parts = append(c.parts, cifarPart{name: name, r: r, first: first, n: n})
	return nil
}

// Len is the number of images in the split.
func (c *CIFAR) Len() int { return len(c.labels) }

// Classes are the class names from batches.meta.txt / fine_label_names.txt.
func (c *CIFAR) Classes() []string { return c.classes }

// Label is sample i's class (the fine label for CIFAR-100).
func (c *CIFAR) Label(i int) int { return int(c.labels[i]) }

// ID is "train:i" or "test:i", i counting from 0 over the whole split.
func (c *CIFAR) ID(i int) string { return fmt.Sprintf("%s:%d", c.split, i) }

// Spec is the --data spec.
func (c *CIFAR) Spec() string { return c.spec }

// Load returns sample i as a 32×32 RGB Raw image.
func (c *CIFAR) Load(i int) (Sample, error) {
	if i < 0 || i >= len(c.labels) {
		return Sample{}, fmt.Errorf("cifar: sample %d out of range [0,%d)", i, len(c.labels))
	}
	p := c.parts[len(c.parts)-1]
	for _, q := range c.parts {
		if i < q.first+q.n {
			p = q
			break
		}
	}
	var rec [2 + cifarPixels]byte
	buf := rec[:c.rec]
	if _, err := p.r.ReadAt(buf, int64(i-p.first)*int64(c.rec)); err != nil {
		return Sample{}, fmt.Errorf("%s: record %d: %w", p.name, i-p.first, err)
	}
	planes := buf[c.prefix:]
	const plane = cifarSide * cifarSide
	pix := make([]uint8, cifarPixels)
	for j := 0; j < plane; j++ {
		pix[3*j] = planes[j]
		pix[3*j+1] = planes[plane+j]
		pix[3*j+2] = planes[2*plane+j]
	}
	return Sample{Raw: &Raw{W: cifarSide, H: cifarSide, C: 3, Pix: pix}}, nil
}

// Close closes the batch files.
func (c *CIFAR) Close() error {
	var first error
	for _, p := range c.parts {
		if cl, ok := p.r.(io.Closer); ok {
			if err := cl.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	c.parts = nil
	return first
}
