//go:build cgo && !openblas

package openblas

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include "lapack.h"

typedef void (*dgemm_t)(int, int, int, int, int, int, double, const double*, int, const double*, int, double, double*, int);
typedef void (*dsyrk_t)(int, int, int, int, int, double, const double*, int, double, double*, int);
typedef void (*dsyr2k_t)(int, int, int, int, int, double, const double*, int, const double*, int, double, double*, int);
typedef void (*dtrsm_t)(int, int, int, int, int, int, int, double, const double*, int, double*, int);
typedef void (*dsymv_t)(int, int, int, double, const double*, int, const double*, int, double, double*, int);
typedef void (*dgemv_t)(int, int, int, int, double, const double*, int, const double*, int, double, double*, int);
typedef void (*dsyr2_t)(int, int, int, double, const double*, int, const double*, int, double*, int);
typedef void (*dger_t)(int, int, int, double, const double*, int, const double*, int, double*, int);
typedef char* (*config_t)(void);
typedef int (*threads_t)(void);

static dgemm_t p_dgemm;
static dsyrk_t p_dsyrk;
static dsyr2k_t p_dsyr2k;
static dtrsm_t p_dtrsm, p_dtrmm;
static dsymv_t p_dsymv;
static dgemv_t p_dgemv;
static dsyr2_t p_dsyr2;
static dger_t p_dger;
static config_t p_config;
static threads_t p_threads;
static int has_lapack;

// cl_load opens lib and resolves every routine; it returns 0 on success,
// 1 when the library cannot be opened, 2 when a routine is missing.
static int cl_load(const char* lib) {
	void* h = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!h) return 1;
	p_dgemm = (dgemm_t)dlsym(h, "cblas_dgemm");
	p_dsyrk = (dsyrk_t)dlsym(h, "cblas_dsyrk");
	p_dsyr2k = (dsyr2k_t)dlsym(h, "cblas_dsyr2k");
	p_dtrsm = (dtrsm_t)dlsym(h, "cblas_dtrsm");
	p_dtrmm = (dtrsm_t)dlsym(h, "cblas_dtrmm");
	p_dsymv = (dsymv_t)dlsym(h, "cblas_dsymv");
	p_dgemv = (dgemv_t)dlsym(h, "cblas_dgemv");
	p_dsyr2 = (dsyr2_t)dlsym(h, "cblas_dsyr2");
	p_dger = (dger_t)dlsym(h, "cblas_dger");
	p_config = (config_t)dlsym(h, "openblas_get_config");
	p_threads = (threads_t)dlsym(h, "openblas_get_num_threads");
	has_lapack = cl_lapack_load(h);
	if (!p_dgemm || !p_dsyrk || !p_dsyr2k || !p_dtrsm || !p_dtrmm || !p_dsymv || !p_dgemv || !p_dsyr2 || !p_dger) return 2;
	return 0;
}
static const char* cl_dlerror(void) { const char* e = dlerror(); return e ? e : ""; }
static const char* cl_config(void) { return p_config ? p_config() : ""; }
static int cl_threads(void) { return p_threads ? p_threads() : 0; }
static int cl_has_lapack(void) { return has_lapack; }

static void cl_dgemm(int ta, int tb, int m, int n, int k, double alpha, const double* a, int lda, const double* b, int ldb, double beta, double* c, int ldc) {
	p_dgemm(101, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
static void cl_dsyrk(int ul, int t, int n, int k, double alpha, const double* a, int lda, double beta, double* c, int ldc) {
	p_dsyrk(101, ul, t, n, k, alpha, a, lda, beta, c, ldc);
}
static void cl_dsyr2k(int ul, int t, int n, int k, double alpha, const double* a, int lda, const double* b, int ldb, double beta, double* c, int ldc) {
	p_dsyr2k(101, ul, t, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}
static void cl_dtrsm(int s, int ul, int t, int d, int m, int n, double alpha, const double* a, int lda, double* b, int ldb) {
	p_dtrsm(101, s, ul, t, d, m, n, alpha, a, lda, b, ldb);
}
static void cl_dtrmm(int s, int ul, int t, int d, int m, int n, double alpha, const double* a, int lda, double* b, int ldb) {
	p_dtrmm(101, s, ul, t, d, m, n, alpha, a, lda, b, ldb);
}
static void cl_dsymv(int ul, int n, double alpha, const double* a, int lda, const double* x, int incx, double beta, double* y, int incy) {
	p_dsymv(101, ul, n, alpha, a, lda, x, incx, beta, y, incy);
}
static void cl_dgemv(int t, int m, int n, double alpha, const double* a, int lda, const double* x, int incx, double beta, double* y, int incy) {
	p_dgemv(101, t, m, n, alpha, a, lda, x, incx, beta, y, incy);
}
static void cl_dsyr2(int ul, int n, double alpha, const double* x, int incx, const double* y, int incy, double* a, int lda) {
	p_dsyr2(101, ul, n, alpha, x, incx, y, incy, a, lda);
}
static void cl_dger(int m, int n, double alpha, const double* x, int incx, const double* y, int incy, double* a, int lda) {
	p_dger(101, m, n, alpha, x, incx, y, incy, a, lda);
}
*/
import "C"

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	"gonum.org/v1/gonum/blas"

	"github.com/cl-dev/cl/internal/linalg"
)

// DefaultLibrary is the OpenBLAS library Load opens when given "": Debian's
// libopenblas0 (apt-get install libopenblas0), also what numpy uses there.
const DefaultLibrary = "libopenblas.so.0"

var (
	loadOnce sync.Once
	loaded   string
	loadErr  error
)

// Load opens OpenBLAS at run time (dlopen; lib "" = DefaultLibrary) and
// selects it as the process's BLAS (linalg.Select, backend
// "openblas (LIB, run time)"), so a binary built without the openblas tag
// uses OpenBLAS where the machine has it and FastBLAS where it does not. An
// error (library absent, a routine missing) selects nothing; the caller
// falls back. The heavy routines (Dgemm, Dsyrk, Dsyr2k, Dtrsm, Dtrmm, Dsymv,
// Dgemv, Dsyr2, Dger) run in OpenBLAS; every other one is FastBLAS's.
// When the library also exports the LAPACK routines Lapack calls (dsytrd_,
// dormtr_, dsyevd_, dpotrf_, dpotri_, dgeqrt3_, dpbtrf_, ...; Debian's
// libopenblas0 does), Lapack is selected as the heads'
// native LAPACK (linalg.SelectNative) unless CL_LAPACK=gonum; otherwise the
// heads run gonum's pure-Go LAPACK over OpenBLAS's BLAS.
// Only the first call opens a library.
func Load(lib string) error {
	if lib == "" {
		lib = DefaultLibrary
	}
	loadOnce.Do(func() {
		cs := C.CString(lib)
		defer C.free(unsafe.Pointer(cs))
		switch C.cl_load(cs) {
		case 1:
			loadErr = fmt.Errorf("openblas: cannot open %s: %s", lib, C.GoString(C.cl_dlerror()))
		case 2:
			loadErr = fmt.Errorf("openblas: %s lacks a CBLAS routine cl needs (is it OpenBLAS?)", lib)
		default:
			loaded = lib
		}
	})
	if loadErr != nil {
		return loadErr
	}
	if loaded != lib {
		return fmt.Errorf("openblas: %s is already loaded; cannot load %s too", loaded, lib)
	}
	linalg.Select(fmt.Sprintf("%s (%s, run time)", linalg.OpenBLAS, lib), Runtime{})
	if C.cl_has_lapack() != 0 && os.Getenv("CL_LAPACK") != "gonum" {
		linalg.SelectNative(fmt.Sprintf("%s LAPACK (%s, run time)", linalg.OpenBLAS, lib), Lapack{})
	} else {
		linalg.SelectNative("", nil)
	}
	return nil
}

// Config describes the loaded library: OpenBLAS's own configuration string,
// thread count and the LAPACK the heads run (linalg.LAPACKBackend: OpenBLAS's
// own when the library has it, else gonum's pure-Go LAPACK over OpenBLAS's
// BLAS) ("" before Load).
func Config() string {
	if loaded == "" {
		return ""
	}
	return fmt.Sprintf("%s, %d threads; LAPACK: %s", strings.TrimSpace(C.GoString(C.cl_config())), int(C.cl_threads()), linalg.LAPACKBackend())
}

// Runtime is FastBLAS with the heavy routines run by the OpenBLAS that Load
// opened. Calls whose arguments would make OpenBLAS read or write outside
// the Go slices (or that it would reject) go to FastBLAS instead, which
// panics with gonum's message. Use it only after Load succeeded.
type Runtime struct{ linalg.FastBLAS }

func trans(t blas.Transpose) (C.int, bool) {
	switch t {
	case blas.NoTrans:
		return 111, true
	case blas.Trans, blas.ConjTrans:
		return 112, true
	}
	return 0, false
}

func uplo(u blas.Uplo) (C.int, bool) {
	switch u {
	case blas.Upper:
		return 121, true
	case blas.Lower:
		return 122, true
	}
	return 0, false
}

func diag(d blas.Diag) (C.int, bool) {
	switch d {
	case blas.NonUnit:
		return 131, true
	case blas.Unit:
		return 132, true
	}
	return 0, false
}

func side(s blas.Side) (C.int, bool) {
	switch s {
	case blas.Left:
		return 141, true
	case blas.Right:
		return 142, true
	}
	return 0, false
}

// mat reports whether a holds a rows×cols row-major matrix with stride ld
// (rows, cols > 0).
func mat(a []float64, rows, cols, ld int) bool {
	return rows > 0 && cols > 0 && ld >= cols && len(a) >= ld*(rows-1)+cols
}

// vec reports whether x holds n > 0 elements with increment inc.
func vec(x []float64, n, inc int) bool {
	if inc < 0 {
		inc = -inc
	}
	return n > 0 && inc > 0 && len(x) >= 1+(n-1)*inc
}

func ptr(a []float64) *C.double { return (*C.double)(unsafe.Pointer(&a[0])) }

func dims(t blas.Transpose, r, c int) (int, int) {
	if t == blas.NoTrans {
		return r, c
	}
	return c, r
}

// Dgemm implements blas.Float64.
func (f Runtime) Dgemm(tA, tB blas.Transpose, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	ta, ok1 := trans(tA)
	tb, ok2 := trans(tB)
	ar, ac := dims(tA, m, k)
	br, bc := dims(tB, k, n)
	if !ok1 || !ok2 || !mat(a, ar, ac, lda) || !mat(b, br, bc, ldb) || !mat(c, m, n, ldc) {
		f.FastBLAS.Dgemm(tA, tB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	C.cl_dgemm(ta, tb, C.int(m), C.int(n), C.int(k), C.double(alpha), ptr(a), C.int(lda), ptr(b), C.int(ldb), C.double(beta), ptr(c), C.int(ldc))
}

// Dsyrk implements blas.Float64.
func (f Runtime) Dsyrk(ul blas.Uplo, tA blas.Transpose, n, k int, alpha float64, a []float64, lda int, beta float64, c []float64, ldc int) {
	u, ok1 := uplo(ul)
	t, ok2 := trans(tA)
	ar, ac := dims(tA, n, k)
	if !ok1 || !ok2 || !mat(a, ar, ac, lda) || !mat(c, n, n, ldc) {
		f.FastBLAS.Dsyrk(ul, tA, n, k, alpha, a, lda, beta, c, ldc)
		return
	}
	C.cl_dsyrk(u, t, C.int(n), C.int(k), C.double(alpha), ptr(a), C.int(lda), C.double(beta), ptr(c), C.int(ldc))
}

// Dsyr2k implements blas.Float64.
func (f Runtime) Dsyr2k(ul blas.Uplo, tA blas.Transpose, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	u, ok1 := uplo(ul)
	t, ok2 := trans(tA)
	ar, ac := dims(tA, n, k)
	if !ok1 || !ok2 || !mat(a, ar, ac, lda) || !mat(b, ar, ac, ldb) || !mat(c, n, n, ldc) {
		f.FastBLAS.Dsyr2k(ul, tA, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	C.cl_dsyr2k(u, t, C.int(n), C.int(k), C.double(alpha), ptr(a), C.int(lda), ptr(b), C.int(ldb), C.double(beta), ptr(c), C.int(ldc))
}

func (f Runtime) trsm(mult bool, s blas.Side, ul blas.Uplo, tA blas.Transpose, d blas.Diag, m, n int, alpha float64, a []float64, lda int, b []float64, ldb int) bool {
	sd, ok1 := side(s)
	u, ok2 := uplo(ul)
	t, ok3 := trans(tA)
	dg, ok4 := diag(d)
	na := m
	if s == blas.Right {
		na = n
	}
	if !ok1 || !ok2 || !ok3 || !ok4 || !mat(a, na, na, lda) || !mat(b, m, n, ldb) {
		return false
	}
	if mult {
		C.cl_dtrmm(sd, u, t, dg, C.int(m), C.int(n), C.double(alpha), ptr(a), C.int(lda), ptr(b), C.int(ldb))
	} else {
		C.cl_dtrsm(sd, u, t, dg, C.int(m), C.int(n), C.double(alpha), ptr(a), C.int(lda), ptr(b), C.int(ldb))
	}
	return true
}

// Dtrsm implements blas.Float64.
func (f Runtime) Dtrsm(s blas.Side, ul blas.Uplo, tA blas.Transpose, d blas.Diag, m, n int, alpha float64, a []float64, lda int, b []float64, ldb int) {
	if !f.trsm(false, s, ul, tA, d, m, n, alpha, a, lda, b, ldb) {
		f.FastBLAS.Dtrsm(s, ul, tA, d, m, n, alpha, a, lda, b, ldb)
	}
}

// Dtrmm implements blas.Float64.
func (f Runtime) Dtrmm(s blas.Side, ul blas.Uplo, tA blas.Transpose, d blas.Diag, m, n int, alpha float64, a []float64, lda int, b []float64, ldb int) {
	if !f.trsm(true, s, ul, tA, d, m, n, alpha, a, lda, b, ldb) {
		f.FastBLAS.Dtrmm(s, ul, tA, d, m, n, alpha, a, lda, b, ldb)
	}
}

// Dsymv implements blas.Float64.
func (f Runtime) Dsymv(ul blas.Uplo, n int, alpha float64, a []float64, lda int, x []float64, incx int, beta float64, y []float64, incy int) {
	u, ok := uplo(ul)
	if !ok || !mat(a, n, n, lda) || !vec(x, n, incx) || !vec(y, n, incy) {
		f.FastBLAS.Dsymv(ul, n, alpha, a, lda, x, incx, beta, y, incy)
		return
	}
	C.cl_dsymv(u, C.int(n), C.double(alpha), ptr(a), C.int(lda), ptr(x), C.int(incx), C.double(beta), ptr(y), C.int(incy))
}

// Dgemv implements blas.Float64.
func (f Runtime) Dgemv(tA blas.Transpose, m, n int, alpha float64, a []float64, lda int, x []float64, incx int, beta float64, y []float64, incy int) {
	t, ok := trans(tA)
	lx, ly := n, m
	if tA != blas.NoTrans {
		lx, ly = m, n
	}
	if !ok || !mat(a, m, n, lda) || !vec(x, lx, incx) || !vec(y, ly, incy) {
		f.FastBLAS.Dgemv(tA, m, n, alpha, a, lda, x, incx, beta, y, incy)
		return
	}
	C.cl_dgemv(t, C.int(m), C.int(n), C.double(alpha), ptr(a), C.int(lda), ptr(x), C.int(incx), C.double(beta), ptr(y), C.int(incy))
}

// Dsyr2 implements blas.Float64.
func (f Runtime) Dsyr2(ul blas.Uplo, n int, alpha float64, x []float64, incx int, y []float64, incy int, a []float64, lda int) {
	u, ok := uplo(ul)
	if !ok || !mat(a, n, n, lda) || !vec(x, n, incx) || !vec(y, n, incy) {
		f.FastBLAS.Dsyr2(ul, n, alpha, x, incx, y, incy, a, lda)
		return
	}
	C.cl_dsyr2(u, C.int(n), C.double(alpha), ptr(x), C.int(incx), ptr(y), C.int(incy), ptr(a), C.int(lda))
}

// Dger implements blas.Float64.
func (f Runtime) Dger(m, n int, alpha float64, x []float64, incx int, y []float64, incy int, a []float64, lda int) {
	if !mat(a, m, n, lda) || !vec(x, m, incx) || !vec(y, n, incy) {
		f.FastBLAS.Dger(m, n, alpha, x, incx, y, incy, a, lda)
		return
	}
	C.cl_dger(C.int(m), C.int(n), C.double(alpha), ptr(x), C.int(incx), ptr(y), C.int(incy), ptr(a), C.int(lda))
}
