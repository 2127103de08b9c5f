package heads

import "github.com/cl-dev/cl/internal/linalg"

// ranpacPhaseRate is one phase of a timed RanPAC stage: its wall time and
// the floating-point operations it performs, counted from the sizes.
type ranpacPhaseRate struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	GFLOPs  float64 `json:"gflop"`
}

// ranpacPhaseRates returns the phases of the last stage h timed (h.timing)
// with their analytic flop counts, for a stage of n rows of d features in c
// classes (one EndStage after one Learn of all n rows) and λ search mode
// search ("fast" or "solve"). A multiply-add counts 2; a symmetric rank-k
// product writing one triangle of an n×n matrix counts k·n·(n+1).
//
//   - projection: H = ReLU(x·W) for the n rows in Learn, 2·n·d·P, and again
//     in a dual λ search (the primal search reorders Learn's H: stageCache);
//   - gram: G += HᵀH in Learn, n·P·(P+1);
//   - search-gram: the fit rows' Gram, dual (n_f < P) K = H_f H_fᵀ and
//     K_vf = H_v H_fᵀ, P·n_f·(n_f+1) + 2·n_v·n_f·P; primal H_fᵀH_f and H_fᵀY_f,
//     n_f·P·(P+1) + 2·n_f·P·c, where H_fᵀH_f is Learn's kept stage Gram less
//     H_vᵀH_v (M > 0, λ searched: stageCache) n_v·P·(P+1) + 2·n_f·P·c;
//   - search-solve: on the k×k system (k = n_f dual, P primal), with the 17
//     λ of RidgeGrid and n_v validation rows: the native path's tridiagonal
//     or band reduction 4/3·k³ (the band's panel QRs, their T factors and
//     the 17 banded solves, O(k²·kd) together, are not counted), Qᵀ R and
//     Q·Z for all λ 2·k²·c·18, V·(Q Z) 2·n_v·k·17·c; the pure-Go path's reduction and explicit Q 8/3·k³, Qᵀ R
//     2·k²·c, V·Q 2·n_v·k², V·Q·Z 2·n_v·k·c·17; search=solve 17 LU solves
//     17·(2/3·k³ + 2·k²·c + 2·n_v·k·c);
//   - solve: Cholesky of G + λI P³/3 and two triangular solves 2·P²·c.
func ranpacPhaseRates(h *RanPAC, n, d, c int, search string) []ranpacPhaseRate {
	p := float64(h.Width())
	nf := int(float64(n) * 0.8)
	fn, fnf, fnv, fc, fd := float64(n), float64(nf), float64(n-nf), float64(c), float64(d)
	grid := float64(len(RidgeGrid))
	var sg, k float64
	proj := 2 * fn * fd * p
	if search != "solve" && float64(nf) < p {
		sg = p*fnf*(fnf+1) + 2*fnv*fnf*p
		k = fnf
		proj *= 2
	} else {
		sg = fnf*p*(p+1) + 2*fnf*p*fc
		if h.cfg.M > 0 && float64(h.cfg.Lambda) <= 0 {
			sg = fnv*p*(p+1) + 2*fnf*p*fc
		}
		k = p
	}
	var ss float64
	switch {
	case search == "solve":
		ss = grid * (2.0/3*k*k*k + 2*k*k*fc + 2*fnv*k*fc)
	case linalg.NativeLAPACK() != nil:
		ss = 4.0/3*k*k*k + 2*k*k*fc*(grid+1) + 2*fnv*k*grid*fc
	default:
		ss = 8.0/3*k*k*k + 2*k*k*fc + 2*fnv*k*k + 2*fnv*k*fc*grid
	}
	flops := [numRanPACPhases]float64{
		phaseProjection:  proj,
		phaseGram:        fn * p * (p + 1),
		phaseSearchGram:  sg,
		phaseSearchSolve: ss,
		phaseSolve:       p*p*p/3 + 2*p*p*fc,
	}
	names := [numRanPACPhases]string{"projection", "gram", "search-gram", "search-solve", "solve"}
	out := make([]ranpacPhaseRate, numRanPACPhases)
	for i := range out {
		out[i] = ranpacPhaseRate{Name: names[i], Seconds: h.timing.d[i].Seconds(), GFLOPs: flops[i] / 1e9}
	}
	return out
}
