package cli

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cl-dev/cl/heads"
	"github.com/cl-dev/cl/internal/filelock"
)

// TestConcurrentFitsKeepBothUpdates: two cl processes fitting two files of
// 2,500 rows each into one head at once give a head of 5,000 rows (without
// the lock, both read the same old head and one update vanished).
func TestConcurrentFitsKeepBothUpdates(t *testing.T) {
	dir := t.TempDir()
	a, b, head := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "b.safetensors"), filepath.Join(dir, "h.safetensors")
	writeClusters(t, a, classNames(10), nil, 250, 32, 0, "mnv2")
	writeClusters(t, b, classNames(10), nil, 250, 32, 0.5, "mnv2")
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for _, f := range []string{a, b} {
		cmd := clProcess("fit", "--method", "ncm", "--features", f, "--head", head)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, &out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("fit %d: %v\n%s", i, err, outs[i])
		}
	}
	_, info, err := heads.Load(head)
	if err != nil {
		t.Fatal(err)
	}
	if info.Ledger == nil || info.Ledger.Len() != 5000 {
		n := -1
		if info.Ledger != nil {
			n = info.Ledger.Len()
		}
		t.Fatalf("the head learned %d rows, want 5000 (one update lost?)\n%s\n%s", n, outs[0], outs[1])
	}
	assertNoTemporaries(t, dir)
}

// TestFitWaitsForLock: while another process holds the head's lock, fit
// says so on stderr and waits; Ctrl-C then stops it without writing.
func TestFitWaitsForLock(t *testing.T) {
	if !filelock.Supported {
		t.Skip("no flock here")
	}
	dir := t.TempDir()
	a, head := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "h.safetensors")
	writeClusters(t, a, classNames(3), nil, 5, 8, 0, "mnv2")
	held, err := filelock.Acquire(t.Context(), head, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	cmd := clProcess("fit", "--method", "ncm", "--features", a, "--head", head)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, 200)
	n, _ := stderr.Read(line)
	msg := string(line[:n])
	if !strings.Contains(msg, "waiting for process "+strconv.Itoa(os.Getpid())) || !strings.Contains(msg, head) {
		t.Errorf("stderr while waiting: %q", msg)
	}
	cmd.Process.Signal(syscall.SIGINT)
	rest := new(bytes.Buffer)
	rest.ReadFrom(stderr)
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(rest.String(), "interrupted") {
		t.Errorf("after Ctrl-C: %v, stderr %q", err, rest.String())
	}
	if _, err := os.Stat(head); err == nil {
		t.Error("the interrupted fit wrote the head")
	}
}

// TestCtrlCStopsFitWithoutWriting: SIGINT during a slow fit (RanPAC, M =
// 3000 on 2,000 rows: seconds of λ search and solving) ends the process
// with exit code 1 and "interrupted"; the existing head keeps its bytes and
// no temporary file stays.
func TestCtrlCStopsFitWithoutWriting(t *testing.T) {
	dir := t.TempDir()
	small, big, head := filepath.Join(dir, "s.safetensors"), filepath.Join(dir, "b.safetensors"), filepath.Join(dir, "h.safetensors")
	writeClusters(t, small, classNames(4), nil, 3, 64, 0, "mnv2")
	writeClusters(t, big, classNames(20), nil, 100, 64, 0.5, "mnv2")
	if _, _, err := runHeadsCL("fit", "--method", "ranpac", "--set", "M=3000", "--features", small, "--head", head); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(head)
	cmd := clProcess("fit", "--features", big, "--head", head)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child writes its pid into the lock file once it holds the lock,
	// i.e. once it has started; then interrupt it.
	lock := filelock.Path(head)
	for {
		b, _ := os.ReadFile(lock)
		if strings.TrimSpace(string(b)) == strconv.Itoa(cmd.Process.Pid) {
			break
		}
		if cmd.ProcessState != nil {
			t.Fatalf("the fit ended before it was interrupted: %s", stderr.String())
		}
		syscall.Nanosleep(&syscall.Timespec{Nsec: 1e6}, nil)
	}
	cmd.Process.Signal(syscall.SIGINT)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("after Ctrl-C: %v, stderr %q", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "interrupted") || !strings.Contains(stderr.String(), "nothing written to "+head) {
		t.Errorf("stderr %q", stderr.String())
	}
	if after, _ := os.ReadFile(head); !bytes.Equal(before, after) {
		t.Error("the interrupted fit changed the head")
	}
	assertNoTemporaries(t, dir)
}

// assertNoTemporaries fails when a ".NAME.tmp-*" file is left in dir.
func assertNoTemporaries(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

// TestFitThroughSymlink: a --head that is a symbolic link is written
// through: the file it points to gets the update, the link stays a link.
func TestFitThroughSymlink(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	a, b := filepath.Join(dir, "a.safetensors"), filepath.Join(dir, "b.safetensors")
	writeClusters(t, a, classNames(4), []int{0, 1}, 3, 8, 0, "mnv2")
	writeClusters(t, b, classNames(4), []int{2, 3}, 3, 8, 0, "mnv2")
	target := filepath.Join(other, "real.safetensors")
	if _, _, err := runHeadsCL("fit", "--method", "ncm", "--features", a, "--head", target); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "h.safetensors")
	if err := os.Symlink(target, link); err != nil {
		t.Skip(err)
	}
	if out, _, err := runHeadsCL("fit", "--features", b, "--head", link); err != nil || !strings.Contains(out, "now scores 4 classes") {
		t.Fatalf("%v %s", err, out)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the link was replaced by a file: %v", err)
	}
	h, _, err := heads.Load(target)
	if err != nil || len(h.Classes()) != 4 {
		t.Fatalf("the target was not updated: %v", err)
	}
	assertNoTemporaries(t, dir)
	assertNoTemporaries(t, other)
}
