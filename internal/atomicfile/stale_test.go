package atomicfile

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func write(s string) func(io.Writer) error {
	return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
}

// age sets a file's modification time StaleAge + 1 minute in the past.
func age(t *testing.T, path string) {
	t.Helper()
	old := time.Now().Add(-StaleAge - time.Minute)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// TestSymlinkIsWrittenThrough: writing to a link replaces the file it
// points to (keeping its mode) and leaves the link a link.
func TestSymlinkIsWrittenThrough(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	target := filepath.Join(dir, "h.safetensors")
	if err := os.WriteFile(target, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(other, "link.safetensors")
	if err := os.Symlink(target, link); err != nil {
		t.Skip(err)
	}
	if err := WriteFile(link, write("new")); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced: %v %v", st.Mode(), err)
	}
	if b, _ := os.ReadFile(target); string(b) != "new" {
		t.Fatalf("target holds %q", b)
	}
	if st, _ := os.Stat(target); st.Mode().Perm() != 0o600 {
		t.Errorf("target mode %v, want 0600 kept", st.Mode().Perm())
	}
	assertOnly(t, dir, "h.safetensors")
	assertOnly(t, other, "link.safetensors")
}

// TestNonRegularRefused: a dangling link, a folder and a FIFO are refused
// with their name, and nothing is created.
func TestNonRegularRefused(t *testing.T) {
	dir := t.TempDir()
	dangling := filepath.Join(dir, "dangling")
	os.Symlink(filepath.Join(dir, "missing"), dangling)
	sub := filepath.Join(dir, "sub")
	os.Mkdir(sub, 0o755)
	paths := []string{dangling, sub}
	if fifo := filepath.Join(dir, "fifo"); mkfifo(fifo) == nil {
		paths = append(paths, fifo)
	}
	for _, p := range paths {
		err := WriteFile(p, write("x"))
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Error("the dangling link's target was created")
	}
}

// TestStaleTemporariesRemoved: an old unheld temporary file of the same
// destination is removed by the next write; a recent one, one held by a
// writer, and one of another destination stay.
func TestStaleTemporariesRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.bin")
	stale := filepath.Join(dir, ".out.bin.tmp-111")
	fresh := filepath.Join(dir, ".out.bin.tmp-222")
	otherDest := filepath.Join(dir, ".other.bin.tmp-333")
	for _, p := range []string{stale, fresh, otherDest} {
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	age(t, stale)
	age(t, otherDest)
	held, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Abort()
	age(t, held.Name())
	if err := WriteFile(path, write("done")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("the stale temporary file is still there")
	}
	want := []string{fresh, otherDest}
	if runtime.GOOS != "windows" {
		want = append(want, held.Name())
	}
	for _, p := range want {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
}

// childFile keeps the child's pending file reachable: a collected *os.File
// is closed by its finalizer, which would drop the writer's flock.
var childFile *File

// TestKilledWriterTemporaryIsRemoved: a real process killed (SIGKILL) in
// the middle of a write leaves its temporary file; while it ran the file was
// held and kept, after its death the next write removes it.
func TestKilledWriterTemporaryIsRemoved(t *testing.T) {
	if path := os.Getenv("ATOMICFILE_TEST_CHILD"); path != "" {
		f, err := Create(path)
		if err != nil {
			os.Exit(3)
		}
		f.WriteString("partial")
		childFile = f // a live writer keeps its file (and so its flock) open
		os.Stdout.WriteString(f.Name() + "\n")
		select {} // killed by the parent
	}
	if runtime.GOOS == "windows" {
		t.Skip("no flock, no SIGKILL")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "h.safetensors")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledWriterTemporaryIsRemoved$")
	cmd.Env = append(os.Environ(), "ATOMICFILE_TEST_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tmp, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("child: %v", err)
	}
	tmp = strings.TrimSpace(tmp)
	age(t, tmp)
	if n := RemoveStale(path); n != 0 {
		t.Errorf("removed %d temporary files of a live writer", n)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("the killed writer left no temporary file to clean: %v", err)
	}
	if err := WriteFile(path, write("whole")); err != nil {
		t.Fatal(err)
	}
	assertOnly(t, dir, "h.safetensors")
}
