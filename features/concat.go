package features

import (
	"encoding/json"
	"fmt"
	"strings"
)

// ConcatByID returns the column concatenation [a | b] of two feature sets of
// the same samples, shape [N, D_a + D_b], in a's row order: APER's input
// φ(x) = [f_PTM(x); f_adapted(x)] (docs/HEADS.md). Rows are matched by
// sample id; both sets need ids. A missing id on either side, a duplicate
// id, or a sample whose class name differs between a and b is an error
// naming the id. The result keeps a's class list; its space joins both
// sides' (model names and hashes "a+b", preprocessing as a JSON array, a
// fingerprint hashed from both) so that test features concatenated alike
// have the same fingerprint.
func ConcatByID(a, b *Set) (*Set, error) {
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("first feature set: %w", err)
	}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("second feature set: %w", err)
	}
	if a.IDs == nil && a.N > 0 || b.IDs == nil && b.N > 0 {
		return nil, fmt.Errorf("concatenating features needs sample ids in both files (re-extract with a current cl)")
	}
	index := make(map[string]int, b.N)
	for j, id := range b.IDs {
		if _, dup := index[id]; dup {
			return nil, fmt.Errorf("second feature set: duplicate sample id %q", id)
		}
		index[id] = j
	}
	seen := make(map[string]bool, a.N)
	d := a.D + b.D
	pp, _ := json.Marshal([]string{a.Preprocess, b.Preprocess})
	sp := joinSpaces(a.Space(), b.Space(), string(pp))
	out := &Set{
		X: make([]float32, a.N*d), N: a.N, D: d,
		Labels:  append([]int(nil), a.Labels...),
		Classes: append([]string(nil), a.Classes...),
		IDs:     append([]string(nil), a.IDs...),
		Model:   sp.Model, ModelSHA256: sp.ModelSHA256, Preprocess: sp.Preprocess, Fingerprint: sp.Fingerprint,
		Source: a.Source + " + " + b.Source,
	}
	for i, id := range a.IDs {
		if seen[id] {
			return nil, fmt.Errorf("first feature set: duplicate sample id %q", id)
		}
		seen[id] = true
		j, ok := index[id]
		if !ok {
			return nil, fmt.Errorf("sample id %q is in the first feature set but not in the second", id)
		}
		ca, cb := a.Classes[a.Labels[i]], b.Classes[b.Labels[j]]
		if ca != cb {
			return nil, fmt.Errorf("sample id %q has class %q in the first feature set but %q in the second", id, ca, cb)
		}
		copy(out.X[i*d:i*d+a.D], a.Row(i))
		copy(out.X[i*d+a.D:(i+1)*d], b.Row(j))
	}
	if b.N != a.N {
		for _, id := range b.IDs {
			if !seen[id] {
				return nil, fmt.Errorf("sample id %q is in the second feature set but not in the first", id)
			}
		}
	}
	return out, nil
}

// Concat returns the row concatenation of sets (each a file named by the
// same position of names, used in errors): the rows of sets[0], then of
// sets[1], …. Every set must be of the same feature space (Same) and
// dimension. Class lists merge by name (MapClasses): the result lists the
// first set's classes, then the new names of the next sets in order. A
// sample id that occurs twice (within one set or across sets) is an error
// naming both places, since a head would learn that sample twice; rows
// without ids are not compared. The result's space is the first set's, with
// the fingerprint of a later set when the first has none (Space.Adopt).
// Unlabelled sets (prediction inputs) concatenate with unlabelled sets only.
func Concat(names []string, sets []*Set) (*Set, error) {
	if len(sets) == 0 || len(names) != len(sets) {
		return nil, fmt.Errorf("features: concat needs at least one set and one name per set (got %d sets, %d names)", len(sets), len(names))
	}
	first := sets[0]
	sp := first.Space()
	var n int
	anyIDs := false
	for k, s := range sets {
		if err := s.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", names[k], err)
		}
		if s.D != first.D {
			return nil, fmt.Errorf("%s has dimension %d but %s has %d: only features of the same model concatenate", names[k], s.D, names[0], first.D)
		}
		if s.Labelled() != first.Labelled() {
			return nil, fmt.Errorf("%s is %s but %s is %s: concatenate labelled and unlabelled files separately",
				names[k], labelledWord(s), names[0], labelledWord(first))
		}
		if !Same(first.Space(), s.Space()) {
			return nil, fmt.Errorf("%s comes from %s but %s from %s: extract both with the same model and preprocessing", names[k], s.Space(), names[0], first.Space())
		}
		sp = sp.Adopt(s.Space())
		n += s.N
		anyIDs = anyIDs || s.IDs != nil
	}
	out := &Set{
		X: make([]float32, 0, n*first.D), N: n, D: first.D, Labels: make([]int, 0, n),
		Model: sp.Model, ModelSHA256: sp.ModelSHA256, Preprocess: sp.Preprocess, Fingerprint: sp.Fingerprint,
	}
	if anyIDs {
		out.IDs = make([]string, 0, n)
	}
	type place struct{ set, row int }
	seen := map[string]place{}
	var sources []string
	for k, s := range sets {
		var index []int
		index, out.Classes = MapClasses(out.Classes, s.Classes)
		for _, y := range s.Labels {
			if y != Unlabelled {
				y = index[y]
			}
			out.Labels = append(out.Labels, y)
		}
		out.X = append(out.X, s.X...)
		if anyIDs {
			for i := 0; i < s.N; i++ {
				id := ""
				if s.IDs != nil {
					id = s.IDs[i]
				}
				if id != "" {
					if p, dup := seen[id]; dup {
						return nil, fmt.Errorf("sample id %q is in %s (row %d) and in %s (row %d): a head would learn it twice; select the rows to keep first (cl features select)",
							id, names[p.set], p.row, names[k], i)
					}
					seen[id] = place{k, i}
				}
				out.IDs = append(out.IDs, id)
			}
		}
		if s.Source != "" && (len(sources) == 0 || sources[len(sources)-1] != s.Source) {
			sources = append(sources, s.Source)
		}
	}
	out.Source = strings.Join(sources, " + ")
	return out, nil
}

func labelledWord(s *Set) string {
	if s.Labelled() {
		return "labelled"
	}
	return "unlabelled"
}
