package heads

import (
	"time"

	"math"
	"math/rand/v2"
	"strconv"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"

	"github.com/cl-dev/cl/internal/linalg"
)

// RanPACProjection generates the D×M projection matrix for a seed: entries
// NormFloat64 of math/rand/v2's PCG seeded (seed, 0x5eed), drawn in
// row-major order and rounded to float32.
func RanPACProjection(seed uint64, d, m int) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	w := make([]float32, d*m)
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	return w
}

// fnv64a continues an FNV-64a hash over the 4 little-endian bytes of v.
func fnv64a(h uint64, v float32) uint64 {
	const prime = 1099511628211
	u := math.Float32bits(v)
	for k := 0; k < 4; k++ {
		h ^= uint64(byte(u >> (8 * k)))
		h *= prime
	}
	return h
}

const fnvOffset = 14695981039346656037

// projectionHash64 is the FNV-64a hash (hex) of the projection's float32
// values, little-endian, in row-major order; w holds them as float64.
func projectionHash64(w []float64) string {
	h := uint64(fnvOffset)
	for _, v := range w {
		h = fnv64a(h, float32(v))
	}
	return strconv.FormatUint(h, 16)
}

// projectionHashOf is projectionHash64 of RanPACProjection(seed, d, m),
// computed while drawing, without holding the matrix (the loader checks a
// file's hash before it allocates the projection).
func projectionHashOf(seed uint64, d, m int) string {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	h := uint64(fnvOffset)
	for i := 0; i < d*m; i++ {
		h = fnv64a(h, float32(rng.NormFloat64()))
	}
	return strconv.FormatUint(h, 16)
}

// setDim fixes D, generates the projection and allocates G.
func (h *RanPAC) setDim(d int) {
	h.setProjection(d)
	p := h.Width()
	h.g = largeFloats(p * p)
}

// setProjection fixes D and generates the projection: RanPACProjection's
// float32 values, held as float64 (drawn straight into the float64 matrix,
// no float32 copy).
func (h *RanPAC) setProjection(d int) {
	h.d = d
	if h.cfg.M > 0 {
		rng := rand.New(rand.NewPCG(h.cfg.Seed, 0x5eed))
		h.proj = largeFloats(d * h.cfg.M)
		for i := range h.proj {
			h.proj[i] = float64(float32(rng.NormFloat64()))
		}
	}
}

// project returns H = h(x) for n rows, n×P row-major.
func (h *RanPAC) project(x []float32, n int) blas64.General {
	return h.projectInto(x, n, nil)
}

// projectScratch is the reusable memory of projectInto for up to rows rows.
type projectScratch struct{ x64, out []float64 }

func (h *RanPAC) newProjectScratch(rows int) *projectScratch {
	s := &projectScratch{x64: largeFloats(rows * h.d)}
	if h.cfg.M > 0 {
		s.out = largeFloats(rows * h.cfg.M)
	}
	return s
}

// projectInto is project writing into scratch (nil = fresh memory). The
// chunked loops reuse one scratch: a fresh n × M matrix per chunk (80 MB at
// 1024 × 10⁴) would pile up as garbage next to G before the collector runs.
func (h *RanPAC) projectInto(x []float32, n int, scratch *projectScratch) blas64.General {
	d := h.d
	if scratch == nil {
		scratch = h.newProjectScratch(n)
	}
	x64 := scratch.x64[:len(x)]
	for i, v := range x {
		x64[i] = float64(v)
	}
	xm := blas64.General{Rows: n, Cols: d, Stride: d, Data: x64}
	if h.cfg.M == 0 {
		return xm
	}
	out := blas64.General{Rows: n, Cols: h.cfg.M, Stride: h.cfg.M, Data: scratch.out[:n*h.cfg.M]}
	blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, xm, blas64.General{Rows: d, Cols: h.cfg.M, Stride: h.cfg.M, Data: h.proj}, 0, out)
	relu(out.Data)
	return out
}

// relu sets the negative values of s to zero. max compiles without a
// branch: the former `if v < 0 { s[i] = 0 }` mispredicted on half of the
// values (random signs) and took 12–18 ns a value against 2–3 ns, 0.5–0.7 s
// of the projection at N = 20000, M = 2000. The results are the same bits:
// max differs only on −0 (made +0), which a product with β = 0 never
// yields, and keeps NaN as the comparison did.
func relu(s []float64) {
	for i, v := range s {
		s[i] = max(v, 0)
	}
}

// kernelBlock is the number of projection columns stageKernels handles at
// once (n × kernelBlock float64 of scratch).
const kernelBlock = 1024

// stageKernels returns K = H_fit H_fitᵀ (upper triangle of nf×nf) and
// K_vf = H_val H_fitᵀ (nv×nf) for the n rows xs [n, D] (the first nf are the
// fit rows), summing over column blocks of the projection, with
// H = ReLU(xs·W) (or xs itself when M = 0).
func (h *RanPAC) stageKernels(xs []float32, n, nf int) ([]float64, blas64.General) {
	d, nv := h.d, n-nf
	x64 := largeFloats(len(xs))
	for i, v := range xs {
		x64[i] = float64(v)
	}
	xm := blas64.General{Rows: n, Cols: d, Stride: d, Data: x64}
	k := largeFloats(nf * nf)
	kvf := blas64.General{Rows: nv, Cols: nf, Stride: nf, Data: largeFloats(nv * nf)}
	add := func(hb blas64.General) {
		hf := blas64.General{Rows: nf, Cols: hb.Cols, Stride: hb.Stride, Data: hb.Data[:nf*hb.Stride]}
		hv := blas64.General{Rows: nv, Cols: hb.Cols, Stride: hb.Stride, Data: hb.Data[nf*hb.Stride:]}
		defer h.timing.since(phaseSearchGram, time.Now())
		linalg.SyrkUpper(false, 1, hf, k, nf)
		blas64.Gemm(blas.NoTrans, blas.Trans, 1, hv, hf, 1, kvf)
	}
	if h.cfg.M == 0 {
		add(xm)
		return k, kvf
	}
	scratch := largeFloats(n * min(kernelBlock, h.cfg.M))
	report := h.phase("λ search: kernels")
	for m0 := 0; m0 < h.cfg.M; m0 += kernelBlock {
		if report != nil {
			report(m0, h.cfg.M)
		}
		bw := min(kernelBlock, h.cfg.M-m0)
		t0 := time.Now()
		hb := blas64.General{Rows: n, Cols: bw, Stride: bw, Data: scratch[:n*bw]}
		w := blas64.General{Rows: d, Cols: bw, Stride: h.cfg.M, Data: h.proj[m0:]}
		blas64.Gemm(blas.NoTrans, blas.NoTrans, 1, xm, w, 0, hb)
		relu(hb.Data)
		h.timing.since(phaseProjection, t0)
		add(hb)
	}
	if report != nil {
		report(h.cfg.M, h.cfg.M)
	}
	return k, kvf
}
