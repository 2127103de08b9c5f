package filelock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestSecondWaitsUntilRelease: a second Acquire of the same target reports
// the holder (this process) through waiting, and gets the lock once the
// first is released.
func TestSecondWaitsUntilRelease(t *testing.T) {
	if !Supported {
		t.Skip("no flock on this system")
	}
	target := filepath.Join(t.TempDir(), "h.safetensors")
	first, err := Acquire(context.Background(), target, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitingFor := make(chan int, 1)
	got := make(chan error, 1)
	var second *Lock
	go func() {
		var err error
		second, err = Acquire(context.Background(), target, func(pid int) { waitingFor <- pid })
		got <- err
	}()
	if pid := <-waitingFor; pid != os.Getpid() {
		t.Errorf("waiting reported holder %d, want %d", pid, os.Getpid())
	}
	select {
	case err := <-got:
		t.Fatalf("second Acquire returned (%v) while the first holds the lock", err)
	default:
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	second.Release()
	second.Release() // twice is fine
}

// TestCancelWhileWaiting: a waiter whose context ends gets the context's
// error and no lock.
func TestCancelWhileWaiting(t *testing.T) {
	if !Supported {
		t.Skip("no flock on this system")
	}
	target := filepath.Join(t.TempDir(), "h")
	first, err := Acquire(context.Background(), target, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Release()
	ctx, cancel := context.WithCancel(context.Background())
	l, err := Acquire(ctx, target, func(int) { cancel() })
	if !errors.Is(err, context.Canceled) || l != nil {
		t.Fatalf("got %v, %v; want context.Canceled", l, err)
	}
}

// TestLinkSharesTheTargetsLock: a symbolic link and its target lock the
// same file, beside the target.
func TestLinkSharesTheTargetsLock(t *testing.T) {
	dir, other := t.TempDir(), t.TempDir()
	target := filepath.Join(dir, "h.safetensors")
	if err := os.WriteFile(target, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(other, "link.safetensors")
	if err := os.Symlink(target, link); err != nil {
		t.Skip(err)
	}
	want := filepath.Join(dir, ".h.safetensors.lock")
	if Path(link) != want || Path(target) != want {
		t.Errorf("Path(link) %s, Path(target) %s, want %s", Path(link), Path(target), want)
	}
	if Path(filepath.Join(dir, "new")) != filepath.Join(dir, ".new.lock") {
		t.Errorf("a file that does not exist yet: %s", Path(filepath.Join(dir, "new")))
	}
}

// TestMissingFolder names the target.
func TestMissingFolder(t *testing.T) {
	_, err := Acquire(context.Background(), filepath.Join(t.TempDir(), "no", "h"), nil)
	if err == nil {
		t.Fatal("locked in a missing folder")
	}
}
