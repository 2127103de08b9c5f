package optim

import (
	"fmt"
	"math"
)

// ScheduleKind selects the shape of the learning-rate schedule.
type ScheduleKind string

const (
	// Constant keeps every group at its base learning rate (after the
	// warm-up, if any).
	Constant ScheduleKind = "constant"
	// Cosine is torch's CosineAnnealingLR after the warm-up:
	// lr = MinLR + (base − MinLR)·(1 + cos(π·t/T))/2 with t the position
	// since the end of the warm-up and T = Length − Warmup.
	Cosine ScheduleKind = "cosine"
	// MultiStep is torch's MultiStepLR after the warm-up: lr = base·Gamma^k
	// with k the number of Milestones ≤ t (SLCA's schedule).
	MultiStep ScheduleKind = "multistep"
	// CodaCosine is the CosineSchedule of PILOT's CODA-Prompt learner (and
	// the CODA-Prompt repository), lr = base·cos(99π·e/(200·(K−1))) with
	// K = Length, as it actually runs: the scheduler's constructor already
	// applies e = 0 and its first step() applies e = 0 again, so position
	// t trains with e = max(t − 1, 0). It never reaches 0 (cos(99π/200) ≈
	// 0.016 at e = K−1). Needs Length ≥ 2.
	CodaCosine ScheduleKind = "coda-cosine"
)

// Unit says what advances the schedule's position.
type Unit string

const (
	// PerStep advances the position at every Step (torch: scheduler.step()
	// after every optimizer.step()).
	PerStep Unit = "step"
	// PerEpoch advances it at every EndEpoch, so the learning rate is
	// constant within an epoch (PILOT: scheduler.step() once per epoch).
	PerEpoch Unit = "epoch"
)

// Schedule maps a group's base learning rate and the position (steps or
// epochs done so far, from 0) to the learning rate of the next update.
//
// With Warmup = W > 0 the first W positions ramp linearly, as torch's
// LinearLR(start_factor=WarmupFactor, end_factor=1, total_iters=W):
// lr = base·(f + (1 − f)·t/W) for t < W. From t = W on the Kind applies with
// its own position t − W, as torch's SequentialLR([LinearLR, …],
// milestones=[W]) does. Length, Warmup and the position count in Per units.
type Schedule struct {
	// Kind is Constant (the zero value "" means Constant), Cosine,
	// MultiStep or CodaCosine.
	Kind ScheduleKind `json:"kind"`
	// Per is PerStep or PerEpoch (the zero value "" means PerEpoch).
	Per Unit `json:"per"`
	// Length is the schedule's length in Per units including the warm-up
	// (Cosine: T_max = Length − Warmup, e.g. the number of epochs). Past
	// Length the cosine continues periodically, as torch's does.
	Length int `json:"length"`
	// Warmup is the number of Per units of linear warm-up (0: none).
	Warmup int `json:"warmup"`
	// WarmupFactor is the fraction of the base learning rate at position 0,
	// in (0, 1]; 0 means 1/(Warmup+1).
	WarmupFactor float64 `json:"warmup_factor"`
	// MinLR is the cosine's floor (torch's eta_min, absolute, the same for
	// every group).
	MinLR float64 `json:"min_lr"`
	// Milestones (MultiStep) are the positions after the warm-up, in Per
	// units and increasing, at which the learning rate is multiplied by
	// Gamma (0 < Gamma ≤ 1; torch's default 0.1).
	Milestones []int   `json:"milestones,omitempty"`
	Gamma      float64 `json:"gamma,omitempty"`
}

func (s Schedule) kind() ScheduleKind {
	if s.Kind == "" {
		return Constant
	}
	return s.Kind
}

func (s Schedule) unit() Unit {
	if s.Per == "" {
		return PerEpoch
	}
	return s.Per
}

func (s Schedule) warmupFactor() float64 {
	if s.WarmupFactor == 0 {
		return 1 / float64(s.Warmup+1)
	}
	return s.WarmupFactor
}

// Validate reports settings torch would refuse or that make no sense.
func (s Schedule) Validate() error {
	switch s.kind() {
	case Constant, Cosine:
	case CodaCosine:
		if s.Length-s.Warmup < 2 {
			return fmt.Errorf("schedule: coda-cosine needs length − warm-up ≥ 2 (the number of epochs K), got %d", s.Length-s.Warmup)
		}
	case MultiStep:
		if !(s.Gamma > 0 && s.Gamma <= 1) {
			return fmt.Errorf("schedule: multistep gamma %v must be in (0, 1]", s.Gamma)
		}
		for i, m := range s.Milestones {
			if m < 1 || (i > 0 && m <= s.Milestones[i-1]) {
				return fmt.Errorf("schedule: milestones %v must be positive and increasing", s.Milestones)
			}
		}
	default:
		return fmt.Errorf("schedule %q unknown (use constant, cosine, multistep or coda-cosine)", s.Kind)
	}
	switch s.unit() {
	case PerStep, PerEpoch:
	default:
		return fmt.Errorf("schedule unit %q unknown (use step or epoch)", s.Per)
	}
	if s.Warmup < 0 {
		return fmt.Errorf("schedule: warm-up %d must be ≥ 0", s.Warmup)
	}
	if f := s.WarmupFactor; f < 0 || f > 1 || math.IsNaN(f) {
		return fmt.Errorf("schedule: warm-up factor %v must be in (0, 1]", f)
	}
	if s.kind() == Cosine && s.Length-s.Warmup < 1 {
		return fmt.Errorf("schedule: cosine needs length (%d) > warm-up (%d)", s.Length, s.Warmup)
	}
	if !(s.MinLR >= 0) || math.IsInf(s.MinLR, 0) {
		return fmt.Errorf("schedule: min lr %v must be finite and ≥ 0", s.MinLR)
	}
	return nil
}

// LR returns the learning rate at position pos (≥ 0) for a group whose base
// learning rate is base.
func (s Schedule) LR(base float64, pos int64) float64 {
	if pos < 0 {
		pos = 0
	}
	if w := int64(s.Warmup); pos < w {
		f := s.warmupFactor()
		return base * (f + (1-f)*float64(pos)/float64(w))
	}
	t := pos - int64(s.Warmup)
	switch s.kind() {
	case Cosine:
		T := float64(s.Length - s.Warmup)
		return s.MinLR + (base-s.MinLR)*(1+math.Cos(math.Pi*float64(t)/T))/2
	case CodaCosine:
		e := max(t-1, 0)
		K := float64(s.Length - s.Warmup)
		return base * math.Cos(99*math.Pi*float64(e)/(200*(K-1)))
	case MultiStep:
		lr := base
		for _, m := range s.Milestones {
			if int64(m) <= t {
				lr *= s.Gamma
			}
		}
		return lr
	}
	return base
}
