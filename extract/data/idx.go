package data

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// IDX type codes (the third magic byte).
const idxUbyte = 0x08

// maxIDXBytes bounds the data an IDX header may announce (4 GiB).
const maxIDXBytes = 4 << 30

// IDXArray is an unsigned-byte IDX array: Data holds product(Dims) bytes in
// row-major order.
type IDXArray struct {
	Dims []int
	Data []byte
}

// ParseIDX decodes an IDX byte image (raw, not gzipped): the magic
// 0x00 0x00 0x08 ndims, ndims big-endian uint32 sizes, then the bytes. Only
// unsigned-byte arrays (type 0x08) are accepted; the length must match the
// header exactly.
func ParseIDX(b []byte) (*IDXArray, error) {
	return ReadIDX(bytes.NewReader(b), int64(len(b)))
}

// ReadIDX decodes an IDX stream. size is the stream's length when known (a
// raw file), or -1 (a gzip stream): the header is then checked against it
// before any large allocation.
func ReadIDX(r io.Reader, size int64) (*IDXArray, error) {
	return readIDX(r, size, 0, -1)
}

// idxHeader reads the magic number and the sizes: dims and the element
// count they announce, and the header's length in bytes.
func idxHeader(r io.Reader) (dims []int, count, head int64, err error) {
	var magic [4]byte
	if _, err := io.ReadFull(r, magic[:]); err != nil {
		return nil, 0, 0, fmt.Errorf("not an IDX file: too short for the 4-byte magic number")
	}
	if magic[0] != 0 || magic[1] != 0 {
		return nil, 0, 0, fmt.Errorf("not an IDX file: magic number %x does not start with two zero bytes", magic)
	}
	if magic[2] != idxUbyte {
		return nil, 0, 0, fmt.Errorf("IDX element type 0x%02x not supported (only unsigned bytes, 0x08)", magic[2])
	}
	nd := int(magic[3])
	if nd == 0 {
		return nil, 0, 0, fmt.Errorf("IDX file has 0 dimensions")
	}
	dimBytes := make([]byte, 4*nd)
	if _, err := io.ReadFull(r, dimBytes); err != nil {
		return nil, 0, 0, fmt.Errorf("IDX header truncated: %d dimensions announced", nd)
	}
	dims = make([]int, nd)
	count = 1
	for i := range dims {
		d := int64(binary.BigEndian.Uint32(dimBytes[4*i:]))
		dims[i] = int(d)
		if d != 0 && count > maxIDXBytes/d {
			return nil, 0, 0, fmt.Errorf("IDX dimensions %v are too large", dims[:i+1])
		}
		count *= d
	}
	return dims, count, int64(4 + 4*nd), nil
}

// readIDX is ReadIDX for the first rows entries of the first dimension
// (all of them when rows < 0 or rows ≥ Dims[0]); Dims stays as the header
// says and Data holds the rows read. Only when every row is read is the
// stream checked to end right after the data (a gzip stream then also
// verifies its checksum); reading stops after the rows otherwise. When size
// < 0, up to prealloc bytes are allocated at once (the data grows as read
// beyond that), so a trustworthy bound avoids the copies of a growing buffer.
func readIDX(r io.Reader, size, prealloc int64, rows int) (*IDXArray, error) {
	dims, count, head, err := idxHeader(r)
	if err != nil {
		return nil, err
	}
	a := &IDXArray{Dims: dims}
	if size >= 0 && size-head != count {
		return nil, fmt.Errorf("IDX header says %v = %d bytes of data, but the file has %d (truncated or wrong file?)", a.Dims, count, size-head)
	}
	want, all := count, true
	if rows >= 0 && rows < dims[0] {
		want, all = count/int64(dims[0])*int64(rows), false
	}
	if size >= 0 || want <= prealloc {
		a.Data = make([]byte, want)
		var n int
		n, err = io.ReadFull(r, a.Data)
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			a.Data, err = a.Data[:n], nil
		}
	} else {
		var buf bytes.Buffer
		buf.Grow(int(min(want, prealloc)))
		_, err = buf.ReadFrom(io.LimitReader(r, want))
		a.Data = buf.Bytes()
	}
	if err != nil {
		return nil, fmt.Errorf("reading IDX data: %w", err)
	}
	if int64(len(a.Data)) != want {
		return nil, fmt.Errorf("IDX header says %v = %d bytes of data, but there are only %d (truncated?)", a.Dims, count, len(a.Data))
	}
	if !all {
		return a, nil
	}
	// Drain to EOF so that a gzip stream verifies its checksum.
	var one [1]byte
	n, err := io.ReadFull(r, one[:])
	if n != 0 {
		return nil, fmt.Errorf("IDX header says %v = %d bytes of data, but there are more (wrong file?)", a.Dims, count)
	}
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("reading IDX data: %w", err)
	}
	return a, nil
}

// ReadIDXFile reads an IDX file, gzipped (detected by its magic bytes, not
// its name) or raw. Errors name the file.
func ReadIDXFile(path string) (*IDXArray, error) { return readIDXFile(path, -1) }

// readIDXFile is ReadIDXFile for the first rows entries of the first
// dimension (all when rows < 0; see readIDX): a gzip stream is
// decompressed only that far.
func readIDXFile(path string, rows int) (*IDXArray, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, fmt.Errorf("idx: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("idx: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<16)
	var a *IDXArray
	if m, _ := br.Peek(2); len(m) == 2 && m[0] == 0x1f && m[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: corrupt gzip stream: %w", path, err)
		}
		zr.Multistream(false)
		// Deflate expands at most 1032:1, so the header's count is trusted
		// for a single allocation when the file could hold it.
		a, err = readIDX(zr, -1, 1032*st.Size(), rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	} else {
		a, err = readIDX(br, st.Size(), 0, rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return a, nil
}

// IDX is an image data set in IDX files: images [N,H,W] unsigned bytes (grey)
// and labels [N]. Class names come from an optional names file (one per
// line, index = label) or are "0", "1", …, up to the largest label.
type IDX struct {
	spec    string
	base    string
	images  *IDXArray
	labels  []byte
	classes []string
}

// OpenIDX opens arg = IMAGES,LABELS[,NAMES.txt], reading both files
// whole.
func OpenIDX(arg, spec string) (*IDX, error) { return OpenIDXFirst(arg, spec, 0) }

// OpenIDXFirst is OpenIDX for the first n samples (all when n ≤ 0): the
// headers are checked in full (both files announce the same N; a raw file
// has exactly the bytes its header announces), but only the first n images
// and labels are read, and a gzip stream is decompressed no further.
func OpenIDXFirst(arg, spec string, n int) (*IDX, error) {
	parts := strings.Split(arg, ",")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("--data %s: want idx:IMAGES,LABELS[,NAMES.txt] (e.g. idx:train-images-idx3-ubyte.gz,train-labels-idx1-ubyte.gz)", spec)
	}
	rows := -1
	if n > 0 {
		rows = n
	}
	images, err := readIDXFile(parts[0], rows)
	if err != nil {
		return nil, err
	}
	labels, err := readIDXFile(parts[1], rows)
	if err != nil {
		return nil, err
	}
	var names []string
	if len(parts) == 3 {
		if names, err = readNames(parts[2]); err != nil {
			return nil, err
		}
	}
	s, err := newIDX(spec, filepath.Base(parts[0]), images, labels, names)
	if err != nil {
		return nil, fmt.Errorf("--data %s: %w", spec, err)
	}
	return s, nil
}

// newIDX checks shapes and labels of already-parsed arrays.
func newIDX(spec, base string, images, labels *IDXArray, names []string) (*IDX, error) {
	if len(images.Dims) != 3 {
		return nil, fmt.Errorf("images file %s has shape %v; want [N,H,W] (an idx3 file)", base, images.Dims)
	}
	if len(labels.Dims) != 1 {
		return nil, fmt.Errorf("labels file has shape %v; want [N] (an idx1 file; are IMAGES and LABELS swapped?)", labels.Dims)
	}
	if images.Dims[0] != labels.Dims[0] {
		return nil, fmt.Errorf("%d images but %d labels", images.Dims[0], labels.Dims[0])
	}
	if images.Dims[1] == 0 || images.Dims[2] == 0 {
		return nil, fmt.Errorf("images have size %dx%d", images.Dims[2], images.Dims[1])
	}
	// Both may hold only their first rows (OpenIDXFirst).
	if rows := len(images.Data) / (images.Dims[1] * images.Dims[2]); rows != len(labels.Data) {
		return nil, fmt.Errorf("read %d images but %d labels", rows, len(labels.Data))
	}
	maxY := -1
	for _, y := range labels.Data {
		maxY = max(maxY, int(y))
	}
	if names == nil {
		for k := 0; k <= maxY; k++ {
			names = append(names, strconv.Itoa(k))
		}
	} else if maxY >= len(names) {
		for i, y := range labels.Data {
			if int(y) >= len(names) {
				return nil, fmt.Errorf("label %d of sample %d is outside the %d class names", y, i, len(names))
			}
		}
	}
	return &IDX{spec: spec, base: base, images: images, labels: labels.Data, classes: names}, nil
}

// Len is the number of images.
func (s *IDX) Len() int { return len(s.labels) }

// Classes are the class names.
func (s *IDX) Classes() []string { return s.classes }

// Label is sample i's class.
func (s *IDX) Label(i int) int { return int(s.labels[i]) }

// ID is "IMAGES-base-name:i", e.g. "train-images-idx3-ubyte.gz:123".
func (s *IDX) ID(i int) string { return s.base + ":" + strconv.Itoa(i) }

// Spec is the --data spec.
func (s *IDX) Spec() string { return s.spec }

// Load returns image i as a grey H×W Raw image (a copy).
func (s *IDX) Load(i int) (Sample, error) {
	if i < 0 || i >= len(s.labels) {
		return Sample{}, fmt.Errorf("idx: sample %d out of range [0,%d)", i, len(s.labels))
	}
	h, w := s.images.Dims[1], s.images.Dims[2]
	pix := append([]uint8(nil), s.images.Data[i*h*w:(i+1)*h*w]...)
	return Sample{Raw: &Raw{W: w, H: h, C: 1, Pix: pix}}, nil
}

// Close is a no-op: the arrays are in memory.
func (s *IDX) Close() error { return nil }
