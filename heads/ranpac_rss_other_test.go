//go:build !linux

package heads

// peakRSS is 0 where getrusage's ru_maxrss is not known to be in KiB.
func peakRSS() int64 { return 0 }
