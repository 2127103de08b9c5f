// Native LAPACK from the OpenBLAS that runtime.go opens (dlopen). Routines
// take column-major arrays; lapack_runtime.go passes cl's row-major upper
// triangles as column-major lower ones.
int cl_lapack_load(void* handle);
int cl_dsytrd_l(int n, double* a, int lda, double* d, double* e, double* tau);
int cl_dormtr_rl(char trans, int m, int n, const double* a, int lda, const double* tau, double* c, int ldc);
int cl_dsyevd_nl(int n, double* a, int lda, double* w);
int cl_dpotrf_l(int n, double* a, int lda);
int cl_dpotri_l(int n, double* a, int lda);
