package learners

import (
	"context"
	"fmt"
	"sort"

	"github.com/cl-dev/cl/heads"
)

// Every head of package heads is a learner on the frozen backbone's
// features: Learn feeds Stage.Features to the head and ends the stage;
// Scores scores Eval.Features.
func init() {
	for _, name := range heads.Methods() {
		spec, _ := heads.Lookup(name)
		opts := map[string]string{}
		for _, o := range spec.Options() {
			opts[o.Key] = o.Default
		}
		Register(Spec{Name: name, Summary: spec.Summary + " (frozen features)", Options: opts,
			New: func(env Env, options map[string]string) (Learner, error) {
				cfg, err := spec.Parse(sortedPairs(options))
				if err != nil {
					return nil, err
				}
				h, err := spec.New(cfg)
				if err != nil {
					return nil, err
				}
				return &frozen{head: h}, nil
			}})
	}
}

// sortedPairs turns options into key=value pairs in key order.
func sortedPairs(m map[string]string) [][2]string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var p [][2]string
	for _, k := range keys {
		p = append(p, [2]string{k, m[k]})
	}
	return p
}

// frozen is a heads.Head driven as a learner.
type frozen struct {
	head  heads.Head
	names []string
}

func (f *frozen) Method() string { return f.head.Method() }

func (f *frozen) Learn(ctx context.Context, s Stage) error {
	if s.Features == nil || s.Dim == 0 {
		return fmt.Errorf("%s learns from the frozen backbone's features; this stage has none", f.head.Method())
	}
	f.names = s.Names
	if err := f.head.Learn(s.Features, s.Labels); err != nil {
		return err
	}
	return f.head.EndStage()
}

func (f *frozen) Scores(ctx context.Context, e Eval) ([]float64, []int, error) {
	if e.Features == nil {
		return nil, nil, fmt.Errorf("%s scores the frozen backbone's features; none were given", f.head.Method())
	}
	s, err := f.head.Scores(e.Features)
	return s, f.head.Classes(), err
}

func (f *frozen) Save(path string) error {
	return heads.Save(path, f.head, heads.Info{Classes: f.names})
}
