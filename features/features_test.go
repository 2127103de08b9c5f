package features

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func testHeader() Header {
	return Header{D: 3, Classes: []string{"cat", "dog"}, Model: "m.onnx", ModelSHA256: "abc",
		Preprocess: `{"resize":256}`, Source: "idx:a,b"}
}

func TestSetRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.safetensors")
	s := &Set{X: []float32{1, 2, 3, 4, 5, 6}, N: 2, D: 3, Labels: []int{1, 0}, Classes: []string{"cat", "dog"},
		IDs: []string{"a/1.jpg", "b/2.jpg"}, Model: "m.onnx", ModelSHA256: "abc", Preprocess: "{}", Source: "DIR"}
	if err := s.Write(path); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, s) {
		t.Fatalf("read %+v\nwant %+v", got, s)
	}
	bad := *s
	bad.X = []float32{1, 2, float32(math.NaN()), 4, 5, 6}
	if err := bad.Write(path); err == nil || !strings.Contains(err.Error(), "row 0 (a/1.jpg) column 2 is NaN") {
		t.Fatalf("NaN: %v", err)
	}
}

func TestWriterMatchesSet(t *testing.T) {
	dir := t.TempDir()
	ids := []string{"x:0", "x:1", "x:2", `we"ird/ü.png`}
	for _, keep := range [][]int{{0, 1, 2, 3}, {1, 3}, {}} {
		path := filepath.Join(dir, fmt.Sprint(len(keep), ".safetensors"))
		w, err := Create(path, testHeader(), ids)
		if err != nil {
			t.Fatal(err)
		}
		want := &Set{N: len(keep), D: 3, Classes: []string{"cat", "dog"}, Model: "m.onnx", ModelSHA256: "abc",
			Preprocess: `{"resize":256}`, Source: "idx:a,b", Labels: []int{}}
		for _, i := range keep {
			row := []float32{float32(i), -float32(i) / 3, 1e30}
			if err := w.Append(row, i%2, ids[i]); err != nil {
				t.Fatal(err)
			}
			want.X = append(want.X, row...)
			want.Labels = append(want.Labels, i%2)
			want.IDs = append(want.IDs, ids[i])
		}
		if want.X == nil {
			want.X, want.IDs = []float32{}, []string{}
		}
		if _, err := os.Stat(path); err == nil {
			t.Fatal("file visible before Commit")
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		got, err := Read(path)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("kept %v: read %+v\nwant %+v", keep, got, want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Fatalf("want the 3 files and no temporary ones: %v", entries)
	}
}

// TestWriterHeaderOverflow: ids longer than those reserved take the copy path
// and give the same file content.
func TestWriterHeaderOverflow(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.safetensors")
	w, err := Create(path, testHeader(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if err := w.Append([]float32{float32(i), 1, 2}, 1, strings.Repeat("long-id-", 10)+fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.N != 50 || got.Row(49)[0] != 49 || !strings.HasSuffix(got.IDs[49], "-49") {
		t.Fatalf("n %d row %v", got.N, got.Row(49))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}

func TestWriterAbortAndErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f.safetensors")
	w, err := Create(path, testHeader(), []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	tmp := w.tempName()
	if err := w.Append([]float32{1, 2}, 0, "a"); err == nil || !strings.Contains(err.Error(), "row a has 2 values, want 3") {
		t.Fatalf("short row: %v", err)
	}
	if err := w.Append([]float32{1, 2, 3}, 2, "a"); err == nil || !strings.Contains(err.Error(), "label 2 outside the 2 classes") {
		t.Fatalf("label: %v", err)
	}
	if err := w.Append([]float32{1, float32(math.Inf(1)), 3}, 0, "a"); err == nil || !strings.Contains(err.Error(), "a: the model produced +Inf at column 1") {
		t.Fatalf("inf: %v", err)
	}
	w.Abort()
	w.Abort()
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	if err := w.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
	if _, err := Create(filepath.Join(dir, "no/such/dir/f.safetensors"), testHeader(), nil); err == nil || !strings.Contains(err.Error(), "no/such/dir") {
		t.Fatalf("bad folder: %v", err)
	}
	if _, err := Create(path, Header{}, nil); err == nil {
		t.Fatal("D = 0 accepted")
	}
}

func BenchmarkWriterAppend(b *testing.B) {
	h := testHeader()
	h.D = 768
	w, err := Create(filepath.Join(b.TempDir(), "f.safetensors"), h, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Abort()
	row := make([]float32, 768)
	b.SetBytes(768 * 4)
	for i := 0; i < b.N; i++ {
		if err := w.Append(row, 0, "x"); err != nil {
			b.Fatal(err)
		}
	}
}
