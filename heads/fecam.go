package heads

import (
	"fmt"
	"math"
	"runtime"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/safetensors"
)

// FeCAMConfig is FeCAM's configuration (see FeCAM for the formulas).
type FeCAMConfig struct {
	// Variant is "paper" (the paper's ViT script) or "pilot" (PILOT's).
	Variant string `opt:"variant" help:"paper or pilot"`
	// Gamma1 and Gamma2 are the paper variant's shrinkage weights.
	Gamma1 float64 `opt:"gamma1" help:"paper: diagonal shrinkage weight, in [0, 1e6]"`
	Gamma2 float64 `opt:"gamma2" help:"paper: off-diagonal shrinkage weight, in [-1e6, 1e6]"`
	// Alpha is the pilot variant's shrinkage αI.
	Alpha float64 `opt:"alpha" help:"pilot: shrinkage αI, in [0, 1e12]"`
}

// DefaultFeCAMConfig is variant=paper, gamma1=1, gamma2=0, alpha=100.
func DefaultFeCAMConfig() FeCAMConfig {
	return FeCAMConfig{Variant: "paper", Gamma1: 1, Gamma2: 0, Alpha: 100}
}

// Method implements Config.
func (c *FeCAMConfig) Method() string { return "fecam" }

// Validate implements Config.
func (c *FeCAMConfig) Validate() error {
	if err := oneOf("fecam", "variant", c.Variant, "paper", "pilot"); err != nil {
		return err
	}
	if err := inRange("fecam", "gamma1", c.Gamma1, 0, 1e6); err != nil {
		return err
	}
	if err := inRange("fecam", "gamma2", c.Gamma2, -1e6, 1e6); err != nil {
		return err
	}
	return inRange("fecam", "alpha", c.Alpha, 0, 1e12)
}

func init() {
	Register(Spec{
		Name:    "fecam",
		Summary: "FeCAM (Goswami et al. 2023): per-class shrunk, normalised covariances, Mahalanobis distance",
		Config:  func() Config { c := DefaultFeCAMConfig(); return &c },
		NewHead: func(c Config) (Head, error) { return NewFeCAM(*c.(*FeCAMConfig)) },
		Load: func(t map[string]safetensors.Tensor, p map[string]string) (Head, error) {
			c := DefaultFeCAMConfig()
			if err := ParseInto(&c, sortedPairs(p)); err != nil {
				return nil, err
			}
			h, err := NewFeCAM(c)
			if err != nil {
				return nil, err
			}
			if err := loadAndSolve(h, h.st, t); err != nil {
				return nil, err
			}
			return h, nil
		},
	})
}

// FeCAM is the Mahalanobis head of Goswami et al., "FeCAM: Exploiting the
// Heterogeneity of Class Distributions in Exemplar-Free Continual Learning"
// (NeurIPS 2023). It keeps, per class, the count, the sum and the sum of
// outer products of its feature rows, so covariances are exact and
// incremental; EndStage turns each changed class into a mean μ_c [D] and a
// precision P_c [D, D], and score(x, c) = −(x̂ − m_c)ᵀ P_c (x̂ − m_c).
//
// variant=paper (default; the paper's ViT script FeCAM_vit_cifar100.py):
// rows are L2-normalised before they enter the statistics; m_c = their mean
// (not re-normalised); Σ_c = unbiased covariance;
// S = Σ_c + γ1·mean(diag Σ_c)·I + γ2·mean(off-diagonal non-zero entries of Σ_c)·(1 − I);
// C = D^{-1/2} S D^{-1/2} with D = diag(S) (correlation normalisation);
// P_c = pinv(C); x̂ = x/‖x‖.
//
// variant=pilot (PILOT models/fecam.py, docs/METHODS.md §2.5): raw rows enter the
// statistics; M = Σ_c + αI; C = corrcoef of M's rows (Pearson correlation
// between rows, clipped to [−1, 1]); P_c = pinv(C); m_c = μ_c/‖μ_c‖; x̂ = x/‖x‖.
//
// pinv drops eigenvalues below D·2⁻²³·max|λ| (torch's default tolerance for
// float32, which PILOT uses; PILOT's C has rank D − 1 by construction).
// No Tukey transform (neither script applies it to ViT features).
type FeCAM struct {
	statHead
	pilot          bool
	gamma1, gamma2 float64
	alpha          float64
	// solved per class: the mean m_c [D] and the diagonal of the precision
	// P_c [D]; P_c's strict lower triangle is kept in the strict lower
	// triangle of the class's outer-product array (classStat.outer, whose
	// upper triangle holds Σ x xᵀ), so a class costs one D × D array, not
	// two.
	means   map[int][]float64
	pdiag   map[int][]float64
	solved  bool
	version uint64
}

// NewFeCAM returns an empty FeCAM head; start from DefaultFeCAMConfig.
func NewFeCAM(cfg FeCAMConfig) (*FeCAM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &FeCAM{means: map[int][]float64{}, pdiag: map[int][]float64{},
		pilot: cfg.Variant == "pilot", gamma1: cfg.Gamma1, gamma2: cfg.Gamma2, alpha: cfg.Alpha}
	h.statHead = statHead{method: "fecam", params: Params(&cfg), st: newClassStats(true, false), normalize: !h.pilot}
	return h, nil
}

// Learn implements Head; a class seen again adds to its statistics and its
// covariance is re-solved at the next EndStage.
func (h *FeCAM) Learn(x []float32, y []int) error { return h.learn(x, y, 1) }

// Unlearn implements Head.
func (h *FeCAM) Unlearn(x []float32, y []int) error { return h.learn(x, y, -1) }

// RemoveClass implements Head.
func (h *FeCAM) RemoveClass(label int) error { return h.st.remove(h.method, label) }

// Merge implements Head.
func (h *FeCAM) Merge(other Head) error { return h.merge(other) }

// State implements Head.
func (h *FeCAM) State() (map[string]safetensors.Tensor, map[string]string, error) {
	return h.st.tensors(), copyParams(h.params), nil
}

// EndStage implements Head: it re-solves the classes whose statistics
// changed (in parallel over classes with the pure-Go LAPACK; one class at a
// time, each on all of its threads, with a native LAPACK). A class with
// fewer than 2 samples is an error.
func (h *FeCAM) EndStage() error {
	var todo []int
	for l := range h.st.dirty {
		if _, ok := h.st.cls[l]; ok {
			todo = append(todo, l)
		} else {
			delete(h.means, l)
			delete(h.pdiag, l)
		}
	}
	type result struct {
		l    int
		m, p []float64
		err  error
	}
	res := make([]result, len(todo))
	var wg sync.WaitGroup
	next := make(chan int)
	// One class per goroutine and core with the pure-Go LAPACK; one class at
	// a time with a native one, whose routines run on all the library's
	// threads already: two callers of 2-thread OpenBLAS on 2 cores took
	// 1.8–3.0 s for 10 classes at D = 768 against 1.2–1.5 s one at a time
	// (docs/PERFORMANCE.md).
	workers := min(runtime.GOMAXPROCS(0), len(todo))
	if linalg.NativeLAPACK() != nil {
		workers = min(1, len(todo))
	}
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws := &fecamWork{}
			for i := range next {
				m, p, err := h.solve(todo[i], ws)
				res[i] = result{todo[i], m, p, err}
			}
		}()
	}
	for i := range todo {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, r := range res {
		if r.err != nil {
			return r.err
		}
	}
	for _, r := range res {
		h.means[r.l], h.pdiag[r.l] = r.m, r.p
		delete(h.st.dirty, r.l)
	}
	clear(h.st.dirty)
	h.solved = true
	h.version = h.st.version
	return nil
}

// fecamWork is one EndStage worker's scratch, reused from class to class
// so that solving C classes allocates no D × D garbage per class.
type fecamWork struct {
	b, sd, rs []float64
	chol      mat.Cholesky
	inv       mat.SymDense
}

// solve computes class l's mean m [D] and precision P_c, whose strict lower
// triangle it stores in the class's outer-product array (see FeCAM) and
// whose diagonal it returns as pdiag [D].
func (h *FeCAM) solve(l int, ws *fecamWork) (m, pdiag []float64, err error) {
	d := h.st.d
	c := h.st.cls[l]
	if c.n < 2 {
		return nil, nil, fmt.Errorf("%s: class %d has %d sample(s); a covariance needs at least 2", h.method, l, c.n)
	}
	m = h.st.mean(l)
	if h.pilot {
		cov, err := h.st.covariance(h.method, l)
		if err != nil {
			return nil, nil, err
		}
		for i := 0; i < d; i++ {
			cov[i*d+i] += h.alpha
		}
		corr := rowCorrcoef(cov, d)
		null := pilotNull(cov, d)
		normalizeRow(m)
		pdiag, _, _ = storePrecision(c.outer, pinvSym(corr, d, null), d, false)
		return m, pdiag, nil
	}
	if len(ws.b) != d*d {
		ws.b, ws.sd, ws.rs = make([]float64, d*d), make([]float64, d), make([]float64, d)
	}
	r, err := h.paperCorrelation(l, c, m, ws, ws.b)
	if err != nil {
		return nil, nil, err
	}
	if pdiag, ok := h.cholPrecision(l, c, m, ws, r); ok {
		return m, pdiag, nil
	}
	// Not provably clear of pinvSym's cut: the eigenvalues decide, as
	// pinvSym does from the start.
	full := make([]float64, d*d)
	if _, err := h.paperCorrelation(l, c, m, ws, full); err != nil {
		return nil, nil, err
	}
	for i := 0; i < d; i++ {
		for j := i + 1; j < d; j++ {
			full[j*d+i] = full[i*d+j]
		}
	}
	pdiag, _, _ = storePrecision(c.outer, pinvSym(full, d, nil), d, false)
	return m, pdiag, nil
}

// paperCorrelation writes the upper triangle (diagonal included) of the
// paper variant's normalised, shrunk covariance C = D^{-1/2} S D^{-1/2} of
// class l (mean m) into dst [D, D], S = Σ_c + γ1·mean(diag Σ_c)·I +
// γ2·mean(off-diagonal non-zero entries of Σ_c)·(1 − I), Σ_c = (Σ x xᵀ −
// n μ μᵀ)/(n − 1). Every entry is computed by the same operations, in the
// same order, as building the full covariance and normalising it would, so
// the values are those bits. It returns r, the largest absolute row sum of
// C (a bound on its largest eigenvalue).
func (h *FeCAM) paperCorrelation(l int, c *classStat, m []float64, ws *fecamWork, dst []float64) (float64, error) {
	d, o := h.st.d, c.outer
	n := float64(c.n)
	cov := func(i, j int) float64 { return (o[i*d+j] - n*m[i]*m[j]) / (n - 1) } // i ≤ j
	var diag, off float64
	for i := 0; i < d; i++ {
		diag += cov(i, i)
	}
	diag /= float64(d)
	if h.gamma2 != 0 {
		// Row-major over the full matrix, as the covariance's own order.
		var nOff int
		for i := 0; i < d; i++ {
			for j := 0; j < d; j++ {
				var v float64
				if i < j {
					v = cov(i, j)
				} else if i > j {
					v = cov(j, i)
				} else {
					continue
				}
				if v != 0 {
					off += v
					nOff++
				}
			}
		}
		if nOff > 0 {
			off /= float64(nOff)
		}
	}
	sd := ws.sd
	for i := 0; i < d; i++ {
		v := cov(i, i) + h.gamma1*diag
		if v <= 0 {
			return 0, fmt.Errorf("fecam: class %d: feature %d has zero variance after shrinkage (all samples identical?); raise gamma1", l, i)
		}
		sd[i] = math.Sqrt(v)
	}
	rs := ws.rs
	clear(rs)
	for i := 0; i < d; i++ {
		row := dst[i*d : (i+1)*d]
		v := cov(i, i) + h.gamma1*diag
		v /= sd[i] * sd[i]
		row[i] = v
		rs[i] += math.Abs(v)
		for j := i + 1; j < d; j++ {
			v := cov(i, j)
			if h.gamma2 != 0 {
				v += h.gamma2 * off
			}
			v /= sd[i] * sd[j]
			row[j] = v
			rs[i] += math.Abs(v)
			rs[j] += math.Abs(v)
		}
	}
	var r float64
	for _, v := range rs {
		r = max(r, v)
	}
	return r, nil
}

// cholPrecision inverts the correlation whose upper triangle is in ws.b by
// Cholesky (the native LAPACK's dpotrf + dpotri, else gonum's), stores the
// inverse in class c's array (storePrecision) and reports whether it is
// pinvSym's result: whether every eigenvalue of C is provably above pinvSym's
// cut d·2⁻²³·max|λ| (then pinvSym drops none and returns this Cholesky
// inverse, bit for bit). The proof is, first, λ_min(C) = 1/‖C⁻¹‖₂ ≥
// 1/min(‖C⁻¹‖_∞, ‖C⁻¹‖_F) against τ = 2·d·2⁻²³·r ≥ twice the cut (r ≥
// max|λ| by Gershgorin), from the inverse just computed (its rounding
// error, relative ≈ d·ε·κ ≤ 2²²·ε ≈ 10⁻⁹ when the test passes, is covered
// by a factor 1 + 10⁻⁶), so it costs no factorisation; when that bound is
// too loose, clearlyAboveCut's shifted Cholesky. When ok is false the caller
// overwrites what was stored.
func (h *FeCAM) cholPrecision(l int, c *classStat, m []float64, ws *fecamWork, r float64) (pdiag []float64, ok bool) {
	d := h.st.d
	var p []float64
	if nat := linalg.NativeLAPACK(); nat != nil {
		if !nat.CholUpper(ws.b, d, d) || !nat.CholInverseUpper(ws.b, d, d) {
			return nil, false
		}
		p = ws.b
	} else {
		if !ws.chol.Factorize(mat.NewSymDense(d, ws.b)) {
			return nil, false
		}
		if err := ws.chol.InverseTo(&ws.inv); err != nil {
			return nil, false
		}
		raw := ws.inv.RawSymmetric()
		if raw.Stride != d {
			return nil, false
		}
		p = raw.Data
	}
	pdiag, inf, frob := storePrecision(c.outer, p, d, true)
	tau := 2 * float64(d) * math.Pow(2, -23) * r
	if min(inf, frob)*tau*(1+1e-6) < 1 {
		return pdiag, true
	}
	if _, err := h.paperCorrelation(l, c, m, ws, ws.b); err != nil {
		return nil, false
	}
	return pdiag, shiftedCholesky(ws.b, d, r)
}

// storePrecision keeps the symmetric precision p [D, D] in o, the class's
// outer-product array: p's strict lower triangle into o's, from p's upper
// triangle when upper is set (only that one is set), else from p's lower; it
// returns p's diagonal [D] and p's ∞-norm (largest absolute row sum) and
// Frobenius norm. o's upper triangle (the statistics) is not touched. The
// copy runs in 64 × 64 tiles so that the transposed side stays in cache.
func storePrecision(o, p []float64, d int, upper bool) (pdiag []float64, inf, frob float64) {
	pdiag = make([]float64, d)
	rs := make([]float64, d)
	const tile = 64
	var ss float64
	for i0 := 0; i0 < d; i0 += tile {
		i1 := min(i0+tile, d)
		for j0 := i0; j0 < d; j0 += tile {
			j1 := min(j0+tile, d)
			for i := i0; i < i1; i++ {
				for j := max(j0, i+1); j < j1; j++ {
					var v float64
					if upper {
						v = p[i*d+j]
					} else {
						v = p[j*d+i]
					}
					o[j*d+i] = v
					a := math.Abs(v)
					rs[i] += a
					rs[j] += a
					ss += 2 * v * v
				}
			}
		}
	}
	for i := 0; i < d; i++ {
		v := p[i*d+i]
		pdiag[i] = v
		rs[i] += math.Abs(v)
		ss += v * v
	}
	for _, v := range rs {
		inf = max(inf, v)
	}
	return pdiag, inf, math.Sqrt(ss)
}

// rowCorrcoef returns the Pearson correlation between the rows of the
// symmetric matrix a [d, d] (torch.corrcoef / numpy.corrcoef), clipped to
// [−1, 1].
func rowCorrcoef(a []float64, d int) []float64 {
	c := make([]float64, d*d)
	copy(c, a)
	for i := 0; i < d; i++ {
		row := c[i*d : (i+1)*d]
		var s float64
		for _, v := range row {
			s += v
		}
		s /= float64(d)
		for j := range row {
			row[j] -= s
		}
	}
	g := make([]float64, d*d)
	blas64.Syrk(blas.NoTrans, 1, blas64.General{Rows: d, Cols: d, Stride: d, Data: c}, 0,
		blas64.Symmetric{Uplo: blas.Upper, N: d, Stride: d, Data: g})
	sd := make([]float64, d)
	for i := range sd {
		sd[i] = math.Sqrt(g[i*d+i])
	}
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			v := g[i*d+j] / (sd[i] * sd[j])
			v = max(-1, min(1, v))
			g[i*d+j], g[j*d+i] = v, v
		}
	}
	return g
}

// pinvSym returns the Moore–Penrose pseudo-inverse of the symmetric matrix a
// [d, d], dropping eigenvalues with |λ| ≤ d·2⁻²³·max|λ|. When known, null is
// a unit vector with a·null ≈ 0 (the pilot correlation's null direction).
//
// Fast paths give the same matrix as the eigen-decomposition, up to
// rounding: the eigenvalues alone (no vectors) tell which are dropped; with
// none dropped and a positive definite, pinv = a⁻¹ (Cholesky); with exactly
// the known null direction dropped, pinv = (a + u uᵀ)⁻¹ − u uᵀ. Where a
// Cholesky of a shifted a shows that no eigenvalue is dropped
// (clearlyAboveCut), the eigenvalues are not computed at all.
func pinvSym(a []float64, d int, null []float64) []float64 {
	nat := linalg.NativeLAPACK()
	dropped, cut := 0, 0.0
	if !clearlyAboveCut(a, d) {
		lams, ok := symEigenvalues(nat, a, d)
		if !ok {
			return pinvEigen(a, d)
		}
		var big float64
		for _, x := range lams {
			big = max(big, math.Abs(x))
		}
		cut = float64(d) * math.Pow(2, -23) * big
		negative := false
		for _, x := range lams {
			if math.Abs(x) <= cut {
				dropped++
			} else if x < 0 {
				negative = true
			}
		}
		if negative || dropped > 1 || (dropped == 1 && null == nil) {
			return pinvEigen(a, d)
		}
	}
	b := append([]float64(nil), a...)
	if dropped == 1 {
		// a must annihilate null for the rank-one correction to be exact.
		var res float64
		for i := 0; i < d; i++ {
			var s float64
			for j := 0; j < d; j++ {
				s += a[i*d+j] * null[j]
			}
			res = max(res, math.Abs(s))
		}
		if res > cut {
			return pinvEigen(a, d)
		}
		for i := 0; i < d; i++ {
			for j := 0; j < d; j++ {
				b[i*d+j] += null[i] * null[j]
			}
		}
	}
	inv, ok := cholInverse(nat, b, d)
	if !ok {
		return pinvEigen(a, d)
	}
	out := make([]float64, d*d)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			v := inv[i*d+j]
			if dropped == 1 {
				v -= null[i] * null[j]
			}
			out[i*d+j], out[j*d+i] = v, v
		}
	}
	return out
}

// clearlyAboveCut reports, without computing eigenvalues, that every
// eigenvalue of the symmetric a [d, d] (both triangles set) exceeds pinvSym's
// cut d·2⁻²³·max|λ| at least twice over: the Cholesky factorisation of
// a − τI succeeds for τ = 2·d·2⁻²³·r, where r, the largest absolute row sum,
// bounds max|λ| (Gershgorin). A Cholesky that completes in float64 proves
// λ_min(a − τI) ≥ −O(d²·ε·r), and computed eigenvalues are within O(d·ε·r) of
// the true ones, both far below τ (≈ 2·10⁻⁴·r at d = 768), so pinvSym would
// have found no eigenvalue at or below the cut and none negative: its result
// is then a⁻¹ by cholInverse either way, the same bits, without the
// eigenvalue computation (dsyevd: a tridiagonal reduction, half of it
// matrix-vector work, the larger part of FeCAM's EndStage) but with one more
// Cholesky (d³/3 flops). When it cannot tell (a nearly singular, or the
// pilot correlation's null direction), pinvSym decides by the eigenvalues as
// before.
func clearlyAboveCut(a []float64, d int) bool {
	var r float64
	for i := 0; i < d; i++ {
		var s float64
		for _, v := range a[i*d : (i+1)*d] {
			s += math.Abs(v)
		}
		r = max(r, s)
	}
	return shiftedCholesky(append([]float64(nil), a...), d, r)
}

// shiftedCholesky is clearlyAboveCut's test on b [d, d] (upper triangle
// used, overwritten) whose largest absolute row sum is r: whether b − τI,
// τ = 2·d·2⁻²³·r, has a Cholesky factorisation.
func shiftedCholesky(b []float64, d int, r float64) bool {
	tau := 2 * float64(d) * math.Pow(2, -23) * r
	for i := 0; i < d; i++ {
		b[i*d+i] -= tau
	}
	return linalg.CholUpper(b, d)
}

// symEigenvalues returns the eigenvalues of the symmetric a [d, d]
// (ascending; a is not changed): by the native LAPACK's dsyevd when nat is
// not nil, else by gonum's mat.EigenSym. ok is false when the iteration did
// not converge.
func symEigenvalues(nat linalg.Native, a []float64, d int) ([]float64, bool) {
	if nat != nil {
		w := make([]float64, d)
		return w, nat.SymEigenvalues(append([]float64(nil), a...), d, d, w)
	}
	var vals mat.EigenSym
	if !vals.Factorize(mat.NewSymDense(d, append([]float64(nil), a...)), false) {
		return nil, false
	}
	return vals.Values(nil), true
}

// cholInverse returns b⁻¹ [d, d] for the symmetric positive definite b
// (upper triangle used; b may be overwritten), by Cholesky: the native
// LAPACK's dpotrf and dpotri when nat is not nil, else gonum's mat.Cholesky.
// Only the upper triangle of the result is set. ok is false when b is not
// numerically positive definite.
func cholInverse(nat linalg.Native, b []float64, d int) ([]float64, bool) {
	if nat != nil {
		if !nat.CholUpper(b, d, d) || !nat.CholInverseUpper(b, d, d) {
			return nil, false
		}
		return b, true
	}
	var chol mat.Cholesky
	if !chol.Factorize(mat.NewSymDense(d, b)) {
		return nil, false
	}
	var inv mat.SymDense
	if err := chol.InverseTo(&inv); err != nil {
		return nil, false
	}
	out := make([]float64, d*d)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			out[i*d+j] = inv.At(i, j)
		}
	}
	return out, true
}

// pinvEigen is pinvSym by the full eigen-decomposition P = V diag(1/λ) Vᵀ
// over the kept eigenvalues.
func pinvEigen(a []float64, d int) []float64 {
	var eig mat.EigenSym
	if !eig.Factorize(mat.NewSymDense(d, append([]float64(nil), a...)), true) {
		return make([]float64, d*d)
	}
	vals := eig.Values(nil)
	var v mat.Dense
	eig.VectorsTo(&v)
	var big float64
	for _, x := range vals {
		big = max(big, math.Abs(x))
	}
	cut := float64(d) * math.Pow(2, -23) * big
	vs := mat.NewDense(d, d, nil)
	for j, lam := range vals {
		if math.Abs(lam) <= cut {
			continue
		}
		for i := 0; i < d; i++ {
			vs.Set(i, j, v.At(i, j)/lam)
		}
	}
	var p mat.Dense
	p.Mul(vs, v.T())
	out := make([]float64, d*d)
	for i := 0; i < d; i++ {
		for j := i; j < d; j++ {
			s := (p.At(i, j) + p.At(j, i)) / 2
			out[i*d+j], out[j*d+i] = s, s
		}
	}
	return out
}

// pilotNull returns the unit null vector of rowCorrcoef(m): the centred rows
// of m are m·J (J = I − 11ᵀ/d), whose Gram matrix m J m annihilates m⁻¹1;
// the correlation rescales it by the rows' norms, so the null vector is
// diag(‖row_i(mJ)‖)·m⁻¹1. It returns nil when m is singular.
func pilotNull(m []float64, d int) []float64 {
	var chol mat.Cholesky
	if !chol.Factorize(mat.NewSymDense(d, append([]float64(nil), m...))) {
		return nil
	}
	ones := make([]float64, d)
	for i := range ones {
		ones[i] = 1
	}
	var v mat.VecDense
	if err := chol.SolveVecTo(&v, mat.NewVecDense(d, ones)); err != nil {
		return nil
	}
	u := make([]float64, d)
	for i := 0; i < d; i++ {
		row := m[i*d : (i+1)*d]
		var mean, ss float64
		for _, x := range row {
			mean += x
		}
		mean /= float64(d)
		for _, x := range row {
			ss += (x - mean) * (x - mean)
		}
		u[i] = math.Sqrt(ss) * v.AtVec(i)
	}
	normalizeRow(u)
	return u
}

// Scores implements Head: −(x̂ − m_c)ᵀ P_c (x̂ − m_c), [n, C]. It needs
// EndStage after the last change to the statistics. With z = x̂ − m_c and
// L_c the strict lower triangle of P_c (kept in the class's array, see
// FeCAM), zᵀP_c z = 2·zᵀ(L_c + I)z − 2‖z‖² + Σ_q P_c,qq z_q², so each
// 256-row block costs one triangular product Z (L_c + I) (Dtrmm, unit
// diagonal: the array's own diagonal, which belongs to the statistics, is
// not read): half the flops of a full product and a read of one triangle.
func (h *FeCAM) Scores(x []float32) ([]float64, error) {
	if len(h.st.cls) == 0 {
		return nil, errEmpty(h.method)
	}
	if !h.solved || h.version != h.st.version {
		return nil, fmt.Errorf("fecam: the statistics changed since the last EndStage: call EndStage before scoring")
	}
	d := h.st.d
	n, err := checkRows(h.method, x, d)
	if err != nil {
		return nil, err
	}
	ls := h.st.labels()
	c := len(ls)
	out := make([]float64, n*c)
	blk := min(scoreBlock, n)
	buf := make([]float64, blk*d)
	z := make([]float64, blk*d)
	t := make([]float64, blk*d)
	for r0 := 0; r0 < n; r0 += scoreBlock {
		r1 := min(r0+scoreBlock, n)
		rows := toFloat64(buf, x[r0*d:r1*d], d, true)
		k := r1 - r0
		for j, l := range ls {
			m, pd := h.means[l], h.pdiag[l]
			for i := 0; i < k; i++ {
				for q := 0; q < d; q++ {
					z[i*d+q] = rows[i*d+q] - m[q]
				}
			}
			copy(t[:k*d], z[:k*d])
			// T = Z (L + I), L the strict lower triangle of P_c.
			L := blas64.Triangular{Uplo: blas.Lower, Diag: blas.Unit, N: d, Stride: d, Data: h.st.cls[l].outer}
			blas64.Trmm(blas.Right, blas.NoTrans, 1, L, blas64.General{Rows: k, Cols: d, Stride: d, Data: t[:k*d]})
			for i := 0; i < k; i++ {
				zi, ti := z[i*d:(i+1)*d], t[i*d:(i+1)*d]
				var s float64
				for q, v := range zi {
					s += v * (2*ti[q] + (pd[q]-2)*v)
				}
				out[(r0+i)*c+j] = -s
			}
		}
	}
	return out, nil
}

// relabel renumbers the classes, keeping each class's solved mean and
// precision (whose triangle moves with the class's statistics).
func (h *FeCAM) relabel(to map[int]int) {
	h.st.relabel(to)
	means, pdiag := map[int][]float64{}, map[int][]float64{}
	for l, m := range h.means {
		if t, ok := to[l]; ok {
			means[t], pdiag[t] = m, h.pdiag[l]
		}
	}
	h.means, h.pdiag = means, pdiag
}
