package data

import (
	"bytes"
	"testing"
)

// FuzzIDX: ParseIDX never panics, and what it accepts has exactly the bytes
// its header announces, its first rows read alone equal the whole's first rows; a pair of accepted arrays either builds a source whose
// every sample loads, or is refused with an error.
func FuzzIDX(f *testing.F) {
	f.Add(idxBytes([]int{2, 2, 3}, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}), idxBytes([]int{2}, []byte{0, 1}))
	f.Add(idxBytes([]int{1, 1, 1}, []byte{9}), idxBytes([]int{1}, []byte{200}))
	f.Add([]byte{0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255}, []byte{0, 0, 8, 1, 0, 0, 0, 0})
	f.Add([]byte{0, 0, 8, 0}, []byte{})
	f.Fuzz(func(t *testing.T, img, lab []byte) {
		a, err := ParseIDX(img)
		if err != nil {
			return
		}
		n := 1
		for _, d := range a.Dims {
			n *= d
		}
		if n != len(a.Data) || len(a.Data)+4+4*len(a.Dims) != len(img) {
			t.Fatalf("dims %v but %d data bytes from %d input bytes", a.Dims, len(a.Data), len(img))
		}
		// Reading only the first rows, as a stream of unknown length (a
		// gzip stream), gives exactly the first rows of the whole.
		for _, rows := range []int{0, 1, a.Dims[0] / 2, a.Dims[0]} {
			p, err := readIDX(bytes.NewReader(img), -1, 0, rows)
			if err != nil {
				t.Fatalf("first %d rows of an array that parses whole: %v", rows, err)
			}
			want := a.Data
			if a.Dims[0] > 0 {
				want = a.Data[:len(a.Data)/a.Dims[0]*rows]
			}
			if !bytes.Equal(p.Data, want) {
				t.Fatalf("first %d rows: %d bytes, want %d", rows, len(p.Data), len(want))
			}
		}
		l, err := ParseIDX(lab)
		if err != nil {
			return
		}
		s, err := newIDX("fuzz", "img", a, l, nil)
		if err != nil {
			return
		}
		for i := 0; i < s.Len(); i++ {
			smp, err := s.Load(i)
			if err != nil {
				t.Fatal(err)
			}
			if r := smp.Raw; len(r.Pix) != r.W*r.H*r.C || s.Label(i) >= len(s.Classes()) {
				t.Fatalf("sample %d: raw %dx%dx%d with %d bytes, label %d of %d", i, r.W, r.H, r.C, len(r.Pix), s.Label(i), len(s.Classes()))
			}
		}
	})
}

// FuzzCIFAR: a CIFAR batch of any bytes is either refused with an error or
// yields records whose labels are in range and whose pixels load.
func FuzzCIFAR(f *testing.F) {
	f.Add(cifarRecords(2, 1, func(i int) int { return i }), uint8(1))
	f.Add(cifarRecords(1, 2, func(i int) int { return 5 }), uint8(2))
	f.Add([]byte{}, uint8(1))
	f.Add(make([]byte, 3073), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, prefix uint8) {
		if prefix != 1 && prefix != 2 {
			return
		}
		classes := make([]string, 10*prefix*prefix)
		c := newCIFAR("fuzz", "train", classes)
		if err := c.addPart("batch.bin", bytes.NewReader(b), int64(len(b)), int(prefix)); err != nil {
			return
		}
		if c.Len()*(int(prefix)+3072) != len(b) {
			t.Fatalf("%d records from %d bytes", c.Len(), len(b))
		}
		for i := 0; i < c.Len(); i++ {
			if c.Label(i) >= len(classes) {
				t.Fatalf("label %d", c.Label(i))
			}
			smp, err := c.Load(i)
			if err != nil || len(smp.Raw.Pix) != 3072 {
				t.Fatalf("load %d: %v", i, err)
			}
		}
	})
}
