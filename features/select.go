package features

import (
	"fmt"
	"sort"
	"strings"
)

// Subset returns the rows of s at the given indices, in that order, as a
// new set (rows copied). Its class list keeps only the classes that have
// rows, in s's class order, and labels are renumbered into it; ids, model,
// fingerprint, preprocessing and source are kept; Unlabelled rows stay
// unlabelled. An index out of range is an error.
func (s *Set) Subset(rows []int) (*Set, error) {
	used := make([]bool, len(s.Classes))
	for _, i := range rows {
		if i < 0 || i >= s.N {
			return nil, fmt.Errorf("features: row %d out of range (the set has %d rows)", i, s.N)
		}
		if y := s.Labels[i]; y != Unlabelled {
			used[y] = true
		}
	}
	newLabel := make([]int, len(s.Classes))
	out := &Set{
		X: make([]float32, 0, len(rows)*s.D), N: len(rows), D: s.D, Labels: make([]int, 0, len(rows)),
		Classes: []string{},
		Model:   s.Model, ModelSHA256: s.ModelSHA256, Preprocess: s.Preprocess, Fingerprint: s.Fingerprint,
		Source: s.Source,
	}
	for c, u := range used {
		newLabel[c] = -1
		if u {
			newLabel[c] = len(out.Classes)
			out.Classes = append(out.Classes, s.Classes[c])
		}
	}
	if s.IDs != nil {
		out.IDs = make([]string, 0, len(rows))
	}
	for _, i := range rows {
		out.X = append(out.X, s.Row(i)...)
		y := s.Labels[i]
		if y != Unlabelled {
			y = newLabel[y]
		}
		out.Labels = append(out.Labels, y)
		if s.IDs != nil {
			out.IDs = append(out.IDs, s.IDs[i])
		}
	}
	return out, nil
}

// SelectClasses returns the rows of s whose class is one of names, in s's
// row order (Subset). A name s does not list is an error that lists the
// classes it has.
func (s *Set) SelectClasses(names []string) (*Set, error) {
	index, merged := MapClasses(s.Classes, names)
	keep := make([]bool, len(s.Classes))
	for _, k := range index {
		if k >= len(s.Classes) {
			have := append([]string(nil), s.Classes...)
			sort.Strings(have)
			return nil, fmt.Errorf("no class %q (the classes are: %s)", merged[k], strings.Join(have, ", "))
		}
		keep[k] = true
	}
	var rows []int
	for i, y := range s.Labels {
		if keep[y] {
			rows = append(rows, i)
		}
	}
	return s.Subset(rows)
}

// ClassCounts returns the number of rows of each class (index = label);
// Unlabelled rows are not counted.
func (s *Set) ClassCounts() []int {
	counts := make([]int, len(s.Classes))
	for _, y := range s.Labels {
		if y != Unlabelled {
			counts[y]++
		}
	}
	return counts
}
