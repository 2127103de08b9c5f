//go:build !linux

package heads

// adviseHuge does nothing outside Linux.
func adviseHuge([]byte) {}
