package optim

import (
	"fmt"
	"math"
)

// Param is one named parameter tensor. Data holds the values in row-major
// order, len(Data) = product(Shape); Step updates Data in place.
type Param struct {
	// Name identifies the parameter in gradients and checkpoints.
	Name string
	// Shape is the tensor's shape (an empty shape is a scalar).
	Shape []int64
	// Data holds the float32 values.
	Data []float32
}

// Group is a set of parameters sharing a base learning rate and a weight
// decay, as a torch param_group does.
type Group struct {
	// Name labels the group in errors and checkpoints (optional).
	Name string
	// Params are updated in the order given.
	Params []*Param
	// LR is the group's base learning rate; the schedule scales it.
	LR float64
	// WeightDecay is the L2 penalty (SGD, Adam) or the decoupled decay
	// (AdamW) of this group, ≥ 0.
	WeightDecay float64
	// Frozen groups get no update at all: no decay, no state change; their
	// gradients may be absent and are ignored (also by clipping).
	Frozen bool
}

func numel(shape []int64) (int64, bool) {
	n := int64(1)
	for _, s := range shape {
		if s < 0 || (s > 0 && n > math.MaxInt32*int64(64)/s) {
			return 0, false
		}
		n *= s
	}
	return n, true
}

func validateGroups(groups []Group) error {
	if len(groups) == 0 {
		return fmt.Errorf("optim: no parameter groups")
	}
	seen := map[string]string{}
	for gi, g := range groups {
		gname := g.Name
		if gname == "" {
			gname = fmt.Sprintf("#%d", gi)
		}
		if !(g.LR >= 0) || math.IsInf(g.LR, 0) {
			return fmt.Errorf("optim: group %s: learning rate %v must be finite and ≥ 0", gname, g.LR)
		}
		if !(g.WeightDecay >= 0) || math.IsInf(g.WeightDecay, 0) {
			return fmt.Errorf("optim: group %s: weight decay %v must be finite and ≥ 0", gname, g.WeightDecay)
		}
		for _, p := range g.Params {
			if p == nil {
				return fmt.Errorf("optim: group %s has a nil parameter", gname)
			}
			if p.Name == "" {
				return fmt.Errorf("optim: group %s has a parameter without a name", gname)
			}
			if other, dup := seen[p.Name]; dup {
				return fmt.Errorf("optim: parameter %q appears twice (groups %s and %s)", p.Name, other, gname)
			}
			seen[p.Name] = gname
			n, ok := numel(p.Shape)
			if !ok || n != int64(len(p.Data)) {
				return fmt.Errorf("optim: parameter %q: shape %v holds %d values but Data has %d", p.Name, p.Shape, n, len(p.Data))
			}
		}
	}
	return nil
}
