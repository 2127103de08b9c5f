// Package data reads image data sets for feature extraction: labelled image
// folders in torchvision's ImageFolder layout, the CIFAR-10/100 binary
// releases, IDX files (MNIST, Fashion-MNIST) and CSV file lists; and
// unlabelled images to predict (a folder, a CSV list of paths, or files).
//
// Open parses a --data spec and validates everything it can (folders exist,
// file sizes match their headers, labels are in range) before any image is
// decoded, so that a long extraction never fails late on a typo.
package data

import (
	"fmt"
	"os"
	"strings"
	"unicode/utf8"
)

// Source is an image data set with a fixed order. Index i runs over
// [0, Len()). Implementations are safe for concurrent Load calls. A source
// is labelled (Classes non-empty, every label a class index) or unlabelled
// (no classes, every label Unlabelled).
type Source interface {
	// Len is the number of samples.
	Len() int
	// Classes are the class names (valid UTF-8, unique); a label is an
	// index into it. Empty for an unlabelled source.
	Classes() []string
	// Label is the class index of sample i, in [0, len(Classes())), or
	// Unlabelled.
	Label(i int) int
	// ID identifies sample i: a path relative to the data set
	// ("cat/001.jpg") or "split:index" ("train:123").
	ID(i int) string
	// Load returns the pixels of sample i: encoded image bytes for file
	// sources, raw pixels for array sources. Errors name the file.
	Load(i int) (Sample, error)
	// Spec is the --data spec the source was opened with.
	Spec() string
	// Close releases open files.
	Close() error
}

// Unlabelled is the label of every sample of an unlabelled source.
const Unlabelled = -1

// Labelled reports whether s has classes (and so a label for every sample).
func Labelled(s Source) bool { return len(s.Classes()) > 0 }

// Sample is one image as a source stores it: exactly one of Encoded and Raw
// is set.
type Sample struct {
	// Encoded is the bytes of an image file (JPEG, PNG, GIF, BMP, WebP, …),
	// to be decoded by extract/imageproc.
	Encoded []byte
	// Raw is decoded 8-bit pixels (CIFAR, IDX).
	Raw *Raw
}

// Raw is an 8-bit image, row-major H×W×C (interleaved), C = 1 (grey) or 3
// (R, G, B). Pix has length W·H·C.
type Raw struct {
	W, H, C int
	Pix     []uint8
}

// Specs is the one-line summary of the accepted --data forms, for help texts
// and errors.
const Specs = "DIR (ImageFolder: DIR/<class>/<image>), cifar10:DIR[:train|test], cifar100:DIR[:train|test], " +
	"idx:IMAGES,LABELS[,NAMES.txt], list:FILE.csv, images:DIR (unlabelled)"

// Open parses a --data spec and opens the data set it names:
//
//	DIR                       ImageFolder: DIR/<class>/…/<image>
//	cifar10:DIR[:train|test]  CIFAR-10 binary (DIR = cifar-10-batches-bin or its parent)
//	cifar100:DIR[:train|test] CIFAR-100 binary (DIR = cifar-100-binary or its parent), fine labels
//	idx:IMAGES,LABELS[,NAMES] IDX files (MNIST, Fashion-MNIST), gzipped or raw
//	list:FILE.csv             rows "path,label" (or "path": unlabelled); paths relative to the CSV's folder
//	images:DIR                every image under DIR, unlabelled (for prediction)
//
// The split defaults to train. Every file is checked before Open returns;
// files that must be regular files (lists, IDX, CIFAR, names) are refused
// without reading when they are not (a named pipe would block for ever).
func Open(spec string) (Source, error) { return OpenFirst(spec, 0) }

// OpenFirst is Open for the first n samples only (all when n ≤ 0): the
// source returned has at most n samples, and a source that is read into
// memory (IDX) reads no more than those, so that a small n on a large file
// costs little.
func OpenFirst(spec string, n int) (Source, error) {
	s, err := open(spec, n)
	if err != nil {
		return nil, err
	}
	return Limit(s, n), nil
}

func open(spec string, n int) (Source, error) {
	kind, rest, ok := strings.Cut(spec, ":")
	if ok {
		switch kind {
		case "cifar10":
			return OpenCIFAR(10, rest, spec)
		case "cifar100":
			return OpenCIFAR(100, rest, spec)
		case "idx":
			return OpenIDXFirst(rest, spec, n)
		case "list":
			return OpenList(rest, spec)
		case "images":
			return OpenImages(rest, spec)
		}
	}
	if spec == "" {
		return nil, fmt.Errorf("--data is empty; use one of %s", Specs)
	}
	st, err := os.Stat(spec)
	if err != nil {
		if ok && !strings.ContainsAny(kind, `/\.`) {
			return nil, fmt.Errorf("--data %q: unknown kind %q; use one of %s", spec, kind, Specs)
		}
		return nil, fmt.Errorf("--data %q: %w; use one of %s", spec, err, Specs)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("--data %q is a file, not an image folder; use one of %s", spec, Specs)
	}
	return OpenFolder(spec)
}

// Limit returns a view of the first n samples of s (all of them when n ≤ 0
// or n ≥ s.Len()). Closing the view closes s.
func Limit(s Source, n int) Source {
	if n <= 0 || n >= s.Len() {
		return s
	}
	return limited{s, n}
}

type limited struct {
	Source
	n int
}

func (l limited) Len() int { return l.n }

func (l limited) Spec() string { return l.Source.Spec() }

// Path is the file of sample i when the source has files (Files), else "".
func (l limited) Path(i int) string {
	if f, ok := l.Source.(interface{ Path(int) string }); ok {
		return f.Path(i)
	}
	return ""
}

// validateNames checks class names from a names file: non-empty, valid
// UTF-8, unique.
func validateNames(file string, names []string) error {
	seen := map[string]int{}
	for i, n := range names {
		if n == "" {
			return fmt.Errorf("%s: line %d: empty class name", file, i+1)
		}
		if !utf8.ValidString(n) {
			return fmt.Errorf("%s: line %d: class name %q is not valid UTF-8 (class names are stored as JSON text; re-encode the file as UTF-8)", file, i+1, n)
		}
		if j, ok := seen[n]; ok {
			return fmt.Errorf("%s: lines %d and %d: class name %q repeated", file, j+1, i+1, n)
		}
		seen[n] = i
	}
	return nil
}

// readNames reads one class name per line, ignoring trailing blank lines and
// surrounding white space (batches.meta.txt ends with blank lines).
func readNames(file string) ([]string, error) {
	b, err := readRegular(file)
	if err != nil {
		return nil, fmt.Errorf("reading class names: %w", err)
	}
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
		lines = lines[:len(lines)-1]
	}
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s: no class names", file)
	}
	if err := validateNames(file, lines); err != nil {
		return nil, err
	}
	return lines, nil
}
