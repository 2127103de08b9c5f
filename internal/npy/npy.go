// Package npy reads and writes NumPy .npy files (format versions 1.0–3.0),
// the project's one parser of the format: float32 ('<f4') and uint8 ('|u1')
// arrays in C order are read and written as they are (goldens produced by
// Python, preprocessed tensors that Python users read with numpy.load);
// Data and ReadFloat64 also read little-endian float16/float64/int64
// ('<f2', '<f8', '<i8') and Fortran-order arrays, converting them (the
// arrays of a JAX .npz checkpoint, float64 goldens).
//
// Readers validate the header before they allocate: the dtype, the order, the
// shape and that shape × element size equals the bytes that follow.
package npy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/cl-dev/cl/internal/atomicfile"
)

var magic = []byte("\x93NUMPY")

// maxHeader bounds the header length we accept (numpy writes < 4 KiB).
const maxHeader = 1 << 16

// MaxDims bounds the number of dimensions of an array.
const MaxDims = 16

// Header describes an array: its dtype descr ("<f4", "|u1", …), its shape
// and whether its data is in Fortran (column-major) order.
type Header struct {
	Descr   string
	Shape   []int
	Fortran bool
}

// ElemSize is the byte size of one element of the dtypes Data converts
// ('<f2', '<f4', '<f8', '<i8', '|u1'), 0 for any other.
func ElemSize(descr string) int {
	switch descr {
	case "<f2":
		return 2
	case "<f4":
		return 4
	case "<f8", "<i8":
		return 8
	case "|u1", "<u1":
		return 1
	}
	return 0
}

// cOrder refuses Fortran-order arrays for the readers that return the data
// as stored.
func (h Header) cOrder() error {
	if h.Fortran {
		return errors.New("npy array is in Fortran order; save it with np.ascontiguousarray")
	}
	return nil
}

// Len is the number of elements (the product of Shape; 1 for a scalar).
func (h Header) Len() int {
	n := 1
	for _, d := range h.Shape {
		n *= d
	}
	return n
}

// ReadFloat32 reads a '<f4' .npy file: the data (row-major) and its shape.
func ReadFloat32(path string) ([]float32, []int, error) {
	return readFile(path, DecodeFloat32)
}

// ReadUint8 reads a '|u1' .npy file: the data (row-major) and its shape.
func ReadUint8(path string) ([]uint8, []int, error) {
	return readFile(path, DecodeUint8)
}

// readFile opens path and decodes it with decode, naming the path in errors.
func readFile[T any](path string, decode func(r io.Reader, size int64) ([]T, []int, error)) ([]T, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	data, shape, err := decode(bufio.NewReader(f), st.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, shape, nil
}

// DecodeFloat32 reads a '<f4' array from r; size is the total byte length of
// the stream, checked against the header before allocating (−1 if unknown).
func DecodeFloat32(r io.Reader, size int64) ([]float32, []int, error) {
	h, hl, err := ReadHeader(r)
	if err != nil {
		return nil, nil, err
	}
	if h.Descr != "<f4" {
		return nil, nil, fmt.Errorf("npy dtype %q, want float32 '<f4'", h.Descr)
	}
	if err := h.cOrder(); err != nil {
		return nil, nil, err
	}
	n := h.Len()
	if err := checkSize(size, hl, int64(n)*4); err != nil {
		return nil, nil, err
	}
	buf, err := readData(r, size, 4*n)
	if err != nil {
		return nil, nil, err
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	return out, h.Shape, nil
}

// DecodeUint8 reads a '|u1' array from r; size as in DecodeFloat32.
func DecodeUint8(r io.Reader, size int64) ([]uint8, []int, error) {
	h, hl, err := ReadHeader(r)
	if err != nil {
		return nil, nil, err
	}
	if h.Descr != "|u1" && h.Descr != "<u1" {
		return nil, nil, fmt.Errorf("npy dtype %q, want uint8 '|u1'", h.Descr)
	}
	if err := h.cOrder(); err != nil {
		return nil, nil, err
	}
	n := h.Len()
	if err := checkSize(size, hl, int64(n)); err != nil {
		return nil, nil, err
	}
	out, err := readData(r, size, n)
	if err != nil {
		return nil, nil, err
	}
	return out, h.Shape, nil
}

// readData reads n bytes. With the stream size unknown it grows the buffer
// as data arrives, so a lying header cannot make it allocate up front.
func readData(r io.Reader, size int64, n int) ([]byte, error) {
	if size >= 0 {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("npy data: %w", err)
		}
		return buf, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r, int64(n)))
	if err != nil {
		return nil, fmt.Errorf("npy data: %w", err)
	}
	if len(buf) != n {
		return nil, fmt.Errorf("npy data: %d bytes, the shape needs %d", len(buf), n)
	}
	return buf, nil
}

func checkSize(size, headerLen, dataLen int64) error {
	if size < 0 {
		if dataLen > 1<<34 {
			return fmt.Errorf("npy array of %d bytes is too large", dataLen)
		}
		return nil
	}
	if size-headerLen != dataLen {
		return fmt.Errorf("npy shape needs %d data bytes but the file has %d", dataLen, size-headerLen)
	}
	return nil
}

// ReadHeader reads the magic, version and header dict; it returns the header
// and the number of bytes consumed. Shapes with more than 2^31 elements, more
// than MaxDims dimensions or a negative dimension are rejected; the dtype is
// not checked here (the readers check it).
func ReadHeader(r io.Reader) (Header, int64, error) {
	var h Header
	pre := make([]byte, 8)
	if _, err := io.ReadFull(r, pre); err != nil {
		return h, 0, fmt.Errorf("not an .npy file: %w", err)
	}
	if !bytes.Equal(pre[:6], magic) {
		return h, 0, errors.New("not an .npy file (bad magic)")
	}
	var hlen int
	consumed := int64(8)
	switch pre[6] {
	case 1:
		b := make([]byte, 2)
		if _, err := io.ReadFull(r, b); err != nil {
			return h, 0, fmt.Errorf("npy header: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint16(b))
		consumed += 2
	case 2, 3:
		b := make([]byte, 4)
		if _, err := io.ReadFull(r, b); err != nil {
			return h, 0, fmt.Errorf("npy header: %w", err)
		}
		hlen = int(binary.LittleEndian.Uint32(b))
		consumed += 4
	default:
		return h, 0, fmt.Errorf("npy format version %d.%d unsupported", pre[6], pre[7])
	}
	if hlen > maxHeader {
		return h, 0, fmt.Errorf("npy header of %d bytes is too long", hlen)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(r, hb); err != nil {
		return h, 0, fmt.Errorf("npy header: %w", err)
	}
	consumed += int64(hlen)
	h, err := parseDict(string(hb))
	if err != nil {
		return h, 0, err
	}
	return h, consumed, nil
}

// parseDict parses numpy's header dict, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
func parseDict(s string) (Header, error) {
	var h Header
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return h, fmt.Errorf("npy header %q is not a dict", s)
	}
	body := s[1 : len(s)-1]
	var haveDescr, haveOrder, haveShape bool
	for len(strings.TrimSpace(body)) > 0 {
		body = strings.TrimSpace(body)
		key, rest, err := quoted(body)
		if err != nil {
			return h, fmt.Errorf("npy header: %w", err)
		}
		rest = strings.TrimSpace(rest)
		if !strings.HasPrefix(rest, ":") {
			return h, fmt.Errorf("npy header: missing ':' after %q", key)
		}
		rest = strings.TrimSpace(rest[1:])
		switch key {
		case "descr":
			h.Descr, rest, err = quoted(rest)
			if err != nil {
				return h, fmt.Errorf("npy header descr: %w", err)
			}
			haveDescr = true
		case "fortran_order":
			switch {
			case strings.HasPrefix(rest, "False"):
				rest = rest[5:]
			case strings.HasPrefix(rest, "True"):
				rest = rest[4:]
				h.Fortran = true
			default:
				return h, errors.New("npy header: bad fortran_order")
			}
			haveOrder = true
		case "shape":
			end := strings.IndexByte(rest, ')')
			if !strings.HasPrefix(rest, "(") || end < 0 {
				return h, errors.New("npy header: bad shape")
			}
			h.Shape = []int{}
			total := int64(1)
			for _, p := range strings.Split(rest[1:end], ",") {
				p = strings.TrimSpace(p)
				if p == "" {
					continue
				}
				p = strings.TrimSuffix(p, "L")
				d, err := strconv.Atoi(p)
				if err != nil || d < 0 {
					return h, fmt.Errorf("npy header: bad dimension %q", p)
				}
				total *= int64(d)
				if total > math.MaxInt32 {
					return h, errors.New("npy array has more than 2^31 elements")
				}
				if len(h.Shape) == MaxDims {
					return h, fmt.Errorf("npy array has more than %d dimensions", MaxDims)
				}
				h.Shape = append(h.Shape, d)
			}
			rest = rest[end+1:]
			haveShape = true
		default:
			return h, fmt.Errorf("npy header: unknown key %q", key)
		}
		rest = strings.TrimSpace(rest)
		rest = strings.TrimPrefix(rest, ",")
		body = rest
	}
	if !haveDescr || !haveOrder || !haveShape {
		return h, errors.New("npy header lacks descr, fortran_order or shape")
	}
	return h, nil
}

func quoted(s string) (string, string, error) {
	if len(s) < 2 || (s[0] != '\'' && s[0] != '"') {
		return "", "", fmt.Errorf("expected a quoted string at %q", s)
	}
	end := strings.IndexByte(s[1:], s[0])
	if end < 0 {
		return "", "", errors.New("unterminated string")
	}
	return s[1 : end+1], s[end+2:], nil
}

// header builds a version 1.0 header padded so the data starts at a multiple
// of 64 bytes, as numpy does.
func header(descr string, shape []int) []byte {
	var sb strings.Builder
	sb.WriteString("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (")
	for i, d := range shape {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(strconv.Itoa(d))
	}
	if len(shape) == 1 {
		sb.WriteString(",")
	}
	sb.WriteString("), }")
	dict := sb.String()
	total := 10 + len(dict) + 1
	pad := (64 - total%64) % 64
	dict += strings.Repeat(" ", pad) + "\n"
	out := make([]byte, 0, 10+len(dict))
	out = append(out, magic...)
	out = append(out, 1, 0)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(dict)))
	return append(out, dict...)
}

func checkShape(shape []int, n int) error {
	p := 1
	for _, d := range shape {
		if d < 0 {
			return fmt.Errorf("npy: negative dimension in shape %v", shape)
		}
		p *= d
	}
	if p != n {
		return fmt.Errorf("npy: shape %v needs %d values, have %d", shape, p, n)
	}
	return nil
}

// EncodeFloat32 writes data with the given shape as a '<f4' .npy stream.
func EncodeFloat32(w io.Writer, data []float32, shape []int) error {
	if err := checkShape(shape, len(data)); err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	bw.Write(header("<f4", shape))
	var b [4]byte
	for _, v := range data {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		bw.Write(b[:])
	}
	return bw.Flush()
}

// EncodeUint8 writes data with the given shape as a '|u1' .npy stream.
func EncodeUint8(w io.Writer, data []uint8, shape []int) error {
	if err := checkShape(shape, len(data)); err != nil {
		return err
	}
	if _, err := w.Write(header("|u1", shape)); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// WriteFloat32 writes a '<f4' .npy file atomically.
func WriteFloat32(path string, data []float32, shape []int) error {
	if err := checkShape(shape, len(data)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error { return EncodeFloat32(w, data, shape) })
}

// WriteUint8 writes a '|u1' .npy file atomically.
func WriteUint8(path string, data []uint8, shape []int) error {
	if err := checkShape(shape, len(data)); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error { return EncodeUint8(w, data, shape) })
}
