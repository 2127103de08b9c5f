package heads

import "time"

// ranpacPhase names a part of a RanPAC stage's arithmetic, for benchmarks.
type ranpacPhase int

const (
	phaseProjection  ranpacPhase = iota // H = ReLU(x·W): Learn's and the λ search's
	phaseGram                           // G += HᵀH (and Q) in Learn
	phaseSearchGram                     // the λ search's Gram: K and K_vf (dual) or H_fitᵀH_fit (primal)
	phaseSearchSolve                    // the λ search's reduction (or 17 solves) and losses
	phaseSolve                          // the final Cholesky solve of (G + λI) W_o = Q
	numRanPACPhases
)

// ranpacTiming accumulates the wall time of each phase; a nil one records
// nothing (the head's default: only benchmarks attach one).
type ranpacTiming struct {
	d [numRanPACPhases]time.Duration
}

// since adds the time elapsed from start to phase p.
func (t *ranpacTiming) since(p ranpacPhase, start time.Time) {
	if t != nil {
		t.d[p] += time.Since(start)
	}
}

// total is the time of all phases so far.
func (t *ranpacTiming) total() time.Duration {
	var s time.Duration
	for _, d := range t.d {
		s += d
	}
	return s
}
