package heads

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
)

// memoryBudget returns the bytes a head may plan to hold at once: the
// machine's physical memory (MemTotal of /proc/meminfo), or the Go memory
// limit (GOMEMLIMIT, debug.SetMemoryLimit) when that is lower; 0 when
// neither is known (then only the fixed limits apply). Tests replace it.
var memoryBudget = sync.OnceValue(func() uint64 {
	budget := physicalMemory()
	if lim := debug.SetMemoryLimit(-1); lim > 0 && lim < math.MaxInt64 && (budget == 0 || uint64(lim) < budget) {
		budget = uint64(lim)
	}
	return budget
})

// physicalMemory reads MemTotal from /proc/meminfo (0 when unavailable).
func physicalMemory() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// checkMemory refuses a plan of need bytes (described by what) that exceeds
// the memory budget.
func checkMemory(what string, need float64) error {
	budget := memoryBudget()
	if budget == 0 || need <= float64(budget) {
		return nil
	}
	return fmt.Errorf("%s needs about %s, more than this machine's %s of memory", what, byteSize(need), byteSize(float64(budget)))
}

// gramBytes is the size of one float64 P×P matrix.
func gramBytes(p int) float64 { return 8 * float64(p) * float64(p) }

// byteSize formats a byte count with a decimal unit ("320 GB", "800 MB").
func byteSize(b float64) string {
	units := []string{"bytes", "kB", "MB", "GB", "TB", "PB"}
	i := 0
	for b >= 1000 && i < len(units)-1 {
		b /= 1000
		i++
	}
	if i == 0 || b >= 100 {
		return fmt.Sprintf("%.0f %s", b, units[i])
	}
	return fmt.Sprintf("%.3g %s", b, units[i])
}
