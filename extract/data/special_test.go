package data

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mkfifo makes a named pipe at path (skipping where the system has none).
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skip("no named pipes here:", err)
	}
}

// within runs f and fails the test if it has not returned after a minute:
// the functions tested here used to block for ever on a named pipe.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s blocked (still running after a minute)", what)
	}
}

// TestFIFOImageIsUnreadable: a named pipe with an image name in an
// ImageFolder is listed (as torchvision lists it) but Load refuses it at
// once, with an error that names it and wraps ErrNotRegular.
func TestFIFOImageIsUnreadable(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cat/a.png"), []byte("png"))
	mkfifo(t, filepath.Join(dir, "cat/b.png"))
	var s Source
	within(t, "Open", func() {
		var err error
		if s, err = Open(dir); err != nil {
			t.Error(err)
		}
	})
	if s == nil {
		return
	}
	if s.Len() != 2 || s.ID(1) != "cat/b.png" {
		t.Fatalf("len %d id %q", s.Len(), s.ID(1))
	}
	within(t, "Load", func() {
		_, err := s.Load(1)
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "b.png") || !strings.Contains(err.Error(), "named pipe") {
			t.Errorf("Load of a FIFO: %v", err)
		}
	})
	if smp, err := s.Load(0); err != nil || string(smp.Encoded) != "png" {
		t.Fatalf("Load(0) = %q, %v", smp.Encoded, err)
	}
}

// TestFIFOFilesAreRefused: every file a source opens at Open (a CSV list, IDX
// files, a names file, a CIFAR batch) and every file a list or the command
// line names is refused without blocking when it is a named pipe.
func TestFIFOFilesAreRefused(t *testing.T) {
	dir := t.TempDir()
	p := func(s string) string { return filepath.Join(dir, s) }
	mkfifo(t, p("pipe"))
	writeFile(t, p("img.png"), []byte("x"))
	writeFile(t, p("list.csv"), []byte("img.png,a\npipe,b\n"))
	writeFile(t, p("img.idx"), idxBytes([]int{1, 2, 2}, []byte{1, 2, 3, 4}))
	writeFile(t, p("lab.idx"), idxBytes([]int{1}, []byte{0}))
	writeFile(t, p("c10/batches.meta.txt"), []byte("0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n"))
	for i := 1; i <= 5; i++ {
		mkfifo(t, p("c10/data_batch_"+string(rune('0'+i))+".bin"))
	}
	cases := []struct{ spec, want string }{
		{"list:" + p("pipe"), "pipe: not a regular file but a named pipe"},
		{"list:" + p("list.csv"), "line 2: " + p("pipe") + " (a named pipe (FIFO))"},
		{"idx:" + p("pipe") + "," + p("lab.idx"), "pipe: not a regular file"},
		{"idx:" + p("img.idx") + "," + p("pipe"), "pipe: not a regular file"},
		{"idx:" + p("img.idx") + "," + p("lab.idx") + "," + p("pipe"), "pipe: not a regular file"},
		{"cifar10:" + p("c10"), "data_batch_1.bin: not a regular file"},
	}
	for _, c := range cases {
		within(t, "Open("+c.spec+")", func() {
			_, err := Open(c.spec)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open(%q) = %v, want error containing %q", c.spec, err, c.want)
			}
		})
	}
	within(t, "OpenPaths", func() {
		_, err := OpenPaths([]string{p("img.png"), p("pipe"), p("nope.png")})
		if err == nil || !strings.Contains(err.Error(), "2 of the image files given cannot be read: argument 2: "+p("pipe")+" (a named pipe (FIFO)); argument 3: "+p("nope.png")+" (missing)") {
			t.Errorf("OpenPaths: %v", err)
		}
	})
}

// TestClassNamesUTF8: class names that JSON cannot hold exactly (invalid
// UTF-8) are refused, naming the line or folder; ids are made valid but
// stay distinct.
func TestClassNamesUTF8(t *testing.T) {
	dir := t.TempDir()
	p := func(s string) string { return filepath.Join(dir, s) }
	writeFile(t, p("a.png"), []byte("x"))
	writeFile(t, p("b\xff.png"), []byte("x"))
	writeFile(t, p("b\xfe.png"), []byte("x"))
	writeFile(t, p("bad.csv"), []byte("a.png,ok\na.png,caf\xe9\na.png,caf\xe8\n"))
	writeFile(t, p("names.txt"), []byte("one\ntw\xff\n"))
	writeFile(t, p("img.idx"), idxBytes([]int{1, 1, 1}, []byte{1}))
	writeFile(t, p("lab.idx"), idxBytes([]int{1}, []byte{0}))
	cases := []struct{ spec, want string }{
		{"list:" + p("bad.csv"), `bad.csv: line 2: label "caf\xe9" is not valid UTF-8`},
		{"idx:" + p("img.idx") + "," + p("lab.idx") + "," + p("names.txt"), `names.txt: line 2: class name "tw\xff" is not valid UTF-8`},
	}
	for _, c := range cases {
		_, err := Open(c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want error containing %q", c.spec, err, c.want)
		}
	}
	folder := t.TempDir()
	writeFile(t, filepath.Join(folder, "ok/a.png"), []byte("x"))
	if err := os.Mkdir(filepath.Join(folder, "caf\xe9"), 0o755); err != nil {
		t.Skip("file system refuses non-UTF-8 names:", err)
	}
	writeFile(t, filepath.Join(folder, "caf\xe9/a.png"), []byte("x"))
	if _, err := Open(folder); err == nil || !strings.Contains(err.Error(), `class folder "caf\xe9" is not valid UTF-8`) {
		t.Errorf("folder with a non-UTF-8 class: %v", err)
	}
	s, err := Open("images:" + dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < s.Len(); i++ {
		ids = append(ids, s.ID(i))
	}
	if want := []string{"a.png", `b\xfe.png`, `b\xff.png`}; !reflect.DeepEqual(ids, want) {
		t.Fatalf("ids %q, want %q", ids, want)
	}
}

// TestUnlabelled: images:DIR, a one-column list and OpenPaths have no
// classes and label every sample Unlabelled, in a defined order.
func TestUnlabelled(t *testing.T) {
	dir := t.TempDir()
	p := func(s string) string { return filepath.Join(dir, s) }
	for _, f := range []string{"b.jpg", "a.png", "sub/c.gif", "notes.txt"} {
		writeFile(t, p(f), []byte(f))
	}
	writeFile(t, p("list.csv"), []byte("path\nsub/c.gif\na.png\n"))
	writeFile(t, p("mixed.csv"), []byte("a.png\nb.jpg,cat\n"))
	paths, err := OpenPaths([]string{p("b.jpg"), p("a.png")})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		spec string
		s    Source
		ids  []string
	}{
		{spec: "images:" + dir, ids: []string{"a.png", "b.jpg", "sub/c.gif"}},
		{spec: "list:" + p("list.csv"), ids: []string{"sub/c.gif", "a.png"}},
		{s: paths, ids: []string{p("b.jpg"), p("a.png")}},
	} {
		s := c.s
		if s == nil {
			if s, err = Open(c.spec); err != nil {
				t.Fatal(err)
			}
		}
		var ids []string
		for i := 0; i < s.Len(); i++ {
			ids = append(ids, s.ID(i))
			if s.Label(i) != Unlabelled {
				t.Errorf("%s: label %d of sample %d", s.Spec(), s.Label(i), i)
			}
		}
		if Labelled(s) || !reflect.DeepEqual(ids, c.ids) {
			t.Errorf("%s: classes %v ids %v, want none and %v", s.Spec(), s.Classes(), ids, c.ids)
		}
		if smp, err := s.Load(s.Len() - 1); err != nil || !strings.HasSuffix(c.ids[len(c.ids)-1], string(smp.Encoded)) {
			t.Errorf("%s: load: %q %v", s.Spec(), smp.Encoded, err)
		}
	}
	for _, c := range []struct{ spec, want string }{
		{"list:" + p("mixed.csv"), "mixed.csv: line 2 has 2 fields but the first row has 1"},
		{"images:" + p("a.png"), "is not a folder"},
		{"images:" + p("sub/none"), "no such file"},
		{"images:", "want images:DIR"},
	} {
		if _, err := Open(c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want error containing %q", c.spec, err, c.want)
		}
	}
	empty := t.TempDir()
	writeFile(t, filepath.Join(empty, "x.txt"), []byte("x"))
	if _, err := Open("images:" + empty); err == nil || !strings.Contains(err.Error(), "no images under") {
		t.Errorf("images: of a folder without images: %v", err)
	}
	if _, err := Open(empty); err == nil || !strings.Contains(err.Error(), "use --data images:"+empty) {
		t.Errorf("a folder without class folders: %v", err)
	}
}
