//go:build !unix

package data

import "os"

// openNonBlocking opens path read-only (systems without FIFOs in the file
// system do not block on open).
func openNonBlocking(path string) (*os.File, error) { return os.Open(path) }
