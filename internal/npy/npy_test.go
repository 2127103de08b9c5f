package npy

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/testenv"
)

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	f := []float32{1, -2.5, float32(math.Inf(1)), 3e-38, 0, 7}
	for _, shape := range [][]int{{6}, {2, 3}, {1, 2, 3}, {3, 2, 1, 1}} {
		p := filepath.Join(dir, "f.npy")
		if err := WriteFloat32(p, f, shape); err != nil {
			t.Fatal(err)
		}
		got, gs, err := ReadFloat32(p)
		if err != nil {
			t.Fatal(err)
		}
		if !equalInts(gs, shape) || len(got) != len(f) {
			t.Fatalf("shape %v → %v", shape, gs)
		}
		for i := range f {
			if got[i] != f[i] {
				t.Fatalf("%d: %g != %g", i, got[i], f[i])
			}
		}
		raw, _ := os.ReadFile(p)
		if hl := 10 + int(raw[8]) + int(raw[9])<<8; hl%64 != 0 {
			t.Fatalf("data offset %d not 64-aligned", hl)
		}
	}
	u := []uint8{0, 1, 255, 128}
	p := filepath.Join(dir, "u.npy")
	if err := WriteUint8(p, u, []int{2, 2}); err != nil {
		t.Fatal(err)
	}
	got, gs, err := ReadUint8(p)
	if err != nil || !bytes.Equal(got, u) || !equalInts(gs, []int{2, 2}) {
		t.Fatalf("%v %v %v", got, gs, err)
	}
	// A scalar (shape ()) and an empty array.
	if err := WriteFloat32(p, []float32{4}, []int{}); err != nil {
		t.Fatal(err)
	}
	if got, gs, err := ReadFloat32(p); err != nil || len(gs) != 0 || got[0] != 4 {
		t.Fatalf("scalar: %v %v %v", got, gs, err)
	}
	if err := WriteFloat32(p, nil, []int{0, 3}); err != nil {
		t.Fatal(err)
	}
	if got, gs, err := ReadFloat32(p); err != nil || len(got) != 0 || !equalInts(gs, []int{0, 3}) {
		t.Fatalf("empty: %v %v %v", got, gs, err)
	}
	if err := WriteFloat32(p, f, []int{4}); err == nil {
		t.Fatal("shape/length mismatch accepted")
	}
}

// The goldens written by numpy (testdata/tinyvit) read back with the
// shapes numpy gave them.
func TestReadNumpyFiles(t *testing.T) {
	x, s, err := ReadFloat32("../../testdata/tinyvit/inputs.npy")
	if err != nil {
		t.Fatal(err)
	}
	if !equalInts(s, []int{6, 3, 32, 32}) || len(x) != 6*3*32*32 {
		t.Fatalf("inputs %v", s)
	}
	for _, v := range x {
		if v < 0 || v > 1 {
			t.Fatalf("input value %g outside [0,1]", v)
		}
	}
	rgb, s, err := ReadUint8("../../testdata/tinyvit/rgb_img_rgb.npy")
	if err != nil || !equalInts(s, []int{40, 48, 3}) || len(rgb) != 40*48*3 {
		t.Fatalf("rgb %v %v", s, err)
	}
	if _, _, err := ReadUint8("../../testdata/tinyvit/inputs.npy"); err == nil || !strings.Contains(err.Error(), "want uint8") {
		t.Fatalf("dtype check: %v", err)
	}
}

// numpy reads what we write (when /usr/bin/python3 has numpy).
func TestNumpyReadsOurFiles(t *testing.T) {
	py := testenv.NeedNumpy(t)
	dir := t.TempDir()
	WriteFloat32(filepath.Join(dir, "f.npy"), []float32{1.5, -2, 3, 4, 5, 6}, []int{3, 2})
	WriteUint8(filepath.Join(dir, "u.npy"), []uint8{9, 8, 7}, []int{3})
	out, err := exec.Command(py, "-c", `import numpy as np, sys
f = np.load(sys.argv[1] + "/f.npy"); u = np.load(sys.argv[1] + "/u.npy")
print(f.dtype, f.shape, f[0, 0], f[2, 1], u.dtype, u.shape, u.tolist())`, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "float32 (3, 2) 1.5 6.0 uint8 (3,) [9, 8, 7]" {
		t.Fatalf("numpy read %q", got)
	}
}

func TestBadFiles(t *testing.T) {
	var good bytes.Buffer
	EncodeFloat32(&good, []float32{1, 2, 3, 4}, []int{2, 2})
	g := good.Bytes()
	cases := map[string][]byte{
		"empty":       nil,
		"bad magic":   append([]byte("\x93NUMPZ"), g[6:]...),
		"version 9":   append(append([]byte{}, g[:6]...), append([]byte{9, 0}, g[8:]...)...),
		"truncated":   g[:len(g)-3],
		"extra bytes": append(append([]byte{}, g...), 0, 0, 0, 0),
		"fortran":     []byte(strings.Replace(string(g), "False", "True", 1)),
		"big endian":  []byte(strings.Replace(string(g), "<f4", ">f4", 1)),
		"float64":     []byte(strings.Replace(string(g), "<f4", "<f8", 1)),
		"neg dim":     []byte(strings.Replace(string(g), "(2, 2)", "(-2,-2)", 1)),
		"huge":        []byte(strings.Replace(string(g), "(2, 2)", "(99999,99999)", 1)),
		"no shape":    []byte(strings.Replace(string(g), "'shape'", "'shapz'", 1)),
	}
	for name, b := range cases {
		if _, _, err := DecodeFloat32(bytes.NewReader(b), int64(len(b))); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, _, err := DecodeFloat32(bytes.NewReader(g), int64(len(g))); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecode(f *testing.F) {
	var b bytes.Buffer
	EncodeFloat32(&b, []float32{1, 2, 3}, []int{3})
	f.Add(b.Bytes())
	b.Reset()
	EncodeUint8(&b, []uint8{1, 2, 3, 4}, []int{2, 2})
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		if x, s, err := DecodeFloat32(bytes.NewReader(data), int64(len(data))); err == nil {
			n := 1
			for _, d := range s {
				n *= d
			}
			if n != len(x) {
				t.Fatalf("shape %v for %d values", s, len(x))
			}
		}
		DecodeUint8(bytes.NewReader(data), int64(len(data)))
		DecodeUint8(bytes.NewReader(data), -1)
	})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// header1 is a version 1.0 .npy header with the given dict.
func header1(dict string) []byte {
	b := []byte("\x93NUMPY\x01\x00")
	b = append(b, byte(len(dict)), byte(len(dict)>>8))
	return append(b, dict...)
}

// TestHeaders: the dict parser accepts what numpy writes (any dtype string,
// Fortran order) and refuses malformed shapes and orders.
func TestHeaders(t *testing.T) {
	for _, c := range []struct {
		dict, err string
		shape     []int
		fortran   bool
	}{
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 197, 768), }", "", []int{1, 197, 768}, false},
		{"{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", "", []int{3}, false},
		{"{'descr': '<f2', 'fortran_order': False, 'shape': (), }", "", []int{}, false},
		{"{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }", "", []int{3, 2}, true},
		{"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3, 2), }", "fortran_order", nil, false},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (3, -2), }", "dimension", nil, false},
		{"{'descr': '<f4', 'fortran_order': False}", "lacks", nil, false},
		{"{'descr': '<f4', 'fortran_order': False, 'shape': (" + strings.Repeat("1, ", MaxDims+1) + "), }", "dimensions", nil, false},
	} {
		h, _, err := ReadHeader(bytes.NewReader(header1(c.dict)))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: err = %v, want %q", c.dict, err, c.err)
			}
			continue
		}
		if err != nil || !equalInts(h.Shape, c.shape) || h.Fortran != c.fortran {
			t.Errorf("%s: %+v, %v", c.dict, h, err)
		}
	}
	if _, _, err := ReadHeader(bytes.NewReader([]byte("\x93NUMPY\x01\x00\xff"))); err == nil {
		t.Error("truncated header accepted")
	}
}

// TestDataConverts: Data reads float16 (exact bit patterns), float64,
// int64 and Fortran-order arrays (numpy's np.asfortranarray(np.arange(6).
// reshape(2, 3)) stores 0, 3, 1, 4, 2, 5) in C order; unsupported dtypes and
// wrong sizes are refused.
func TestDataConverts(t *testing.T) {
	le := func(vals ...uint64) []byte {
		var b []byte
		for _, v := range vals {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
		return b
	}
	half := []byte{0x00, 0x3c, 0x00, 0xc0, 0xff, 0x7b, 0x01, 0x00, 0x00, 0x7c, 0x00, 0x80}
	for _, c := range []struct {
		h    Header
		data []byte
		want []float64
	}{
		{Header{Descr: "<f2", Shape: []int{6}}, half, []float64{1, -2, 65504, math.Ldexp(1, -24), math.Inf(1), math.Copysign(0, -1)}},
		{Header{Descr: "<f8", Shape: []int{2}}, le(math.Float64bits(0.1), math.Float64bits(-1e300)), []float64{0.1, -1e300}},
		{Header{Descr: "<i8", Shape: []int{2}}, le(uint64(1<<62), 0xffffffffffffffff), []float64{1 << 62, -1}},
		{Header{Descr: "<f8", Shape: []int{2, 3}, Fortran: true}, le(math.Float64bits(0), math.Float64bits(3), math.Float64bits(1),
			math.Float64bits(4), math.Float64bits(2), math.Float64bits(5)), []float64{0, 1, 2, 3, 4, 5}},
		{Header{Descr: "|u1", Shape: []int{2, 2, 2}, Fortran: true}, []byte{0, 4, 2, 6, 1, 5, 3, 7}, []float64{0, 1, 2, 3, 4, 5, 6, 7}},
	} {
		for _, size := range []int64{int64(len(c.data)), -1} {
			got, err := Data[float64](bytes.NewReader(c.data), c.h, size)
			if err != nil || len(got) != len(c.want) {
				t.Fatalf("%+v: %v, %v", c.h, got, err)
			}
			for i := range got {
				if got[i] != c.want[i] || math.Signbit(got[i]) != math.Signbit(c.want[i]) {
					t.Errorf("%+v: value %d is %v, want %v", c.h, i, got[i], c.want[i])
				}
			}
		}
	}
	if f, err := Data[float32](bytes.NewReader(half), Header{Descr: "<f2", Shape: []int{6}}, 12); err != nil || f[2] != 65504 {
		t.Errorf("float32 from float16: %v %v", f, err)
	}
	if _, err := Data[float64](bytes.NewReader(make([]byte, 8)), Header{Descr: ">f8", Shape: []int{1}}, 8); err == nil {
		t.Error("big-endian accepted")
	}
	if _, err := Data[float64](bytes.NewReader(make([]byte, 8)), Header{Descr: "<f8", Shape: []int{2}}, 8); err == nil {
		t.Error("8 bytes for two float64 accepted")
	}
	if _, err := Data[float64](bytes.NewReader(make([]byte, 8)), Header{Descr: "<f8", Shape: []int{2}}, -1); err == nil {
		t.Error("a short stream accepted")
	}
}

// TestReadFloat64Numpy: arrays numpy writes in float16, Fortran-order
// float64 and int64 read back as the values numpy holds.
func TestReadFloat64Numpy(t *testing.T) {
	py := testenv.NeedNumpy(t)
	dir := t.TempDir()
	out, err := exec.Command(py, "-c", `import numpy as np, sys
d = sys.argv[1]
np.save(d + "/h.npy", np.array([1, -2, 65504, 2.0**-24, 0.333], dtype=np.float16))
np.save(d + "/f.npy", np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4) / 7))
np.save(d + "/i.npy", np.array([[-3, 7], [2**40, 0]], dtype=np.int64))
print(repr(float(np.float16(0.333))))`, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	third, _ := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	for name, want := range map[string][]float64{
		"h.npy": {1, -2, 65504, math.Ldexp(1, -24), third},
		"f.npy": {0.0 / 7, 1.0 / 7, 2.0 / 7, 3.0 / 7, 4.0 / 7, 5.0 / 7, 6.0 / 7, 7.0 / 7, 8.0 / 7, 9.0 / 7, 10.0 / 7, 11.0 / 7},
		"i.npy": {-3, 7, 1 << 40, 0},
	} {
		got, _, err := ReadFloat64(filepath.Join(dir, name))
		if err != nil || len(got) != len(want) {
			t.Fatalf("%s: %v %v", name, got, err)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("%s[%d] = %v, want %v", name, i, got[i], want[i])
			}
		}
	}
}
