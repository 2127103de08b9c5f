package vit

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/cl-dev/cl/internal/npy"
)

// tinyNPZ writes a valid 1-block ViT (width 8, 2 heads, patch 4, image 8,
// MLP 16) in Google's .npz layout: a small seed the fuzzer can mutate fast.
func tinyNPZ(t testing.TB) []byte {
	W, H, P, M, T := 8, 2, 4, 16, 5
	arrays := map[string][]int{
		"embedding/kernel": {P, P, 3, W}, "embedding/bias": {W}, "cls": {1, 1, W},
		"Transformer/posembed_input/pos_embedding": {1, T, W},
		"Transformer/encoder_norm/scale":           {W}, "Transformer/encoder_norm/bias": {W},
	}
	b := "Transformer/encoderblock_0/"
	for _, n := range []string{"LayerNorm_0", "LayerNorm_2"} {
		arrays[b+n+"/scale"], arrays[b+n+"/bias"] = []int{W}, []int{W}
	}
	for _, n := range []string{"query", "key", "value"} {
		arrays[b+"MultiHeadDotProductAttention_1/"+n+"/kernel"] = []int{W, H, W / H}
		arrays[b+"MultiHeadDotProductAttention_1/"+n+"/bias"] = []int{H, W / H}
	}
	arrays[b+"MultiHeadDotProductAttention_1/out/kernel"] = []int{H, W / H, W}
	arrays[b+"MultiHeadDotProductAttention_1/out/bias"] = []int{W}
	arrays[b+"MlpBlock_3/Dense_0/kernel"], arrays[b+"MlpBlock_3/Dense_0/bias"] = []int{W, M}, []int{M}
	arrays[b+"MlpBlock_3/Dense_1/kernel"], arrays[b+"MlpBlock_3/Dense_1/bias"] = []int{M, W}, []int{W}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	k := 0
	for name, shape := range arrays {
		f, err := zw.CreateHeader(&zip.FileHeader{Name: name + ".npy", Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		dims := make([]string, len(shape))
		n := 1
		for i, d := range shape {
			dims[i] = fmt.Sprint(d)
			n *= d
		}
		dict := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s,), }", strings.Join(dims, ", "))
		f.Write([]byte("\x93NUMPY\x01\x00"))
		binary.Write(f, binary.LittleEndian, uint16(len(dict)))
		f.Write([]byte(dict))
		for i := 0; i < n; i++ {
			k++
			binary.Write(f, binary.LittleEndian, math.Float32bits(float32(math.Sin(float64(k)))))
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestTinyNPZ(t *testing.T) {
	w, err := Parse("tiny.npz", tinyNPZ(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if w.Config != (Config{Width: 8, Depth: 1, Heads: 2, Patch: 4, MLP: 16, Image: 8}) {
		t.Errorf("config %+v", w.Config)
	}
	if _, err := Build(w, Options{Variant: Prefix, Tokens: 2}); err != nil {
		t.Fatal(err)
	}
}

// FuzzParse feeds arbitrary bytes to the checkpoint reader (safetensors and
// .npz/.npy parsing, architecture inference): errors are fine, panics and
// runaway allocations are not.
func FuzzParse(f *testing.F) {
	f.Add(tinyNPZ(f))
	for _, p := range []string{stPath, npzPath} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data[:4096]) // headers; the whole files are slow seeds
	}
	f.Add([]byte("PK\x03\x04garbage"))
	f.Fuzz(func(t *testing.T, data []byte) {
		w, err := Parse("fuzz", data, 0)
		if err == nil {
			if err := w.check(); err != nil {
				t.Fatalf("Parse accepted weights that fail check: %v", err)
			}
		}
	})
}

// FuzzNPYHeader exercises the .npy header parser (internal/npy) alone, as
// readNPZ calls it.
func FuzzNPYHeader(f *testing.F) {
	f.Add([]byte("\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1, 197, 768), }   "))
	f.Add([]byte("\x93NUMPY\x02\x00\x10\x00\x00\x00{'shape': (3,)}  "))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, _, err := npy.ReadHeader(bytes.NewReader(data))
		if err == nil && (h.Descr == "" || h.Shape == nil) {
			t.Fatalf("accepted header without dtype or shape: %+v", h)
		}
	})
}
