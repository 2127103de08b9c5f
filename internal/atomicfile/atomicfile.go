// Package atomicfile writes files so that a reader never sees a partial file
// under the final name: data goes to a temporary file in the same folder, is
// fsynced, then renamed over the destination.
//
// A destination that is a symbolic link is written through: the file it
// points to is replaced and the link stays. A destination that exists but is
// not a regular file (a folder, a device, a FIFO) is refused.
//
// The temporary file is ".NAME.tmp-RANDOM". Its writer holds an flock on it
// (on Unix), so a temporary file that nobody holds and that is older than
// StaleAge was left by a killed run: Create removes those of its own
// destination before it starts.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File is a pending atomic write. Write to it, then call Commit to publish it
// under its final name, or Abort to discard it. Abort after Commit is a no-op,
// so `defer f.Abort()` is the usual pattern.
type File struct {
	*os.File
	path   string // as the caller named it (for messages)
	target string // path with symbolic links followed: what Commit replaces
	done   bool
}

// StaleAge is how old an unheld temporary file must be before Create removes
// it as left over by a killed run.
const StaleAge = time.Minute

// Target is the file an atomic write of path replaces: path itself, or the
// file a symbolic link at path points to. A link to a missing file, and
// anything that exists but is not a regular file, is an error.
func Target(path string) (string, error) {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return path, nil
	}
	if err != nil {
		return "", fmt.Errorf("cannot write %s: %w", path, err)
	}
	target := path
	if st.Mode()&fs.ModeSymlink != 0 {
		if target, err = filepath.EvalSymlinks(path); err != nil {
			return "", fmt.Errorf("cannot write %s: it is a symbolic link whose target cannot be resolved (%v); remove the link or create its target", path, err)
		}
		if st, err = os.Stat(target); err != nil {
			return "", fmt.Errorf("cannot write %s: %w", path, err)
		}
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("cannot write %s: %s is not a regular file (%s); name a new file instead", path, target, st.Mode().Type())
	}
	return target, nil
}

// Create starts an atomic write of path. It fails early when the folder is
// missing or not writable, before any expensive work is done by the caller.
// It first removes stale temporary files of the same destination.
func Create(path string) (*File, error) {
	target, err := Target(path)
	if err != nil {
		return nil, err
	}
	RemoveStale(target)
	dir := filepath.Dir(target)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w (check that the folder exists and is writable)", path, err)
	}
	hold(tmp)
	return &File{File: tmp, path: path, target: target}, nil
}

// RemoveStale removes the temporary files of destination target
// (".NAME.tmp-*" beside it) that no writer holds and that were last modified
// more than StaleAge ago, and returns how many it removed. Errors are
// ignored: a file it cannot remove stays.
func RemoveStale(target string) int {
	dir, prefix := filepath.Dir(target), "."+filepath.Base(target)+".tmp-"
	entries, _ := os.ReadDir(dir)
	n := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), prefix) || !e.Type().IsRegular() {
			continue
		}
		m := filepath.Join(dir, e.Name())
		st, err := os.Lstat(m)
		if err != nil || time.Since(st.ModTime()) < StaleAge {
			continue
		}
		if removeIfUnheld(m) {
			n++
		}
	}
	return n
}

// CheckWritable reports whether an atomic write of path could start, without
// leaving anything behind. Use it to fail before a long job.
func CheckWritable(path string) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	f.Abort()
	return nil
}

// Commit flushes, closes and renames the temporary file to the final path.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("atomicfile: %s already committed or aborted", f.path)
	}
	f.done = true
	// CreateTemp makes the file 0600; published files get the usual 0644
	// (less the umask), or keep the mode of the file they replace.
	mode := os.FileMode(0o644) &^ processUmask
	if st, err := os.Stat(f.target); err == nil && st.Mode().IsRegular() {
		mode = st.Mode().Perm()
	}
	if err := f.File.Chmod(mode); err != nil {
		f.File.Close()
		os.Remove(f.File.Name())
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	if err := f.File.Sync(); err != nil {
		f.File.Close()
		os.Remove(f.File.Name())
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	if err := f.File.Close(); err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	if err := os.Rename(f.File.Name(), f.target); err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	if d, err := os.Open(filepath.Dir(f.target)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Abort discards the temporary file. It is safe to call more than once.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
}

// WriteFile atomically replaces path with the bytes produced by write.
func WriteFile(path string, write func(w io.Writer) error) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := write(f); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Commit()
}

// processUmask is read once at start-up: reading it means setting it, which
// must not race with other goroutines creating files.
var processUmask = umask()
