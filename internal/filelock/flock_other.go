//go:build !unix

package filelock

import "os"

// tryLock does not lock: this system has no flock(2), so concurrent writers
// of one file are not serialised here (cl's releases target Linux and
// macOS).
func tryLock(f *os.File) (bool, error) { return true, nil }

// Supported reports whether Acquire really locks on this system.
const Supported = false
