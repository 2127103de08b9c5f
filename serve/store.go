package serve

import (
	"sort"
)

// sample is one learned sample: the client's id, its class name, the
// journal record that learned it and its feature row [D].
type sample struct {
	id, class string
	seq       uint64
	ord       uint64 // learning order, increasing
	x         []float32
}

// store holds every sample the server learned and has not forgotten, by id
// and by class (in learning order). It is what makes forgetting by id exact
// (the head needs the sample's features to subtract it) and what snapshots
// write as a feature file. Memory: about N·D·4 bytes plus the ids; N is
// bounded by Config.MaxSamples.
type store struct {
	byID    map[string]*sample
	byClass map[string][]*sample
	next    uint64
}

func newStore() *store {
	return &store{byID: map[string]*sample{}, byClass: map[string][]*sample{}}
}

func (s *store) len() int { return len(s.byID) }

func (s *store) add(sm *sample) {
	s.next++
	sm.ord = s.next
	s.byID[sm.id] = sm
	s.byClass[sm.class] = append(s.byClass[sm.class], sm)
}

// remove drops the samples with the given ids (all present).
func (s *store) remove(ids map[string]bool) {
	classes := map[string]bool{}
	for id := range ids {
		if sm, ok := s.byID[id]; ok {
			classes[sm.class] = true
			delete(s.byID, id)
		}
	}
	for c := range classes {
		keep := s.byClass[c][:0]
		for _, sm := range s.byClass[c] {
			if !ids[sm.id] {
				keep = append(keep, sm)
			}
		}
		if len(keep) == 0 {
			delete(s.byClass, c)
		} else {
			s.byClass[c] = keep
		}
	}
}

// removeClass drops every sample of class c and returns them.
func (s *store) removeClass(c string) []*sample {
	out := s.byClass[c]
	for _, sm := range out {
		delete(s.byID, sm.id)
	}
	delete(s.byClass, c)
	return out
}

// ordered returns every sample in learning order.
func (s *store) ordered() []*sample {
	out := make([]*sample, 0, len(s.byID))
	for _, c := range s.byClass {
		out = append(out, c...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ord < out[j].ord })
	return out
}
