package features

import (
	"fmt"
	"unicode/utf8"
)

// ValidateClasses checks a class list as feature and head files store it:
// every name valid UTF-8 (JSON would otherwise turn different invalid names
// into the same U+FFFD string) and no name twice (a repeated name would
// merge two classes). Errors name the index and the name.
func ValidateClasses(names []string) error {
	seen := make(map[string]int, len(names))
	for i, n := range names {
		if !utf8.ValidString(n) {
			return fmt.Errorf("class %d (%q) is not valid UTF-8: rename it (class names are stored as JSON text)", i, n)
		}
		if j, dup := seen[n]; dup {
			return fmt.Errorf("class name %q is listed twice (classes %d and %d): class names must be unique", n, j, i)
		}
		seen[n] = i
	}
	return nil
}

// MapClasses matches the class names from against the list to, by name.
// index[c] is the position of from[c] in merged, where merged is to followed
// by the names of from that to lacks, in from's order (to itself is not
// modified). So index[c] < len(to) says that to has the class, and
// index[c] ≥ len(to) that it is new. Both lists must be valid
// (ValidateClasses): names are unique.
//
// This is the one place that relates two files' class lists: fitting a head
// (new classes appended), scoring or forgetting (new classes are errors or
// left out), merging heads and concatenating feature files.
func MapClasses(to, from []string) (index []int, merged []string) {
	merged = append(make([]string, 0, len(to)+len(from)), to...)
	pos := make(map[string]int, len(to)+len(from))
	for i, n := range to {
		if _, dup := pos[n]; !dup {
			pos[n] = i
		}
	}
	index = make([]int, len(from))
	for c, n := range from {
		k, ok := pos[n]
		if !ok {
			k = len(merged)
			merged = append(merged, n)
			pos[n] = k
		}
		index[c] = k
	}
	return index, merged
}
