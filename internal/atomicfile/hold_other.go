//go:build !unix

package atomicfile

import "os"

// hold does nothing without flock(2).
func hold(f *os.File) {}

// removeIfUnheld cannot tell a live writer's file from a dead one's without
// flock(2), so it removes nothing.
func removeIfUnheld(path string) bool { return false }
