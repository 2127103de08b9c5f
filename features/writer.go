package features

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/cl-dev/cl/internal/atomicfile"
)

// Header is what a feature file says besides its rows: the feature width
// and the metadata of Set.
type Header struct {
	// D is the feature dimension (columns of "features").
	D int
	// Classes are the class names; a label indexes it. Empty for an
	// unlabelled file, whose every label is Unlabelled.
	Classes []string
	// Model, ModelSHA256, Fingerprint, Preprocess and Source are as in Set.
	Model, ModelSHA256, Fingerprint, Preprocess, Source string
}

// Writer streams rows into a feature file so that the rows never need to be
// in memory together: they go straight to a temporary file beside the
// destination, after a header space reserved up front; Commit writes the
// labels and the header and renames the file into place (atomically, as
// Set.Write). Memory use is O(rows) for labels and ids only, not O(rows × D).
//
// A Writer is not safe for concurrent use.
type Writer struct {
	path     string
	h        Header
	f        *atomicfile.File
	bw       *bufio.Writer
	reserved int64 // bytes reserved for the JSON header (multiple of 8)
	labels   []int64
	ids      []string
	rowBuf   []byte
	err      error
}

// Create starts writing a feature file at path. ids are the ids of every
// row that may be appended (rows may be left out); they size the header
// space. When the final header does not fit it (ids not in the list),
// Commit copies the rows once more — correct, only slower.
func Create(path string, h Header, ids []string) (*Writer, error) {
	if h.D <= 0 {
		return nil, fmt.Errorf("features: dimension %d must be positive", h.D)
	}
	if err := ValidateClasses(h.Classes); err != nil {
		return nil, fmt.Errorf("features: %w", err)
	}
	w := &Writer{path: path, h: h, rowBuf: make([]byte, 4*h.D)}
	js, err := w.header(len(ids), ids)
	if err != nil {
		return nil, err
	}
	w.reserved = int64(pad8(len(js)))
	f, err := atomicfile.Create(path)
	if err != nil {
		return nil, err
	}
	w.f = f
	if _, err := f.Seek(8+w.reserved, io.SeekStart); err != nil {
		f.Abort()
		return nil, fmt.Errorf("writing %s: %w", path, err)
	}
	w.bw = bufio.NewWriterSize(f, 1<<20)
	return w, nil
}

func pad8(n int) int { return (n + 7) &^ 7 }

// header encodes the safetensors JSON header for n rows with the given ids.
func (w *Writer) header(n int, ids []string) ([]byte, error) {
	type entry struct {
		DType       string   `json:"dtype"`
		Shape       []int64  `json:"shape"`
		DataOffsets [2]int64 `json:"data_offsets"`
	}
	fbytes := int64(n) * int64(w.h.D) * 4
	classes, err := json.Marshal(nonNil(w.h.Classes))
	if err != nil {
		return nil, err
	}
	idsJSON, err := json.Marshal(nonNil(ids))
	if err != nil {
		return nil, err
	}
	hdr := map[string]any{
		"__metadata__": map[string]string{
			"format":       Format,
			"classes":      string(classes),
			"ids":          string(idsJSON),
			"model":        w.h.Model,
			"model_sha256": w.h.ModelSHA256,
			"fingerprint":  w.h.Fingerprint,
			"preprocess":   w.h.Preprocess,
			"source":       w.h.Source,
		},
		"features": entry{"F32", []int64{int64(n), int64(w.h.D)}, [2]int64{0, fbytes}},
		"labels":   entry{"I64", []int64{int64(n)}, [2]int64{fbytes, fbytes + 8*int64(n)}},
	}
	return json.Marshal(hdr)
}

// Rows is the number of rows appended so far.
func (w *Writer) Rows() int { return len(w.labels) }

// Append adds one row (len D) with its label and id. Non-finite values are an
// error naming the id.
func (w *Writer) Append(row []float32, label int, id string) error {
	if w.err != nil {
		return w.err
	}
	if len(row) != w.h.D {
		return fmt.Errorf("features: row %s has %d values, want %d", id, len(row), w.h.D)
	}
	if (label < 0 || label >= len(w.h.Classes)) && !(label == Unlabelled && len(w.h.Classes) == 0) {
		return fmt.Errorf("features: row %s has label %d outside the %d classes", id, label, len(w.h.Classes))
	}
	for j, v := range row {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return fmt.Errorf("features: %s: the model produced %v at column %d", id, v, j)
		}
		binary.LittleEndian.PutUint32(w.rowBuf[4*j:], math.Float32bits(v))
	}
	if _, err := w.bw.Write(w.rowBuf); err != nil {
		w.err = fmt.Errorf("writing %s: %w", w.path, err)
		return w.err
	}
	w.labels = append(w.labels, int64(label))
	w.ids = append(w.ids, id)
	return nil
}

// Commit writes labels and header and publishes the file under its name.
func (w *Writer) Commit() error {
	if w.err != nil {
		w.Abort()
		return w.err
	}
	fail := func(err error) error {
		w.Abort()
		w.err = fmt.Errorf("writing %s: %w", w.path, err)
		return w.err
	}
	var b [8]byte
	for _, y := range w.labels {
		binary.LittleEndian.PutUint64(b[:], uint64(y))
		if _, err := w.bw.Write(b[:]); err != nil {
			return fail(err)
		}
	}
	if err := w.bw.Flush(); err != nil {
		return fail(err)
	}
	js, err := w.header(len(w.labels), w.ids)
	if err != nil {
		return fail(err)
	}
	if int64(len(js)) > w.reserved {
		return w.commitCopy(js)
	}
	hdr := make([]byte, 8+w.reserved)
	binary.LittleEndian.PutUint64(hdr, uint64(w.reserved))
	copy(hdr[8:], js)
	for i := 8 + len(js); i < len(hdr); i++ {
		hdr[i] = ' '
	}
	if _, err := w.f.WriteAt(hdr, 0); err != nil {
		return fail(err)
	}
	if err := w.f.Commit(); err != nil {
		w.err = err
		return err
	}
	w.err = fmt.Errorf("features: %s already committed", w.path)
	return nil
}

// commitCopy writes a second file with the larger header and the data
// copied from the first.
func (w *Writer) commitCopy(js []byte) error {
	old := w.f
	defer old.Abort()
	size := int64(len(w.labels)) * (int64(w.h.D)*4 + 8)
	err := atomicfile.WriteFile(w.path, func(out io.Writer) error {
		n := pad8(len(js))
		hdr := make([]byte, 8+n)
		binary.LittleEndian.PutUint64(hdr, uint64(n))
		copy(hdr[8:], js)
		for i := 8 + len(js); i < len(hdr); i++ {
			hdr[i] = ' '
		}
		if _, err := out.Write(hdr); err != nil {
			return err
		}
		_, err := io.Copy(out, io.NewSectionReader(old.File, 8+w.reserved, size))
		return err
	})
	if err != nil {
		w.err = err
		return err
	}
	w.err = fmt.Errorf("features: %s already committed", w.path)
	return nil
}

// Abort discards the file; nothing is left under the final name or beside
// it. Safe to call after Commit and more than once.
func (w *Writer) Abort() {
	if w.f != nil {
		w.f.Abort()
	}
	if w.err == nil {
		w.err = fmt.Errorf("features: %s aborted", w.path)
	}
}

// tempName is the name of the temporary file (tests).
func (w *Writer) tempName() string { return w.f.File.Name() }
