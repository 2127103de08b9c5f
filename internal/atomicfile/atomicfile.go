// Package atomicfile writes files so that a reader never sees a partial file
// under the final name: data goes to a temporary file in the same folder, is
// fsynced, then renamed over the destination.
package atomicfile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// File is a pending atomic write. Write to it, then call Commit to publish it
// under its final name, or Abort to discard it. Abort after Commit is a no-op,
// so `defer f.Abort()` is the usual pattern.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts an atomic write of path. It fails early when the folder is
// missing or not writable, before any expensive work is done by the caller.
func Create(path string) (*File, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("cannot write %s: %w (check that the folder exists and is writable)", path, err)
	}
	return &File{File: tmp, path: path}, nil
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
	if st, err := os.Stat(f.path); err == nil && st.Mode().IsRegular() {
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
	if err := os.Rename(f.File.Name(), f.path); err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("writing %s: %w", f.path, err)
	}
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
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
