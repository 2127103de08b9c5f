// Package safetensors reads and writes the safetensors format
// (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length, a JSON header naming each tensor's dtype, shape and byte range, an
// optional "__metadata__" string map, then the raw little-endian data.
//
// Readers validate before they allocate: header size, dtype, shape × dtype size
// = byte length, offsets inside the data and not overlapping.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"sort"

	"github.com/cl-dev/cl/internal/atomicfile"
)

// DType names an element type as spelled in the safetensors header.
type DType string

// The element types cl reads and writes.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U8   DType = "U8"
	U16  DType = "U16"
	U32  DType = "U32"
	U64  DType = "U64"
	Bool DType = "BOOL"
)

// Size returns the size of one element in bytes, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case I8, U8, Bool:
		return 1
	}
	return 0
}

// MaxHeaderBytes bounds the JSON header a reader accepts (100 MB, as the
// reference implementation does).
const MaxHeaderBytes = 100 << 20

// Tensor is one named array; Data holds len = product(Shape) × DType.Size()
// little-endian bytes.
type Tensor struct {
	DType DType
	Shape []int64
	Data  []byte
}

// NumElements is the product of the shape (1 for a scalar).
func (t Tensor) NumElements() int64 {
	n := int64(1)
	for _, s := range t.Shape {
		n *= s
	}
	return n
}

// File is a whole safetensors file in memory.
type File struct {
	Metadata map[string]string
	Tensors  map[string]Tensor
}

// New returns an empty file ready to be filled.
func New() *File {
	return &File{Metadata: map[string]string{}, Tensors: map[string]Tensor{}}
}

type headerEntry struct {
	DType       DType    `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// ReadFile reads and validates a whole safetensors file. Errors name the path.
func ReadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Parse decodes a safetensors byte image. Tensor data aliases data.
func Parse(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("not a safetensors file: %d bytes, need at least 8", len(data))
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > MaxHeaderBytes || n > uint64(len(data)-8) {
		return nil, fmt.Errorf("not a safetensors file or truncated: header length %d, file has %d bytes", n, len(data))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data[8:8+n], &raw); err != nil {
		return nil, fmt.Errorf("corrupt safetensors header: %v", err)
	}
	body := data[8+n:]
	f := New()
	type span struct {
		name       string
		begin, end int64
	}
	var spans []span
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("corrupt safetensors metadata: %v", err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("corrupt safetensors entry %q: %v", name, err)
		}
		size := e.DType.Size()
		if size == 0 {
			return nil, fmt.Errorf("tensor %q: unknown dtype %q", name, e.DType)
		}
		count := int64(1)
		for _, s := range e.Shape {
			if s < 0 || (s > 0 && count > math.MaxInt64/8/s) {
				return nil, fmt.Errorf("tensor %q: invalid shape %v", name, e.Shape)
			}
			count *= s
		}
		b, end := e.DataOffsets[0], e.DataOffsets[1]
		if b < 0 || end < b || end > int64(len(body)) {
			return nil, fmt.Errorf("tensor %q: data offsets [%d,%d] outside the %d data bytes (truncated file?)", name, b, end, len(body))
		}
		if end-b != count*int64(size) {
			return nil, fmt.Errorf("tensor %q: %d bytes for shape %v of %s (want %d)", name, end-b, e.Shape, e.DType, count*int64(size))
		}
		f.Tensors[name] = Tensor{DType: e.DType, Shape: e.Shape, Data: body[b:end:end]}
		if end > b { // an empty tensor occupies no bytes and overlaps nothing
			spans = append(spans, span{name, b, end})
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].begin < spans[j].begin })
	for i := 1; i < len(spans); i++ {
		if spans[i].begin < spans[i-1].end {
			return nil, fmt.Errorf("tensors %q and %q overlap", spans[i-1].name, spans[i].name)
		}
	}
	if f.Metadata == nil {
		f.Metadata = map[string]string{}
	}
	return f, nil
}

// WriteTo encodes the file: tensors sorted by name, data 8-byte aligned.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	names := make([]string, 0, len(f.Tensors))
	for name := range f.Tensors {
		names = append(names, name)
	}
	sort.Strings(names)
	header := map[string]any{}
	if len(f.Metadata) > 0 {
		header["__metadata__"] = f.Metadata
	}
	var off int64
	for _, name := range names {
		t := f.Tensors[name]
		if int64(len(t.Data)) != t.NumElements()*int64(t.DType.Size()) || t.DType.Size() == 0 {
			return 0, fmt.Errorf("tensor %q: %d bytes do not match shape %v of %s", name, len(t.Data), t.Shape, t.DType)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int64{}
		}
		header[name] = headerEntry{DType: t.DType, Shape: shape, DataOffsets: [2]int64{off, off + int64(len(t.Data))}}
		off += int64(len(t.Data))
	}
	js, err := json.Marshal(header)
	if err != nil {
		return 0, err
	}
	for len(js)%8 != 0 {
		js = append(js, ' ')
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
	total := int64(0)
	for _, chunk := range [][]byte{lenBuf[:], js} {
		n, err := w.Write(chunk)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	for _, name := range names {
		n, err := w.Write(f.Tensors[name].Data)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// WriteFile writes the file atomically (temporary file, fsync, rename).
func (f *File) WriteFile(path string) error {
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		_, err := f.WriteTo(w)
		return err
	})
}

// Get returns the named tensor checked against dtype and rank (rank < 0: any).
func (f *File) Get(name string, dtype DType, rank int) (Tensor, error) {
	t, ok := f.Tensors[name]
	if !ok {
		return Tensor{}, fmt.Errorf("missing tensor %q", name)
	}
	if t.DType != dtype {
		return Tensor{}, fmt.Errorf("tensor %q is %s, want %s", name, t.DType, dtype)
	}
	if rank >= 0 && len(t.Shape) != rank {
		return Tensor{}, fmt.Errorf("tensor %q has shape %v, want rank %d", name, t.Shape, rank)
	}
	return t, nil
}

// Float32s decodes F32 data.
func (t Tensor) Float32s() []float32 {
	out := make([]float32, len(t.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out
}

// Float64s decodes F64 data.
func (t Tensor) Float64s() []float64 {
	out := make([]float64, len(t.Data)/8)
	for i := range out {
		out[i] = math.Float64frombits(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return out
}

// Int64s decodes I64 data.
func (t Tensor) Int64s() []int64 {
	out := make([]int64, len(t.Data)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(t.Data[8*i:]))
	}
	return out
}

// FromFloat32s builds an F32 tensor; len(v) must equal the shape's product.
func FromFloat32s(shape []int64, v []float32) Tensor {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return Tensor{DType: F32, Shape: shape, Data: b}
}

// FromFloat64s builds an F64 tensor.
func FromFloat64s(shape []int64, v []float64) Tensor {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(x))
	}
	return Tensor{DType: F64, Shape: shape, Data: b}
}

// FromInt64s builds an I64 tensor.
func FromInt64s(shape []int64, v []int64) Tensor {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return Tensor{DType: I64, Shape: shape, Data: b}
}
