package vit

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/cl-dev/cl/internal/npy"
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

// halfToFloat converts an IEEE 754 binary16 value (npy.Float16).
func halfToFloat(h uint16) float32 { return npy.Float16(h) }

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
	hdr, _, err := npy.ReadHeader(br)
	if err != nil {
		return array{}, err
	}
	switch hdr.Descr {
	case "<f2", "<f4", "<f8":
	default:
		return array{}, fmt.Errorf("dtype %s unsupported: a checkpoint array must be little-endian float16/32/64 (<f2, <f4, <f8)", hdr.Descr)
	}
	nbytes := int64(hdr.Len()) * int64(npy.ElemSize(hdr.Descr))
	// Deflate expands at most ~1032×: refuse shapes the entry cannot hold,
	// and let the buffer grow with the bytes actually read.
	maxBytes := int64(zf.CompressedSize64)
	if zf.Method != zip.Store {
		maxBytes = 1032*maxBytes + 1024
	}
	if nbytes > int64(zf.UncompressedSize64) || nbytes > maxBytes || nbytes > 1032*archiveSize {
		return array{}, fmt.Errorf("shape %s needs %d bytes but the entry holds %d (truncated or corrupt)", shapeString(hdr.Shape), nbytes, zf.UncompressedSize64)
	}
	v, err := npy.Data[float32](br, hdr, -1)
	if err != nil {
		return array{}, fmt.Errorf("reading %d data bytes for shape %s: %v (truncated or corrupt)", nbytes, shapeString(hdr.Shape), err)
	}
	// Reading to the end lets archive/zip verify the entry's CRC-32.
	if extra, err := io.Copy(io.Discard, br); err != nil {
		return array{}, fmt.Errorf("corrupt data: %v", err)
	} else if extra != 0 {
		return array{}, fmt.Errorf("%d bytes after the data of shape %s (corrupt entry)", extra, shapeString(hdr.Shape))
	}
	return array{shape: hdr.Shape, data: v}, nil
}
