package vit

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/cl-dev/cl/internal/safetensors"
)

// Load reads a ViT checkpoint: timm's model.safetensors (state_dict names) or
// Google's original .npz (JAX names), told apart by their first bytes.
// heads = 0 takes W/64 for safetensors (timm's ViT-B/L/H all use head dim 64)
// and the stored head count for .npz. Tensors may be float32, float16 or
// bfloat16 (float64 too in .npz); all are converted to float32. Missing,
// unknown or mis-shaped tensors are reported together, naming the file.
func Load(path string, heads int) (*Weights, error) {
	if heads < 0 || heads > MaxWidth {
		return nil, fmt.Errorf("heads %d out of range", heads)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading checkpoint: %w", err)
	}
	return Parse(path, data, heads)
}

// Parse is Load on the bytes of a checkpoint file; name is used in errors.
func Parse(name string, data []byte, heads int) (*Weights, error) {
	var w *Weights
	var err error
	switch {
	case len(data) >= 4 && bytes.Equal(data[:4], []byte("PK\x03\x04")) || len(data) >= 4 && bytes.Equal(data[:4], []byte("PK\x05\x06")):
		arrays, e := readNPZ(name, data)
		if e != nil {
			return nil, e
		}
		w, err = fromJAX(newTensorSet(name, arrays), heads)
	case len(data) >= 9 && data[8] == '{':
		f, e := safetensors.Parse(data)
		if e != nil {
			return nil, fmt.Errorf("%s: %w", name, e)
		}
		arrays, e := safetensorsArrays(name, f)
		if e != nil {
			return nil, e
		}
		w, err = fromTimm(newTensorSet(name, arrays), heads)
	default:
		return nil, fmt.Errorf("%s is neither a safetensors file nor a numpy .npz archive (for a PyTorch .bin/.pth, convert it to safetensors first)", name)
	}
	if err != nil {
		return nil, err
	}
	if err := w.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return w, nil
}

// safetensorsArrays converts every tensor to float32.
func safetensorsArrays(name string, f *safetensors.File) (map[string]array, error) {
	out := make(map[string]array, len(f.Tensors))
	for key, t := range f.Tensors {
		shape := make([]int, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = int(d)
		}
		var v []float32
		switch t.DType {
		case safetensors.F32:
			v = t.Float32s()
		case safetensors.F16:
			v = make([]float32, len(t.Data)/2)
			for i := range v {
				v[i] = halfToFloat(binary.LittleEndian.Uint16(t.Data[2*i:]))
			}
		case safetensors.BF16:
			v = make([]float32, len(t.Data)/2)
			for i := range v {
				v[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(t.Data[2*i:])) << 16)
			}
		case safetensors.F64:
			d := t.Float64s()
			v = make([]float32, len(d))
			for i, x := range d {
				v[i] = float32(x)
			}
		default:
			return nil, fmt.Errorf("%s: tensor %q is %s; a ViT checkpoint holds F32, F16, BF16 or F64 tensors", name, key, t.DType)
		}
		out[key] = array{shape: shape, data: v}
	}
	return out, nil
}

// halfToFloat converts an IEEE 754 binary16 value.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac·2^-24
		f := float32(frac) * float32(1.0/16777216.0)
		if sign != 0 {
			return -f
		}
		return f
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// MaxNPZEntries bounds the number of arrays in an .npz archive.
const MaxNPZEntries = 100000

// readNPZ reads every array of a numpy .npz (zip of .npy files, stored or
// deflated) as float32.
func readNPZ(name string, data []byte) (map[string]array, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable .npz (zip) archive: %v (truncated download?)", name, err)
	}
	if len(zr.File) > MaxNPZEntries {
		return nil, fmt.Errorf("%s: %d entries in the archive, more than %d", name, len(zr.File), MaxNPZEntries)
	}
	out := make(map[string]array, len(zr.File))
	for _, zf := range zr.File {
		key := strings.TrimSuffix(zf.Name, ".npy")
		if key == zf.Name {
			return nil, fmt.Errorf("%s: entry %q is not a .npy array", name, zf.Name)
		}
		a, err := readNPYEntry(zf, int64(len(data)))
		if err != nil {
			return nil, fmt.Errorf("%s: array %q: %w", name, key, err)
		}
		out[key] = a
	}
	return out, nil
}

func readNPYEntry(zf *zip.File, archiveSize int64) (array, error) {
	rc, err := zf.Open()
	if err != nil {
		return array{}, err
	}
	defer rc.Close()
	// The header is small; read it first, then exactly the data it announces.
	br := io.Reader(rc)
	hdr, err := readNPYHeader(br)
	if err != nil {
		return array{}, err
	}
	count := int64(1)
	for _, d := range hdr.shape {
		if d < 0 || (d > 0 && count > math.MaxInt64/16/int64(d)) {
			return array{}, fmt.Errorf("invalid shape %v", hdr.shape)
		}
		count *= int64(d)
	}
	nbytes := count * int64(hdr.size)
	// Deflate expands at most ~1032×: refuse shapes the entry cannot hold,
	// and let the buffer grow with the bytes actually read.
	maxBytes := int64(zf.CompressedSize64)
	if zf.Method != zip.Store {
		maxBytes = 1032*maxBytes + 1024
	}
	if nbytes > int64(zf.UncompressedSize64) || nbytes > maxBytes || nbytes > 1032*archiveSize {
		return array{}, fmt.Errorf("shape %s needs %d bytes but the entry holds %d (truncated or corrupt)", shapeString(hdr.shape), nbytes, zf.UncompressedSize64)
	}
	raw, err := io.ReadAll(io.LimitReader(br, nbytes))
	if err != nil || int64(len(raw)) != nbytes {
		return array{}, fmt.Errorf("reading %d data bytes for shape %s: got %d, %v (truncated or corrupt)", nbytes, shapeString(hdr.shape), len(raw), err)
	}
	// Reading to the end lets archive/zip verify the entry's CRC-32.
	if extra, err := io.Copy(io.Discard, br); err != nil {
		return array{}, fmt.Errorf("corrupt data: %v", err)
	} else if extra != 0 {
		return array{}, fmt.Errorf("%d bytes after the data of shape %s (corrupt entry)", extra, shapeString(hdr.shape))
	}
	v := make([]float32, count)
	switch hdr.descr {
	case "<f4":
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case "<f2":
		for i := range v {
			v[i] = halfToFloat(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case "<f8":
		for i := range v {
			v[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	}
	if hdr.fortran {
		v = fromFortran(v, hdr.shape)
	}
	return array{shape: hdr.shape, data: v}, nil
}

// fromFortran reorders column-major (Fortran) data of the given shape into
// row-major order.
func fromFortran(v []float32, shape []int) []float32 {
	if len(shape) < 2 {
		return v
	}
	out := make([]float32, len(v))
	idx := make([]int, len(shape))
	for c := range out { // c walks the row-major order; idx is its multi-index
		f, stride := 0, 1
		for k := range shape {
			f += idx[k] * stride
			stride *= shape[k]
		}
		out[c] = v[f]
		for k := len(shape) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	return out
}

type npyHeader struct {
	descr   string
	size    int
	shape   []int
	fortran bool
}

// readNPYHeader parses the .npy magic, version and header dict
// ({'descr': '<f4', 'fortran_order': False, 'shape': (1, 197, 768), }).
func readNPYHeader(r io.Reader) (npyHeader, error) {
	var h npyHeader
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return h, fmt.Errorf("not a .npy array: %v", err)
	}
	if !bytes.Equal(pre[:6], []byte("\x93NUMPY")) {
		return h, fmt.Errorf("not a .npy array (bad magic)")
	}
	var hlen int
	switch pre[6] {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return h, fmt.Errorf("truncated .npy header")
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return h, fmt.Errorf("truncated .npy header")
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return h, fmt.Errorf(".npy version %d.%d unsupported", pre[6], pre[7])
	}
	if hlen > 1<<20 {
		return h, fmt.Errorf(".npy header of %d bytes is too long", hlen)
	}
	buf := make([]byte, hlen)
	if _, err := io.ReadFull(r, buf); err != nil {
		return h, fmt.Errorf("truncated .npy header")
	}
	dict := string(buf)
	descr, ok := npyField(dict, "descr")
	if !ok {
		return h, fmt.Errorf(".npy header without descr: %q", dict)
	}
	h.descr = strings.Trim(descr, "'\" ")
	switch h.descr {
	case "<f4":
		h.size = 4
	case "<f2":
		h.size = 2
	case "<f8":
		h.size = 8
	default:
		return h, fmt.Errorf("dtype %s unsupported: a checkpoint array must be little-endian float16/32/64 (<f2, <f4, <f8)", h.descr)
	}
	fo, ok := npyField(dict, "fortran_order")
	if !ok {
		return h, fmt.Errorf(".npy header without fortran_order: %q", dict)
	}
	switch strings.TrimSpace(fo) {
	case "False":
	case "True":
		h.fortran = true
	default:
		return h, fmt.Errorf(".npy fortran_order %q is not True or False", fo)
	}
	sh, ok := npyField(dict, "shape")
	if !ok {
		return h, fmt.Errorf(".npy header without shape: %q", dict)
	}
	sh = strings.TrimSpace(sh)
	if len(sh) < 2 || sh[0] != '(' || sh[len(sh)-1] != ')' {
		return h, fmt.Errorf(".npy shape %q is not a tuple", sh)
	}
	h.shape = []int{}
	for _, part := range strings.Split(sh[1:len(sh)-1], ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		d, err := strconv.Atoi(strings.TrimSuffix(part, "L"))
		if err != nil || d < 0 {
			return h, fmt.Errorf(".npy shape %q is invalid", sh)
		}
		h.shape = append(h.shape, d)
	}
	if len(h.shape) > 8 {
		return h, fmt.Errorf(".npy shape %q has too many dimensions", sh)
	}
	return h, nil
}

// npyField extracts the raw value of 'key' from a .npy header dict: up to the
// next top-level comma (parentheses nest).
func npyField(dict, key string) (string, bool) {
	i := strings.Index(dict, "'"+key+"'")
	if i < 0 {
		return "", false
	}
	rest := dict[i+len(key)+2:]
	j := strings.IndexByte(rest, ':')
	if j < 0 {
		return "", false
	}
	rest = rest[j+1:]
	depth := 0
	for k, c := range rest {
		switch c {
		case '(':
			depth++
		case ')':
			depth--
		case ',', '}':
			if depth == 0 {
				return rest[:k], true
			}
		}
	}
	return "", false
}
