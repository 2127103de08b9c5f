package data

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestIDXFirst: OpenFirst reads only the first n samples of IDX files. The
// files here announce 3,000,000 images of 28×28 (2.35 GB) but their gzip
// streams hold only 10: the first 10 open and load; reading them whole
// fails, saying the data is short.
func TestIDXFirst(t *testing.T) {
	dir := t.TempDir()
	const n, side, held = 3_000_000, 28, 10
	pix := make([]byte, held*side*side)
	for i := range pix {
		pix[i] = byte(i / (side * side))
	}
	labels := []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	img, lab := filepath.Join(dir, "img.gz"), filepath.Join(dir, "lab.gz")
	writeFile(t, img, gz(idxBytes([]int{n, side, side}, pix)))
	writeFile(t, lab, gz(idxBytes([]int{n}, labels)))
	spec := "idx:" + img + "," + lab
	for _, first := range []int{1, 7, 10} {
		s, err := OpenFirst(spec, first)
		if err != nil {
			t.Fatalf("OpenFirst(%d): %v", first, err)
		}
		if s.Len() != first || len(s.Classes()) != first || s.Label(first-1) != first-1 {
			t.Fatalf("OpenFirst(%d): len %d, %d classes, last label %d", first, s.Len(), len(s.Classes()), s.Label(first-1))
		}
		smp, err := s.Load(first - 1)
		if err != nil || !bytes.Equal(smp.Raw.Pix, pix[(first-1)*side*side:first*side*side]) {
			t.Fatalf("OpenFirst(%d): sample %d: %v", first, first-1, err)
		}
	}
	for _, first := range []int{0, 11} {
		if _, err := OpenFirst(spec, first); err == nil || !strings.Contains(err.Error(), "but there are only") {
			t.Errorf("OpenFirst(%d) of a short file = %v, want an error saying the data is short", first, err)
		}
	}
	// A raw (not gzipped) file is still checked against its header in full.
	raw := filepath.Join(dir, "img.raw")
	writeFile(t, raw, idxBytes([]int{n, side, side}, pix))
	if _, err := OpenFirst("idx:"+raw+","+lab, 5); err == nil || !strings.Contains(err.Error(), "but the file has") {
		t.Errorf("OpenFirst of a short raw file = %v", err)
	}
}
