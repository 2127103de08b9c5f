//go:build cgo

#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "lapack.h"

// CBLAS constants (cblas.h): column-major, transposes, triangles, sides.
enum { CM = 102, NT = 111, TR = 112, UP = 121, LO = 122, NU = 131, LEFT = 141, RIGHT = 142 };

typedef void (*geqrt3_t)(const int*, const int*, double*, const int*, double*, const int*, int*);
typedef void (*gemm_t)(int, int, int, int, int, int, double, const double*, int, const double*, int, double, double*, int);
typedef void (*symm_t)(int, int, int, int, int, double, const double*, int, const double*, int, double, double*, int);
typedef void (*syr2k_t)(int, int, int, int, int, double, const double*, int, const double*, int, double, double*, int);
typedef void (*trmm_t)(int, int, int, int, int, int, int, double, const double*, int, double*, int);

static geqrt3_t b_geqrt3;
static gemm_t b_gemm;
static symm_t b_symm;
static syr2k_t b_syr2k;
static trmm_t b_trmm;

// cl_band_load resolves what cl_sy2sb_l calls; 1 when all are there.
int cl_band_load(void* h) {
	b_geqrt3 = (geqrt3_t)dlsym(h, "dgeqrt3_");
	b_gemm = (gemm_t)dlsym(h, "cblas_dgemm");
	b_symm = (symm_t)dlsym(h, "cblas_dsymm");
	b_syr2k = (syr2k_t)dlsym(h, "cblas_dsyr2k");
	b_trmm = (trmm_t)dlsym(h, "cblas_dtrmm");
	return b_geqrt3 && b_gemm && b_symm && b_syr2k && b_trmm;
}

// cl_sy2sb_l reduces the symmetric n×n A (column-major lower triangle, lda)
// to a band of kd subdiagonals, A = Q B Qᵀ, as LAPACK's dsytrd_sy2sb('L')
// does (same panels, same update), but factorises each panel with the
// recursive dgeqrt3 (level 3, and it returns the block reflector's T
// directly) instead of dgeqrf + dlarft. B goes to ab (ldab ≥ kd+1, LAPACK's
// lower band storage); the reflectors stay below the band in a (made
// explicit: unit diagonal, zeros above it), their scalars in tau (n; may be
// NULL) and each panel's kd×kd T in t (panel p at t[p·kd·kd],
// leading dimension kd). Returns 0, or the failing dgeqrt3's info, or -1000
// when the workspace cannot be allocated.
int cl_sy2sb_l(int n, int kd, double* a, int lda, double* ab, int ldab, double* tau, double* t) {
	if (n <= 0) return 0;
	int np = n > kd ? n - kd : 0;
	double* work = malloc(sizeof(double) * ((size_t)2 * n * kd + (size_t)kd * kd));
	if (!work) return -1000;
	double* x = work;                  // V·T, pn × pk, ld n
	double* w = work + (size_t)n * kd; // W, pn × pk, ld n
	double* s1 = w + (size_t)n * kd;   // pk × pk, ld kd
	for (int i = 0; i < np; i += kd) {
		int pn = n - i - kd, pk = pn < kd ? pn : kd;
		double* p = a + (i + kd) + (size_t)i * lda;          // the panel, pn × pk
		double* a22 = a + (i + kd) + (size_t)(i + kd) * lda; // trailing matrix
		double* tp = t + (size_t)(i / kd) * kd * kd;
		int info = 0;
		b_geqrt3(&pn, &pk, p, &lda, tp, &kd, &info);
		if (info != 0) {
			free(work);
			return info;
		}
		if (pk < kd) {
			// The last panel is wider than tall (pn = pk < kd): dsytrd_sy2sb
			// factorises all kd columns, so apply Hᵀ = I − V·Tᵀ·Vᵀ (V unit
			// lower pk×pk) to the kd − pk columns dgeqrt3 did not see.
			for (int c = pk; c < kd; c++) {
				double* col = p + (size_t)c * lda;
				double y[pk];
				for (int q = 0; q < pk; q++) { // y = Vᵀ·col
					double s = col[q];
					for (int r = q + 1; r < pn; r++) s += p[r + (size_t)q * lda] * col[r];
					y[q] = s;
				}
				for (int q = pk - 1; q >= 0; q--) { // y = Tᵀ·y (T upper)
					double s = 0;
					for (int r = 0; r <= q; r++) s += tp[r + (size_t)q * kd] * y[r];
					y[q] = s;
				}
				for (int r = 0; r < pn; r++) { // col −= V·y
					double s = y[r];
					for (int q = 0; q < r; q++) s += p[r + (size_t)q * lda] * y[q];
					col[r] -= s;
				}
			}
		}
		for (int j = i; j < i + pk; j++) {
			int lk = (kd < n - j - 1 ? kd : n - j - 1) + 1;
			memcpy(ab + (size_t)j * ldab, a + j + (size_t)j * lda, sizeof(double) * lk);
		}
		for (int q = 0; q < pk; q++) {
			if (tau) tau[i + q] = tp[q + (size_t)q * kd];
			p[q + (size_t)q * lda] = 1;
			for (int r = 0; r < q; r++) p[r + (size_t)q * lda] = 0;
		}
		// X = V·T; W = A22·X − ½·V·(Xᵀ·A22·X); A22 −= V·Wᵀ + W·Vᵀ.
		b_gemm(CM, NT, NT, pn, pk, pk, 1, p, lda, tp, kd, 0, x, n);
		b_symm(CM, LEFT, LO, pn, pk, 1, a22, lda, x, n, 0, w, n);
		b_gemm(CM, TR, NT, pk, pk, pn, 1, x, n, w, n, 0, s1, kd);
		b_gemm(CM, NT, NT, pn, pk, pk, -0.5, p, lda, s1, kd, 1, w, n);
		b_syr2k(CM, LO, NT, pn, pk, -1, p, lda, w, n, 1, a22, lda);
	}
	for (int j = np; j < n; j++) {
		int lk = (kd < n - j - 1 ? kd : n - j - 1) + 1;
		memcpy(ab + (size_t)j * ldab, a + j + (size_t)j * lda, sizeof(double) * lk);
	}
	free(work);
	return 0;
}

// cl_sbmulq_r overwrites the m×(n) column-major X (ldx) with X·Q (trans 0)
// or X·Qᵀ (trans 1), Q = Q₁…Q_P the block reflectors cl_sy2sb_l(n, kd, a,
// lda, …, t) left: Q_p = I − V_p·T_p·V_pᵀ, V_p the explicit unit lower
// trapezoidal panel at a(i+kd, i), i = p·kd. Each block is three level-3
// calls (X_p·V_p, ·T_p or ·T_pᵀ, −= ·V_pᵀ) on the columns i+kd… of X.
// Returns -1000 when the workspace cannot be allocated.
int cl_sbmulq_r(int trans, int n, int kd, const double* a, int lda, const double* t, double* x, int ldx, int m) {
	int np = n > kd ? n - kd : 0;
	if (np == 0 || m == 0) return 0;
	double* y = malloc(sizeof(double) * (size_t)m * kd);
	if (!y) return -1000;
	int last = ((np - 1) / kd) * kd;
	for (int s = 0; s <= last; s += kd) {
		int i = trans ? last - s : s;
		int pn = n - i - kd, pk = pn < kd ? pn : kd;
		const double* v = a + (i + kd) + (size_t)i * lda;
		const double* tp = t + (size_t)(i / kd) * kd * kd;
		double* xs = x + (size_t)(i + kd) * ldx;
		b_gemm(CM, NT, NT, m, pk, pn, 1, xs, ldx, v, lda, 0, y, m);
		b_trmm(CM, RIGHT, UP, trans ? TR : NT, NU, m, pk, 1, tp, kd, y, m);
		b_gemm(CM, NT, TR, m, pn, pk, -1, y, m, v, lda, 1, xs, ldx);
	}
	free(y);
	return 0;
}
