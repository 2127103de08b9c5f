//go:build !unix

package atomicfile

import "errors"

func mkfifo(path string) error { return errors.New("no FIFOs here") }
