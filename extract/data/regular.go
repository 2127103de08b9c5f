package data

import (
	"bytes"
	"io/fs"
	"os"
)

// openRegular opens path for reading and fails, without reading, unless it
// is a regular file (after following symbolic links). A named pipe, socket
// or device could block a reader forever or never end. The file is opened
// non-blocking (openNonBlocking), so that even a FIFO without a writer
// returns at once; the error wraps ErrNotRegular.
func openRegular(path string) (*os.File, error) {
	f, err := openNonBlocking(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: path, Err: notRegular(st.Mode())}
	}
	return f, nil
}

// readRegular is os.ReadFile for regular files only (see openRegular).
func readRegular(path string) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if st, err := f.Stat(); err == nil && st.Size() < 1<<30 {
		buf.Grow(int(st.Size()) + 1)
	}
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, &fs.PathError{Op: "read", Path: path, Err: err}
	}
	return buf.Bytes(), nil
}

// ErrNotRegular is wrapped by the errors for files that are not regular
// files (named pipes, sockets, devices, folders).
var ErrNotRegular = notRegularError{}

// notRegularError says what kind of file a non-regular file is; all values
// match ErrNotRegular under errors.Is.
type notRegularError struct{ kind string }

func (e notRegularError) Error() string {
	if e.kind == "" {
		return "not a regular file"
	}
	return "not a regular file but " + e.kind + " (cl reads only regular files)"
}

func (e notRegularError) Is(target error) bool {
	_, ok := target.(notRegularError)
	return ok
}

// notRegular describes a file of mode m that is not a regular file.
func notRegular(m fs.FileMode) error {
	kind := "a special file"
	switch {
	case m.IsDir():
		kind = "a folder"
	case m&fs.ModeNamedPipe != 0:
		kind = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		kind = "a socket"
	case m&fs.ModeCharDevice != 0:
		kind = "a character device"
	case m&fs.ModeDevice != 0:
		kind = "a block device"
	}
	return notRegularError{kind}
}
