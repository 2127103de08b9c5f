// Package filelock serialises the commands that rewrite one file in place
// (cl fit, cl merge, cl forget, the server): each holds an exclusive
// advisory lock on a lock file beside the target from before it reads the
// file until after it has replaced it, so two of them never both read the
// old version and one update vanishes.
//
// The lock file is ".NAME.lock" in the target's folder (after following
// symbolic links, so a link and its target share one lock). It is an empty
// file, except for the holder's process id, and is left in place: removing
// it would let a waiter lock a file that no longer has a name. The lock is
// flock(2): the kernel releases it when the holder exits, however it dies.
// On systems without flock, Acquire does not lock (see filelock_other.go).
package filelock

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Lock is a held lock; Release it when the target has been written.
type Lock struct {
	f    *os.File
	path string
}

// Path is the lock file beside target: ".NAME.lock" in the folder of the
// file target resolves to (symbolic links followed when they exist).
func Path(target string) string {
	if real, err := filepath.EvalSymlinks(target); err == nil {
		target = real
	}
	return filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".lock")
}

// Acquire takes the lock of target. When another process (or another Lock
// in this one) holds it, Acquire calls waiting once, with the holder's
// process id when known (0 otherwise), and then waits until the lock is free
// or ctx is done (it returns ctx's error then). A folder that does not exist
// or cannot be written is an error naming the lock file.
func Acquire(ctx context.Context, target string, waiting func(holder int)) (*Lock, error) {
	path := Path(target)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot lock %s: %w (check that the folder exists and is writable)", target, err)
	}
	l := &Lock{f: f, path: path}
	told := false
	for delay := time.Millisecond; ; delay = min(2*delay, 100*time.Millisecond) {
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot lock %s (%s): %w", target, path, err)
		}
		if ok {
			break
		}
		if !told && waiting != nil {
			waiting(holder(path))
			told = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
	// Record the holder for the next one's message (best effort).
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return l, nil
}

// holder reads the process id a holder wrote into the lock file (0 when
// unknown).
func holder(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// Release frees the lock (closing the lock file releases the flock). It is
// safe to call more than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.f.Truncate(0)
	err := l.f.Close()
	l.f = nil
	return err
}

// File is the lock file's path.
func (l *Lock) File() string { return l.path }
