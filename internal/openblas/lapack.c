//go:build cgo

#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include "lapack.h"

// Fortran LAPACK with gfortran's hidden CHARACTER lengths (size_t, last).
typedef void (*dsytrd_t)(const char*, const int*, double*, const int*, double*, double*, double*, double*, const int*, int*, size_t);
typedef void (*dormtr_t)(const char*, const char*, const char*, const int*, const int*, const double*, const int*, const double*, double*, const int*, double*, const int*, int*, size_t, size_t, size_t);
typedef void (*dsyevd_t)(const char*, const char*, const int*, double*, const int*, double*, double*, const int*, int*, const int*, int*, size_t, size_t);
typedef void (*dpotrf_t)(const char*, const int*, double*, const int*, int*, size_t);
typedef void (*dsy2sb_t)(const char*, const int*, const int*, double*, const int*, double*, const int*, double*, double*, const int*, int*, size_t);
typedef void (*dormqr_t)(const char*, const char*, const int*, const int*, const int*, const double*, const int*, const double*, double*, const int*, double*, const int*, int*, size_t, size_t);
typedef void (*dgbsv_t)(const int*, const int*, const int*, const int*, double*, const int*, int*, double*, const int*, int*);
typedef void (*dpbtrf_t)(const char*, const int*, const int*, double*, const int*, int*, size_t);
typedef void (*dpbtrs_t)(const char*, const int*, const int*, const int*, const double*, const int*, double*, const int*, int*, size_t);

static dsytrd_t p_dsytrd;
static dormtr_t p_dormtr;
static dsyevd_t p_dsyevd;
static dpotrf_t p_dpotrf, p_dpotri;
static dsy2sb_t p_dsy2sb;
static dormqr_t p_dormqr;
static dgbsv_t p_dgbsv;
static dpbtrf_t p_dpbtrf;
static dpbtrs_t p_dpbtrs;

// cl_lapack_load resolves the LAPACK routines in an opened library; it
// returns 1 when all are there, 0 otherwise (a BLAS-only build).
int cl_lapack_load(void* h) {
	p_dsytrd = (dsytrd_t)dlsym(h, "dsytrd_");
	p_dormtr = (dormtr_t)dlsym(h, "dormtr_");
	p_dsyevd = (dsyevd_t)dlsym(h, "dsyevd_");
	p_dpotrf = (dpotrf_t)dlsym(h, "dpotrf_");
	p_dpotri = (dpotrf_t)dlsym(h, "dpotri_");
	p_dsy2sb = (dsy2sb_t)dlsym(h, "dsytrd_sy2sb_");
	p_dormqr = (dormqr_t)dlsym(h, "dormqr_");
	p_dgbsv = (dgbsv_t)dlsym(h, "dgbsv_");
	p_dpbtrf = (dpbtrf_t)dlsym(h, "dpbtrf_");
	p_dpbtrs = (dpbtrs_t)dlsym(h, "dpbtrs_");
	int band = cl_band_load(h);
	return band && p_dsytrd && p_dormtr && p_dsyevd && p_dpotrf && p_dpotri && p_dsy2sb && p_dormqr && p_dgbsv && p_dpbtrf && p_dpbtrs;
}

// Each wrapper returns LAPACK's info (0 = success), or -1000 when the
// workspace could not be allocated.

int cl_dsytrd_l(int n, double* a, int lda, double* d, double* e, double* tau) {
	int info = 0, lwork = -1;
	double q;
	p_dsytrd("L", &n, a, &lda, d, e, tau, &q, &lwork, &info, 1);
	if (info != 0) return info;
	lwork = q > 1 ? (int)q : 1;
	double* work = malloc(sizeof(double) * (size_t)lwork);
	if (!work) return -1000;
	p_dsytrd("L", &n, a, &lda, d, e, tau, work, &lwork, &info, 1);
	free(work);
	return info;
}

int cl_dormtr_rl(char trans, int m, int n, const double* a, int lda, const double* tau, double* c, int ldc) {
	int info = 0, lwork = -1;
	double q;
	char t[2] = {trans, 0};
	p_dormtr("R", "L", t, &m, &n, a, &lda, tau, c, &ldc, &q, &lwork, &info, 1, 1, 1);
	if (info != 0) return info;
	lwork = q > 1 ? (int)q : 1;
	double* work = malloc(sizeof(double) * (size_t)lwork);
	if (!work) return -1000;
	p_dormtr("R", "L", t, &m, &n, a, &lda, tau, c, &ldc, work, &lwork, &info, 1, 1, 1);
	free(work);
	return info;
}

int cl_dsyevd_nl(int n, double* a, int lda, double* w) {
	int info = 0, lwork = -1, liwork = -1, iq;
	double q;
	p_dsyevd("N", "L", &n, a, &lda, w, &q, &lwork, &iq, &liwork, &info, 1, 1);
	if (info != 0) return info;
	lwork = q > 1 ? (int)q : 1;
	liwork = iq > 1 ? iq : 1;
	double* work = malloc(sizeof(double) * (size_t)lwork);
	int* iwork = malloc(sizeof(int) * (size_t)liwork);
	if (!work || !iwork) {
		free(work);
		free(iwork);
		return -1000;
	}
	p_dsyevd("N", "L", &n, a, &lda, w, work, &lwork, iwork, &liwork, &info, 1, 1);
	free(work);
	free(iwork);
	return info;
}

int cl_dpotrf_l(int n, double* a, int lda) {
	int info = 0;
	p_dpotrf("L", &n, a, &lda, &info, 1);
	return info;
}

int cl_dpotri_l(int n, double* a, int lda) {
	int info = 0;
	p_dpotri("L", &n, a, &lda, &info, 1);
	return info;
}

int cl_dsy2sb_l(int n, int kd, double* a, int lda, double* ab, int ldab, double* tau) {
	int info = 0, lwork = -1;
	double q;
	p_dsy2sb("L", &n, &kd, a, &lda, ab, &ldab, tau, &q, &lwork, &info, 1);
	if (info != 0) return info;
	lwork = q > 1 ? (int)q : 1;
	double* work = malloc(sizeof(double) * (size_t)lwork);
	if (!work) return -1000;
	p_dsy2sb("L", &n, &kd, a, &lda, ab, &ldab, tau, work, &lwork, &info, 1);
	free(work);
	return info;
}

int cl_dormqr_r(char trans, int m, int n, int k, const double* a, int lda, const double* tau, double* c, int ldc) {
	int info = 0, lwork = -1;
	double q;
	char t[2] = {trans, 0};
	p_dormqr("R", t, &m, &n, &k, a, &lda, tau, c, &ldc, &q, &lwork, &info, 1, 1);
	if (info != 0) return info;
	lwork = q > 1 ? (int)q : 1;
	double* work = malloc(sizeof(double) * (size_t)lwork);
	if (!work) return -1000;
	p_dormqr("R", t, &m, &n, &k, a, &lda, tau, c, &ldc, work, &lwork, &info, 1, 1);
	free(work);
	return info;
}

int cl_dgbsv(int n, int kl, int ku, int nrhs, double* ab, int ldab, int* ipiv, double* b, int ldb) {
	int info = 0;
	p_dgbsv(&n, &kl, &ku, &nrhs, ab, &ldab, ipiv, b, &ldb, &info);
	return info;
}

// cl_dpbsv_l factorises the symmetric positive definite band matrix in ab
// (lower band storage, ldab ≥ kd+1; overwritten by its Cholesky factor) and,
// when that succeeds, solves for the nrhs columns of b. Returns dpbtrf's info
// (> 0: not positive definite, b untouched) or dpbtrs's.
int cl_dpbsv_l(int n, int kd, int nrhs, double* ab, int ldab, double* b, int ldb) {
	int info = 0;
	p_dpbtrf("L", &n, &kd, ab, &ldab, &info, 1);
	if (info != 0) return info;
	p_dpbtrs("L", &n, &kd, &nrhs, ab, &ldab, b, &ldb, &info, 1);
	return info;
}
