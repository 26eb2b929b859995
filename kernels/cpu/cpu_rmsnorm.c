/*
 * cpu_rmsnorm.c: gp_rmsnorm. Per row: ss = in-order fmaf sum of x^2 (f32),
 * r = 1 / sqrtf(ss / dim + eps), y = round((x * r) * w).
 */
#include <stdlib.h>

#include "cpu_internal.h"

int gp_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim, float eps) {
    static const char fn[] = "gp_rmsnorm";
    float *xf, *wf;
    int r, c;
    int rc = gp_check_rmsnorm(dtype, x, w, y, rows, dim, eps);
    if (rc != GP_OK) {
        return rc;
    }
    xf = gp_cpu_to_f32(fn, dtype, x, (size_t)rows * (size_t)dim);
    wf = gp_cpu_to_f32(fn, dtype, w, (size_t)dim);
    if (xf == NULL || wf == NULL) {
        free(xf);
        free(wf);
        return GP_ERR_OUT_OF_MEMORY;
    }
    for (r = 0; r < rows; r++) {
        const float *xr = xf + (size_t)r * (size_t)dim;
        float ss = 0.0f, inv;
        for (c = 0; c < dim; c++) {
            ss = fmaf(xr[c], xr[c], ss);
        }
        inv = 1.0f / sqrtf(ss / (float)dim + eps);
        for (c = 0; c < dim; c++) {
            gp_store(dtype, y, (size_t)r * (size_t)dim + (size_t)c, (xr[c] * inv) * wf[c], 0);
        }
    }
    free(xf);
    free(wf);
    gp_attest(0, 0, 0, 0, 1, "cpu_rmsnorm");
    return gp_ok();
}
