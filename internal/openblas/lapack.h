// Native LAPACK from the OpenBLAS that runtime.go opens (dlopen). Routines
// take column-major arrays; lapack_runtime.go passes cl's row-major upper
// triangles as column-major lower ones.
int cl_lapack_load(void* handle);
int cl_dsytrd_l(int n, double* a, int lda, double* d, double* e, double* tau);
int cl_dormtr_rl(char trans, int m, int n, const double* a, int lda, const double* tau, double* c, int ldc);
int cl_dsyevd_nl(int n, double* a, int lda, double* w);
int cl_dpotrf_l(int n, double* a, int lda);
int cl_dpotri_l(int n, double* a, int lda);
int cl_dsy2sb_l(int n, int kd, double* a, int lda, double* ab, int ldab, double* tau);
int cl_dormqr_r(char trans, int m, int n, int k, const double* a, int lda, const double* tau, double* c, int ldc);
int cl_dgbsv(int n, int kl, int ku, int nrhs, double* ab, int ldab, int* ipiv, double* b, int ldb);
int cl_dpbsv_l(int n, int kd, int nrhs, double* ab, int ldab, double* b, int ldb);
int cl_band_load(void* handle);
int cl_sy2sb_l(int n, int kd, double* a, int lda, double* ab, int ldab, double* tau, double* t);
int cl_sbmulq_r(int trans, int n, int kd, const double* a, int lda, const double* t, double* x, int ldx, int m);
