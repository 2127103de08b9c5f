package data

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeFile creates path (and its folders) with content.
func writeFile(t *testing.T, path string, content []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cifarRecords builds n CIFAR records; record i has label(s) labels(i) and
// pixel j of plane c equal to byte(i + 7c + j).
func cifarRecords(n, prefix int, label func(i int) int) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		if prefix == 2 {
			b = append(b, byte(99-label(i)%20)) // coarse label, ignored
		}
		b = append(b, byte(label(i)))
		for c := 0; c < 3; c++ {
			for j := 0; j < 1024; j++ {
				b = append(b, byte(i+7*c+j))
			}
		}
	}
	return b
}

func checkCIFARPixels(t *testing.T, s Source, i, rec int) {
	t.Helper()
	smp, err := s.Load(i)
	if err != nil {
		t.Fatal(err)
	}
	r := smp.Raw
	if r == nil || r.W != 32 || r.H != 32 || r.C != 3 || len(r.Pix) != 3072 {
		t.Fatalf("sample %d: raw %+v", i, r)
	}
	for j := 0; j < 1024; j += 97 {
		for c := 0; c < 3; c++ {
			if got, want := r.Pix[3*j+c], byte(rec+7*c+j); got != want {
				t.Fatalf("sample %d pixel %d channel %d = %d, want %d", i, j, c, got, want)
			}
		}
	}
}

func TestCIFAR10(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "cifar-10-batches-bin")
	var names []string
	for k := 0; k < 10; k++ {
		names = append(names, fmt.Sprintf("class%d", k))
	}
	writeFile(t, filepath.Join(dir, "batches.meta.txt"), []byte(strings.Join(names, "\n")+"\n\n"))
	// batch b has 3 records with labels (b*3+i) % 10
	for b := 1; b <= 5; b++ {
		writeFile(t, filepath.Join(dir, fmt.Sprintf("data_batch_%d.bin", b)), cifarRecords(3, 1, func(i int) int { return ((b-1)*3 + i) % 10 }))
	}
	writeFile(t, filepath.Join(dir, "test_batch.bin"), cifarRecords(2, 1, func(i int) int { return 9 - i }))

	for _, spec := range []string{"cifar10:" + root, "cifar10:" + dir, "cifar10:" + dir + ":train"} {
		s, err := Open(spec)
		if err != nil {
			t.Fatalf("%s: %v", spec, err)
		}
		if s.Len() != 15 || !reflect.DeepEqual(s.Classes(), names) || s.Spec() != spec {
			t.Fatalf("%s: len %d classes %v spec %q", spec, s.Len(), s.Classes(), s.Spec())
		}
		for i := 0; i < 15; i++ {
			if s.Label(i) != i%10 {
				t.Fatalf("label %d = %d", i, s.Label(i))
			}
		}
		if s.ID(14) != "train:14" {
			t.Fatalf("id %q", s.ID(14))
		}
		checkCIFARPixels(t, s, 7, 1) // batch 3, record 1
		s.Close()
	}
	s, err := Open("cifar10:" + root + ":test")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Len() != 2 || s.Label(0) != 9 || s.Label(1) != 8 || s.ID(1) != "test:1" {
		t.Fatalf("test split: len %d labels %d %d", s.Len(), s.Label(0), s.Label(1))
	}
	checkCIFARPixels(t, s, 1, 1)
}

func TestCIFAR100(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "cifar-100-binary")
	var names []string
	for k := 0; k < 100; k++ {
		names = append(names, fmt.Sprintf("fine%02d", k))
	}
	writeFile(t, filepath.Join(dir, "fine_label_names.txt"), []byte(strings.Join(names, "\n")+"\n"))
	writeFile(t, filepath.Join(dir, "train.bin"), cifarRecords(5, 2, func(i int) int { return 42 + i }))
	writeFile(t, filepath.Join(dir, "test.bin"), cifarRecords(4, 2, func(i int) int { return 99 - i }))
	s, err := Open("cifar100:" + root)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 5 || s.Label(3) != 45 || len(s.Classes()) != 100 || s.Classes()[45] != "fine45" {
		t.Fatalf("len %d label %d", s.Len(), s.Label(3))
	}
	checkCIFARPixels(t, s, 4, 4)
	s.Close()
	s, err = Open("cifar100:" + dir + ":test")
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 4 || s.Label(0) != 99 {
		t.Fatalf("test len %d label %d", s.Len(), s.Label(0))
	}
	s.Close()
}

func TestCIFARErrors(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "cifar-100-binary")
	names := make([]string, 100)
	for k := range names {
		names[k] = fmt.Sprint("c", k)
	}
	writeFile(t, filepath.Join(dir, "fine_label_names.txt"), []byte(strings.Join(names, "\n")))
	writeFile(t, filepath.Join(dir, "train.bin"), cifarRecords(2, 2, func(int) int { return 1 })[:5000])
	writeFile(t, filepath.Join(dir, "test.bin"), cifarRecords(2, 2, func(i int) int { return 100 + i }))
	cases := []struct{ spec, want string }{
		{"cifar100:" + root, "train.bin: 5000 bytes is not a whole number of 3074-byte"},
		{"cifar100:" + root + ":test", "test.bin: record 0 has label 100"},
		{"cifar100:" + root + ":val", `unknown split "val"`},
		{"cifar10:" + root, "has neither batches.meta.txt nor cifar-10-batches-bin/batches.meta.txt"},
		{"cifar100:", "missing folder"},
	}
	for _, c := range cases {
		_, err := Open(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want error containing %q", c.spec, err, c.want)
		}
	}
}

// idxBytes encodes an unsigned-byte IDX array.
func idxBytes(dims []int, data []byte) []byte {
	b := []byte{0, 0, 8, byte(len(dims))}
	for _, d := range dims {
		b = binary.BigEndian.AppendUint32(b, uint32(d))
	}
	return append(b, data...)
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestIDX(t *testing.T) {
	dir := t.TempDir()
	n, h, w := 4, 3, 2
	pix := make([]byte, n*h*w)
	for i := range pix {
		pix[i] = byte(i * 3)
	}
	labels := []byte{2, 0, 1, 2}
	writeFile(t, filepath.Join(dir, "img.gz"), gz(idxBytes([]int{n, h, w}, pix)))
	writeFile(t, filepath.Join(dir, "lab"), idxBytes([]int{n}, labels))
	writeFile(t, filepath.Join(dir, "names.txt"), []byte("zero\none\ntwo\n"))
	s, err := Open("idx:" + filepath.Join(dir, "img.gz") + "," + filepath.Join(dir, "lab"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 4 || !reflect.DeepEqual(s.Classes(), []string{"0", "1", "2"}) || s.Label(3) != 2 || s.ID(2) != "img.gz:2" {
		t.Fatalf("len %d classes %v id %q", s.Len(), s.Classes(), s.ID(2))
	}
	smp, err := s.Load(2)
	if err != nil {
		t.Fatal(err)
	}
	if r := smp.Raw; r.W != 2 || r.H != 3 || r.C != 1 || !bytes.Equal(r.Pix, pix[12:18]) {
		t.Fatalf("raw %+v", r)
	}
	s, err = Open("idx:" + filepath.Join(dir, "img.gz") + "," + filepath.Join(dir, "lab") + "," + filepath.Join(dir, "names.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Classes(), []string{"zero", "one", "two"}) {
		t.Fatalf("classes %v", s.Classes())
	}
	if l := Limit(s, 3); l.Len() != 3 || l.Label(2) != 1 || Limit(s, 0).Len() != 4 || Limit(s, 9).Len() != 4 {
		t.Fatalf("limit")
	}
}

func TestIDXErrors(t *testing.T) {
	dir := t.TempDir()
	pix := make([]byte, 2*4*4)
	writeFile(t, filepath.Join(dir, "img"), idxBytes([]int{2, 4, 4}, pix))
	writeFile(t, filepath.Join(dir, "short"), idxBytes([]int{2, 4, 4}, pix[:20]))
	writeFile(t, filepath.Join(dir, "shortgz"), gz(idxBytes([]int{2, 4, 4}, pix[:20])))
	writeFile(t, filepath.Join(dir, "longgz"), gz(idxBytes([]int{2, 4, 4}, append(pix, 1))))
	writeFile(t, filepath.Join(dir, "badmagic"), append([]byte{1, 2, 8, 3}, pix...))
	writeFile(t, filepath.Join(dir, "float"), []byte{0, 0, 0x0d, 1, 0, 0, 0, 0})
	writeFile(t, filepath.Join(dir, "lab2"), idxBytes([]int{2}, []byte{0, 1}))
	writeFile(t, filepath.Join(dir, "lab3"), idxBytes([]int{3}, []byte{0, 1, 2}))
	writeFile(t, filepath.Join(dir, "lab9"), idxBytes([]int{2}, []byte{0, 9}))
	writeFile(t, filepath.Join(dir, "names"), []byte("a\nb\n"))
	writeFile(t, filepath.Join(dir, "dupnames"), []byte("a\na\n"))
	p := func(s string) string { return filepath.Join(dir, s) }
	cases := []struct{ spec, want string }{
		{"idx:" + p("img"), "want idx:IMAGES,LABELS"},
		{"idx:" + p("short") + "," + p("lab2"), "short: IDX header says [2 4 4] = 32 bytes of data, but the file has 20"},
		{"idx:" + p("shortgz") + "," + p("lab2"), "shortgz: IDX header says [2 4 4] = 32 bytes of data, but there are only 20"},
		{"idx:" + p("longgz") + "," + p("lab2"), "longgz: IDX header says [2 4 4] = 32 bytes of data, but there are more"},
		{"idx:" + p("badmagic") + "," + p("lab2"), "badmagic: not an IDX file"},
		{"idx:" + p("float") + "," + p("lab2"), "float: IDX element type 0x0d not supported"},
		{"idx:" + p("img") + "," + p("lab3"), "2 images but 3 labels"},
		{"idx:" + p("lab2") + "," + p("img"), "want [N,H,W]"},
		{"idx:" + p("img") + "," + p("img"), "are IMAGES and LABELS swapped?"},
		{"idx:" + p("img") + "," + p("lab9") + "," + p("names"), "label 9 of sample 1 is outside the 2 class names"},
		{"idx:" + p("img") + "," + p("lab2") + "," + p("dupnames"), `dupnames: lines 1 and 2: class name "a" repeated`},
		{"idx:" + p("nope") + "," + p("lab2"), "nope: no such file"},
	}
	for _, c := range cases {
		_, err := Open(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want error containing %q", c.spec, err, c.want)
		}
	}
}

func TestFolder(t *testing.T) {
	dir := t.TempDir()
	files := []string{
		"dog/b.JPG", "dog/a.png", "dog/notes.txt", "dog/sub/z.jpeg", "dog/sub-2/y.webp", "dog/sub/x/w.bmp",
		"cat/01.gif", "cat/00.jpg", "Zebra/q.tif",
	}
	for _, f := range files {
		writeFile(t, filepath.Join(dir, f), []byte(f))
	}
	writeFile(t, filepath.Join(dir, "README.txt"), []byte("not a class"))
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Python: sorted(os.walk(...)) orders "dog" < "dog/sub" < "dog/sub-2" < "dog/sub/x".
	wantIDs := []string{"Zebra/q.tif", "cat/00.jpg", "cat/01.gif", "dog/a.png", "dog/b.JPG", "dog/sub/z.jpeg", "dog/sub-2/y.webp", "dog/sub/x/w.bmp"}
	wantLabels := []int{0, 1, 1, 2, 2, 2, 2, 2}
	if !reflect.DeepEqual(s.Classes(), []string{"Zebra", "cat", "dog"}) {
		t.Fatalf("classes %v", s.Classes())
	}
	var ids []string
	var labels []int
	for i := 0; i < s.Len(); i++ {
		ids = append(ids, s.ID(i))
		labels = append(labels, s.Label(i))
	}
	if !reflect.DeepEqual(ids, wantIDs) || !reflect.DeepEqual(labels, wantLabels) {
		t.Fatalf("ids %v labels %v", ids, labels)
	}
	smp, err := s.Load(3)
	if err != nil || string(smp.Encoded) != "dog/a.png" {
		t.Fatalf("load: %q %v", smp.Encoded, err)
	}
	os.Remove(filepath.Join(dir, "dog/a.png"))
	if _, err := s.Load(3); err == nil || !strings.Contains(err.Error(), "a.png") {
		t.Fatalf("load of a removed file: %v", err)
	}

	os.MkdirAll(filepath.Join(dir, "empty"), 0o755)
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "empty has no images") {
		t.Fatalf("empty class: %v", err)
	}
	if _, err := Open(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no class sub-folders") {
		t.Fatalf("no classes: %v", err)
	}
}

// TestFolderSymlinkCycle: links are followed (as torchvision does) but a
// folder reached twice is walked once.
func TestFolderSymlinkCycle(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a/x.png"), []byte("x"))
	if err := os.Symlink(filepath.Join(dir, "a"), filepath.Join(dir, "a/loop")); err != nil {
		t.Skip("no symlinks:", err)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 1 {
		t.Fatalf("len %d", s.Len())
	}
}

func TestList(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"img/1.jpg", "img/2.jpg", "img/3.png", "abs.png"} {
		writeFile(t, filepath.Join(dir, f), []byte(f))
	}
	csv := "path,label\nimg/1.jpg,10\nimg/2.jpg, 2\n\"img/3.png\",10\n" + filepath.Join(dir, "abs.png") + ",9\n"
	writeFile(t, filepath.Join(dir, "list.csv"), []byte(csv))
	s, err := Open("list:" + filepath.Join(dir, "list.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Classes(), []string{"2", "9", "10"}) {
		t.Fatalf("classes %v", s.Classes())
	}
	if s.Len() != 4 || s.Label(0) != 2 || s.Label(1) != 0 || s.Label(3) != 1 || s.ID(2) != "img/3.png" {
		t.Fatalf("len %d labels %d %d", s.Len(), s.Label(0), s.Label(1))
	}
	smp, err := s.Load(2)
	if err != nil || string(smp.Encoded) != "img/3.png" {
		t.Fatalf("load %q %v", smp.Encoded, err)
	}
	// no header, names sorted by name
	writeFile(t, filepath.Join(dir, "l2.csv"), []byte("img/1.jpg,dog\nimg/2.jpg,cat\n"))
	s, err = Open("list:" + filepath.Join(dir, "l2.csv"))
	if err != nil || !reflect.DeepEqual(s.Classes(), []string{"cat", "dog"}) || s.Len() != 2 || s.Label(0) != 1 {
		t.Fatalf("headerless: %v %v", s, err)
	}

	writeFile(t, filepath.Join(dir, "missing.csv"), []byte("img/1.jpg,a\nimg/nope.jpg,b\nimg,c\n"))
	writeFile(t, filepath.Join(dir, "fields.csv"), []byte("img/1.jpg,a\nimg/2.jpg,b,c\n"))
	writeFile(t, filepath.Join(dir, "empty.csv"), []byte("path,label\n"))
	cases := []struct{ spec, want string }{
		{"list:" + filepath.Join(dir, "missing.csv"), "2 listed files are not readable image files: line 2: " + filepath.Join(dir, "img/nope.jpg") + " (missing); line 3: " + filepath.Join(dir, "img") + " (a folder)"},
		{"list:" + filepath.Join(dir, "fields.csv"), "fields.csv: line 2 has 3 fields; want 2"},
		{"list:" + filepath.Join(dir, "empty.csv"), "empty.csv: no rows"},
		{"list:" + filepath.Join(dir, "none.csv"), "none.csv: no such file"},
		{"list:", "want list:FILE.csv"},
	}
	for _, c := range cases {
		_, err := Open(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want error containing %q", c.spec, err, c.want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "f.txt"), []byte("x"))
	cases := []struct{ spec, want string }{
		{"", "--data is empty"},
		{"imagenet:/data", `unknown kind "imagenet"`},
		{filepath.Join(dir, "nope"), "no such file or directory"},
		{filepath.Join(dir, "f.txt"), "is a file, not an image folder"},
	}
	for _, c := range cases {
		_, err := Open(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want error containing %q", c.spec, err, c.want)
		}
	}
}
