package vit

import (
	"bytes"
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the checkpoint reader (safetensors and
// .npz/.npy parsing, architecture inference): errors are fine, panics and
// runaway allocations are not.
func FuzzParse(f *testing.F) {
	for _, p := range []string{stPath, npzPath} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)/3])
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

// FuzzNPYHeader exercises the .npy header parser alone.
func FuzzNPYHeader(f *testing.F) {
	f.Add([]byte("\x93NUMPY\x01\x00\x46\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1, 197, 768), }   "))
	f.Add([]byte("\x93NUMPY\x02\x00\x10\x00\x00\x00{'shape': (3,)}  "))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := readNPYHeader(bytes.NewReader(data))
		if err == nil && (h.size == 0 || h.shape == nil) {
			t.Fatalf("accepted header without dtype or shape: %+v", h)
		}
	})
}
