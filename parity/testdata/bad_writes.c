/* Kernels that misbehave on the decode shape only, wrapped around the CPU
 * backend's real entry points (renamed *_real at build time):
 *   -DOOB_WRITE   gp_rmsnorm writes one element past the end of y
 *   -DSKIP_WRITE  gp_linear leaves the last output element unwritten
 * TestGuardsAndPoison needs the harness to report each, naming the stage. */
#include <stdint.h>
#include <string.h>

int gp_rmsnorm_real(int dtype, const void *x, const void *w, void *y, int rows, int dim, float eps);
int gp_linear_real(int dtype, int route, const void *x, const void *w, const void *bias, void *y,
                   int M, int N, int K);

static int esize(int dtype) { return dtype == 0 ? 4 : 2; }

int gp_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim, float eps) {
    int rc = gp_rmsnorm_real(dtype, x, w, y, rows, dim, eps);
#ifdef OOB_WRITE
    if (rc == 0 && rows == 1) {
        memset((uint8_t *)y + (size_t)dim * esize(dtype), 0, (size_t)esize(dtype));
    }
#endif
    return rc;
}

int gp_linear(int dtype, int route, const void *x, const void *w, const void *bias, void *y, int M,
              int N, int K) {
#ifdef SKIP_WRITE
    if (M == 1) {
        /* Compute into a scratch copy, then store all but the last element. */
        uint8_t tmp[1 << 16];
        int n = esize(dtype) * N;
        int rc;
        if (n > (int)sizeof tmp) {
            return gp_linear_real(dtype, route, x, w, bias, y, M, N, K);
        }
        rc = gp_linear_real(dtype, route, x, w, bias, tmp, M, N, K);
        memcpy(y, tmp, (size_t)(n - esize(dtype)));
        return rc;
    }
#endif
    return gp_linear_real(dtype, route, x, w, bias, y, M, N, K);
}
