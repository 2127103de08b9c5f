//go:build unix

package data

import (
	"errors"
	"os"
	"path/filepath"
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
