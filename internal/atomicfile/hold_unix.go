//go:build unix

package atomicfile

import (
	"os"
	"syscall"
)

// hold marks a temporary file as being written: an flock that the kernel
// drops when the writer closes it or dies.
func hold(f *os.File) { syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) }

// removeIfUnheld removes path when no writer holds it (see hold).
func removeIfUnheld(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return false
	}
	return os.Remove(path) == nil
}
