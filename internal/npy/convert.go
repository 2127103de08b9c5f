package npy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
)

// Data reads the data of an array whose header h ReadHeader returned from r
// and converts it to T, in C (row-major) order: a Fortran-order array is
// reordered. It converts '<f2', '<f4', '<f8', '<i8' and '|u1' (float64 and
// int64 are rounded to float32 when T is float32). size is the number of
// bytes left in r, checked against the shape before allocating, or −1 when
// unknown (then the buffer grows only with the bytes that arrive, so a
// lying header cannot make it allocate up front).
func Data[T float32 | float64](r io.Reader, h Header, size int64) ([]T, error) {
	es := ElemSize(h.Descr)
	if es == 0 {
		return nil, fmt.Errorf("npy dtype %q unsupported: want little-endian float16/32/64, int64 or uint8 ('<f2', '<f4', '<f8', '<i8', '|u1')", h.Descr)
	}
	n := h.Len()
	if err := checkSize(size, 0, int64(n)*int64(es)); err != nil {
		return nil, err
	}
	raw, err := readData(r, size, n*es)
	if err != nil {
		return nil, err
	}
	out := make([]T, n)
	for i := range out {
		switch h.Descr {
		case "<f2":
			out[i] = T(Float16(binary.LittleEndian.Uint16(raw[2*i:])))
		case "<f4":
			out[i] = T(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
		case "<f8":
			out[i] = T(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		case "<i8":
			out[i] = T(int64(binary.LittleEndian.Uint64(raw[8*i:])))
		default:
			out[i] = T(raw[i])
		}
	}
	if h.Fortran {
		out = fromFortran(out, h.Shape)
	}
	return out, nil
}

// ReadFloat64 reads a .npy file of any dtype Data converts as float64 (C
// order) and its shape.
func ReadFloat64(path string) ([]float64, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	r := bufio.NewReader(f)
	h, hl, err := ReadHeader(r)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	v, err := Data[float64](r, h, st.Size()-hl)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, h.Shape, nil
}

// Float16 converts an IEEE 754 binary16 value to float32 (exactly:
// subnormals, infinities and NaN included).
func Float16(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac · 2^−24
		v := float32(frac) * (1.0 / (1 << 24))
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// fromFortran reorders column-major (Fortran) data of the given shape into
// row-major order.
func fromFortran[T any](v []T, shape []int) []T {
	if len(shape) < 2 {
		return v
	}
	out := make([]T, len(v))
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
