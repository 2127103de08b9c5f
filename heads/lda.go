package heads

import (
	"errors"
	"fmt"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/mat"

	"github.com/cl-dev/cl/internal/linalg"
	"github.com/cl-dev/cl/internal/safetensors"
)

func init() {
	Register(Spec{
		Name:    "lda",
		Summary: "Streaming LDA (Hayes & Kanan 2020): class means + shared shrunk covariance, linear scores",
		Config:  func() Config { c := DefaultLDAConfig(); return &c },
		NewHead: func(c Config) (Head, error) { return NewLDA(*c.(*LDAConfig)) },
		Load: func(t map[string]safetensors.Tensor, p map[string]string) (Head, error) {
			c := DefaultLDAConfig()
			if err := ParseInto(&c, sortedPairs(p)); err != nil {
				return nil, err
			}
			h, err := NewLDA(c)
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

// LDA is the streaming linear discriminant analysis head of Hayes & Kanan
// ("Lifelong Machine Learning with Deep Streaming Linear Discriminant
// Analysis", CVPR-W 2020). It keeps per-class counts and sums and one sum
// of outer products Σ x xᵀ over all samples, so the pooled within-class
// covariance Σ = (Σ x xᵀ − Σ_c n_c μ_c μ_cᵀ) / N is exact at any time. EndStage
// solves Λ = ((1−ε)Σ + εI)⁻¹ and scores are s_c(x) = w_cᵀx + b_c with
// w_c = Λμ_c and b_c = −½ μ_cᵀΛμ_c.
type LDA struct {
	statHead
	eps float64
	// solved state: labels [C], w [C, D], b [C]; version of the statistics
	// it was solved from.
	labels  []int
	w, b    []float64
	solved  bool
	version uint64
	// fast caches the scorer of Scores and TopK (predict.go).
	fast scorerCache
}

// LDAConfig is streaming LDA's configuration.
type LDAConfig struct {
	// Shrinkage is ε ∈ [0, 1] of Λ = ((1−ε)Σ + εI)⁻¹.
	Shrinkage float64 `opt:"shrinkage" help:"covariance shrinkage ε, in [0, 1]"`
}

// DefaultLDAConfig is shrinkage = 1e-4, as in the paper.
func DefaultLDAConfig() LDAConfig { return LDAConfig{Shrinkage: 1e-4} }

// Method implements Config.
func (c *LDAConfig) Method() string { return "lda" }

// Validate implements Config.
func (c *LDAConfig) Validate() error { return inRange("lda", "shrinkage", c.Shrinkage, 0, 1) }

// NewLDA returns an empty LDA head; start from DefaultLDAConfig.
func NewLDA(cfg LDAConfig) (*LDA, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &LDA{statHead: statHead{method: "lda", params: Params(&cfg), st: newClassStats(false, true)}, eps: cfg.Shrinkage}, nil
}

// Learn implements Head; a class seen again adds to its sums.
func (h *LDA) Learn(x []float32, y []int) error { return h.learn(x, y, 1) }

// Unlearn implements Head.
func (h *LDA) Unlearn(x []float32, y []int) error { return h.learn(x, y, -1) }

// RemoveClass implements Head. It fails with ErrNeedSamples: the class's
// share of the shared covariance can only be removed by Unlearn with its
// samples (after which the class, having no samples left, is gone).
func (h *LDA) RemoveClass(label int) error { return h.st.remove(h.method, label) }

// Merge implements Head.
func (h *LDA) Merge(other Head) error { return h.merge(other) }

// State implements Head.
func (h *LDA) State() (map[string]safetensors.Tensor, map[string]string, error) {
	return h.st.tensors(), copyParams(h.params), nil
}

// EndStage implements Head: it solves the shared precision and the linear
// scores for every class. It is an error when the shrunk covariance is not
// positive definite (ε = 0 with fewer samples than dimensions).
func (h *LDA) EndStage() error {
	ls := h.st.labels()
	if len(ls) == 0 {
		h.labels, h.w, h.b, h.solved = nil, nil, nil, true
		h.version = h.st.version
		return nil
	}
	d := h.st.d
	sigma := h.st.pooledCovariance() // upper triangle
	for i := 0; i < d; i++ {
		row := sigma[i*d+i : (i+1)*d]
		for j := range row {
			row[j] *= 1 - h.eps
		}
		row[0] += h.eps
	}
	c := len(ls)
	mu := mat.NewDense(d, c, nil)
	for j, l := range ls {
		m := h.st.mean(l)
		for i := 0; i < d; i++ {
			mu.Set(i, j, m[i])
		}
	}
	w, err := ldaSolve(linalg.NativeLAPACK(), sigma, d, mu) // Λ μ, [D, C]
	if err != nil {
		return fmt.Errorf("lda: %v; raise the shrinkage option (now %g)", err, h.eps)
	}
	h.labels = ls
	h.w = make([]float64, c*d)
	h.b = make([]float64, c)
	for j := 0; j < c; j++ {
		var q float64
		for i := 0; i < d; i++ {
			v := w.At(i, j)
			h.w[j*d+i] = v
			q += v * mu.At(i, j)
		}
		h.b[j] = -q / 2
	}
	h.solved = true
	h.version = h.st.version
	return nil
}

// ldaSolve returns Σ⁻¹ μ [D, C] for the symmetric Σ [D, D] (upper triangle
// of sigma used; sigma is overwritten) by Cholesky: the native LAPACK's
// dpotrf when nat is not nil, else gonum's mat.Cholesky; the two triangular
// solves run on the selected BLAS either way. It is an error when Σ is not
// numerically positive definite.
func ldaSolve(nat linalg.Native, sigma []float64, d int, mu *mat.Dense) (*mat.Dense, error) {
	errPD := errors.New("the shrunk covariance is not positive definite")
	if nat == nil {
		var chol mat.Cholesky
		if !chol.Factorize(mat.NewSymDense(d, sigma)) {
			return nil, errPD
		}
		var w mat.Dense
		if err := chol.SolveTo(&w, mu); err != nil {
			return nil, fmt.Errorf("solving the discriminant: %v", err)
		}
		return &w, nil
	}
	if !nat.CholUpper(sigma, d, d) {
		return nil, errPD
	}
	w := mat.DenseCopyOf(mu)
	raw := w.RawMatrix()
	b := blas64.General{Rows: raw.Rows, Cols: raw.Cols, Stride: raw.Stride, Data: raw.Data}
	u := blas64.Triangular{Uplo: blas.Upper, Diag: blas.NonUnit, N: d, Stride: d, Data: sigma}
	blas64.Trsm(blas.Left, blas.Trans, 1, u, b)   // Uᵀ y = μ
	blas64.Trsm(blas.Left, blas.NoTrans, 1, u, b) // U w = y
	return w, nil
}

// Scores implements Head: s_c(x) = w_cᵀx + b_c, [n, C], every dot product by
// kernel.Dot (predict.go). It needs EndStage after the last change to the
// statistics.
func (h *LDA) Scores(x []float32) ([]float64, error) {
	if err := h.checkSolved(); err != nil {
		return nil, err
	}
	if _, err := checkRows(h.method, x, h.st.d); err != nil {
		return nil, err
	}
	return h.scorer().scores(x), nil
}

// checkSolved reports why the head cannot score: empty, or changed since the
// last EndStage.
func (h *LDA) checkSolved() error {
	if len(h.st.cls) == 0 {
		return errEmpty(h.method)
	}
	if !h.solved || h.version != h.st.version {
		return fmt.Errorf("lda: the statistics changed since the last EndStage: call EndStage before scoring")
	}
	return nil
}

// relabel renumbers the classes; the next EndStage re-solves.
func (h *LDA) relabel(to map[int]int) { h.st.relabel(to) }
