//go:build linux

package heads

import "syscall"

// peakRSS is the process's peak resident set size in bytes (getrusage's
// ru_maxrss, KiB on Linux).
func peakRSS() int64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return ru.Maxrss * 1024
}
