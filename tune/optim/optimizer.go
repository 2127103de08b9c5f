package optim

import (
	"fmt"
	"math"
)

// Kind names an update rule.
type Kind string

const (
	// SGD is torch.optim.SGD: d = g + wd·p; with momentum μ the buffer is
	// b = d at the first step, then b = μ·b + (1 − dampening)·d; the step uses
	// d + μ·b (Nesterov) or b; p −= lr·step.
	SGD Kind = "sgd"
	// Adam is torch.optim.Adam (L2 weight decay added to the gradient, no
	// AMSGrad): m = β1·m + (1−β1)·g, v = β2·v + (1−β2)·g², p −= lr/(1−β1ᵗ) ·
	// m / (√v/√(1−β2ᵗ) + ε).
	Adam Kind = "adam"
	// AdamW is torch.optim.AdamW: p ·= 1 − lr·wd first (decoupled decay),
	// then the Adam step without decay in the gradient.
	AdamW Kind = "adamw"
)

// Config holds the optimizer's hyper-parameters shared by all groups.
type Config struct {
	// Kind is SGD, Adam or AdamW.
	Kind Kind `json:"kind"`
	// Momentum (SGD) μ ∈ [0, 1); 0 is plain SGD.
	Momentum float64 `json:"momentum,omitempty"`
	// Dampening (SGD) of the momentum buffer's new term, torch's default 0.
	Dampening float64 `json:"dampening,omitempty"`
	// Nesterov (SGD) needs Momentum > 0 and Dampening = 0, as in torch.
	Nesterov bool `json:"nesterov,omitempty"`
	// Beta1, Beta2 (Adam, AdamW) ∈ [0, 1); torch's defaults are 0.9, 0.999.
	Beta1 float64 `json:"beta1,omitempty"`
	Beta2 float64 `json:"beta2,omitempty"`
	// Eps (Adam, AdamW) > 0 is added to √v/√(1−β2ᵗ); torch's default 1e-8.
	Eps float64 `json:"eps,omitempty"`
	// ClipNorm > 0 scales the gradients of the trainable groups by
	// min(1, ClipNorm/(‖g‖₂ + 1e-6)) before each update (global L2 norm
	// over all of them, torch.nn.utils.clip_grad_norm_); 0 disables it.
	ClipNorm float64 `json:"clip_norm,omitempty"`
	// Schedule scales each group's base learning rate over time.
	Schedule Schedule `json:"schedule"`
}

// AdamDefaults returns torch's Adam defaults (β = 0.9, 0.999, ε = 1e-8) for
// kind Adam or AdamW, with a constant schedule.
func AdamDefaults(kind Kind) Config {
	return Config{Kind: kind, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// Validate reports hyper-parameters torch.optim would refuse.
func (c Config) Validate() error {
	bad := func(v float64) bool { return math.IsNaN(v) || math.IsInf(v, 0) }
	switch c.Kind {
	case SGD:
		if bad(c.Momentum) || c.Momentum < 0 || c.Momentum >= 1 {
			return fmt.Errorf("optim: momentum %v must be in [0, 1)", c.Momentum)
		}
		if bad(c.Dampening) || c.Dampening < 0 || c.Dampening > 1 {
			return fmt.Errorf("optim: dampening %v must be in [0, 1]", c.Dampening)
		}
		if c.Nesterov && (c.Momentum == 0 || c.Dampening != 0) {
			return fmt.Errorf("optim: Nesterov momentum requires a momentum > 0 and zero dampening")
		}
	case Adam, AdamW:
		if bad(c.Beta1) || c.Beta1 < 0 || c.Beta1 >= 1 || bad(c.Beta2) || c.Beta2 < 0 || c.Beta2 >= 1 {
			return fmt.Errorf("optim: betas (%v, %v) must be in [0, 1)", c.Beta1, c.Beta2)
		}
		if bad(c.Eps) || c.Eps <= 0 {
			return fmt.Errorf("optim: eps %v must be > 0 (torch's default is 1e-8)", c.Eps)
		}
	default:
		return fmt.Errorf("optim: optimizer %q unknown (use sgd, adam or adamw)", c.Kind)
	}
	if bad(c.ClipNorm) || c.ClipNorm < 0 {
		return fmt.Errorf("optim: gradient clipping norm %v must be ≥ 0 (0 disables it)", c.ClipNorm)
	}
	return c.Schedule.Validate()
}

// paramState is torch's per-parameter state: the momentum buffer (SGD) or
// exp_avg (Adam), exp_avg_sq (Adam), and the number of updates applied.
type paramState struct {
	step int64
	buf  []float32 // nil until the first update (SGD without momentum: always nil)
	sq   []float32
}

// Optimizer applies Config's update rule to its groups.
type Optimizer struct {
	cfg    Config
	groups []Group
	state  []map[string]*paramState // per group, by parameter name
	steps  int64                    // Step calls that updated parameters
	epochs int64                    // EndEpoch calls
}

// New validates cfg and the groups (unique names, Data lengths matching
// shapes) and returns an Optimizer with empty state. The groups' Params are
// kept by reference: Step updates their Data.
func New(cfg Config, groups ...Group) (*Optimizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := validateGroups(groups); err != nil {
		return nil, err
	}
	o := &Optimizer{cfg: cfg, groups: append([]Group(nil), groups...)}
	o.state = make([]map[string]*paramState, len(groups))
	for i, g := range groups {
		o.state[i] = map[string]*paramState{}
		for _, p := range g.Params {
			o.state[i][p.Name] = &paramState{}
		}
	}
	return o, nil
}

// Config returns the optimizer's configuration.
func (o *Optimizer) Config() Config { return o.cfg }

// Groups returns the optimizer's groups (shared, do not modify the slices).
func (o *Optimizer) Groups() []Group { return o.groups }

// Steps is the number of updates applied so far.
func (o *Optimizer) Steps() int64 { return o.steps }

// Epochs is the number of EndEpoch calls so far.
func (o *Optimizer) Epochs() int64 { return o.epochs }

// Position is the schedule's position: Steps or Epochs, per its unit.
func (o *Optimizer) Position() int64 {
	if o.cfg.Schedule.unit() == PerStep {
		return o.steps
	}
	return o.epochs
}

// LR is the learning rate group g's next update will use.
func (o *Optimizer) LR(g int) float64 {
	return o.cfg.Schedule.LR(o.groups[g].LR, o.Position())
}

// EndEpoch marks the end of an epoch; a PerEpoch schedule advances.
func (o *Optimizer) EndEpoch() { o.epochs++ }

// StepInfo reports what one Step did.
type StepInfo struct {
	// GradNorm is the global L2 norm of the trainable gradients before
	// clipping (what clip_grad_norm_ returns).
	GradNorm float64
	// Clipped tells whether the gradients were scaled down.
	Clipped bool
}

// Step applies one update. grads maps every parameter of the non-frozen
// groups to its gradient (same length as Data); gradients of frozen
// parameters are ignored and may be absent. With ClipNorm set the gradients
// are scaled in place, as clip_grad_norm_ does. A missing or mis-sized
// gradient, or a non-finite gradient norm, is an error and nothing is
// updated.
func (o *Optimizer) Step(grads map[string][]float32) (StepInfo, error) {
	var info StepInfo
	var trainable [][]float32
	for _, g := range o.groups {
		if g.Frozen {
			continue
		}
		for _, p := range g.Params {
			gr, ok := grads[p.Name]
			if !ok {
				return info, fmt.Errorf("optim: step %d: no gradient for parameter %q", o.steps+1, p.Name)
			}
			if len(gr) != len(p.Data) {
				return info, fmt.Errorf("optim: step %d: gradient of %q has %d values, the parameter %d (shape %v)", o.steps+1, p.Name, len(gr), len(p.Data), p.Shape)
			}
			trainable = append(trainable, gr)
		}
	}
	info.GradNorm = GlobalNorm(trainable)
	if math.IsNaN(info.GradNorm) || math.IsInf(info.GradNorm, 0) {
		return info, fmt.Errorf("optim: step %d: the gradient norm is %v (NaN or Inf in a gradient); parameters not updated", o.steps+1, info.GradNorm)
	}
	if o.cfg.ClipNorm > 0 {
		info.Clipped = scaleToNorm(trainable, info.GradNorm, o.cfg.ClipNorm)
	}
	pos := o.Position()
	for gi, g := range o.groups {
		if g.Frozen {
			continue
		}
		lr := o.cfg.Schedule.LR(g.LR, pos)
		for _, p := range g.Params {
			st := o.state[gi][p.Name]
			st.step++
			switch o.cfg.Kind {
			case SGD:
				o.sgd(p.Data, grads[p.Name], st, lr, g.WeightDecay)
			case Adam:
				o.adam(p.Data, grads[p.Name], st, lr, g.WeightDecay, false)
			case AdamW:
				o.adam(p.Data, grads[p.Name], st, lr, g.WeightDecay, true)
			}
		}
	}
	o.steps++
	return info, nil
}
