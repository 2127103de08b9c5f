package npy

import (
	"bytes"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	py := "/usr/bin/python3"
	if err := exec.Command(py, "-c", "import numpy").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true but %s with numpy is missing: %v", py, err)
		}
		t.Skipf("%s with numpy not available", py)
	}
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
		"fortran":     []byte(strings.Replace(string(g), "False", "True ", 1)),
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
