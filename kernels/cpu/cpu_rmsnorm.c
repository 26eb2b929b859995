/*
 * cpu_rmsnorm.c: gp_rmsnorm and gp_rmsnorm_offset ("mlp"). Per row: ss =
 * in-order fmaf sum of x^2 (f32), r = 1 / sqrtf(ss / dim + eps), y =
 * round((x * r) * w), with w replaced by w_offset + w (f32) for
 * gp_rmsnorm_offset. Fault (rows == 1): post_norm_no_offset drops w_offset.
 */
#include <stdlib.h>

#include "cpu_internal.h"

/* The one loop of both entry points; offset: add w_offset to w first. */
static int rmsnorm_rows(const char *fn, const char *kernel, int dtype, const void *x, const void *w,
                        void *y, int rows, int dim, float eps, int offset, float w_offset) {
    float *xf, *wf;
    int r, c;
    xf = gp_cpu_to_f32(fn, dtype, x, (size_t)rows * (size_t)dim);
    wf = gp_cpu_to_f32(fn, dtype, w, (size_t)dim);
    if (xf == NULL || wf == NULL) {
        free(xf);
        free(wf);
        return GP_ERR_OUT_OF_MEMORY;
    }
    if (offset) {
        for (c = 0; c < dim; c++) {
            wf[c] = w_offset + wf[c];
        }
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
    gp_attest(0, 0, 0, 0, 1, kernel);
    return gp_ok();
}

int gp_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim, float eps) {
    int rc = gp_check_rmsnorm(dtype, x, w, y, rows, dim, eps);
    if (rc != GP_OK) {
        return rc;
    }
    return rmsnorm_rows("gp_rmsnorm", "cpu_rmsnorm", dtype, x, w, y, rows, dim, eps, 0, 0.0f);
}

int gp_rmsnorm_offset(int dtype, const void *x, const void *w, void *y, int rows, int dim,
                      float eps, float w_offset) {
    int rc = gp_check_rmsnorm_offset(dtype, x, w, y, rows, dim, eps, w_offset);
    if (rc != GP_OK) {
        return rc;
    }
    if (gp_fault_on(GP_FAULT_POST_NORM_NO_OFFSET, rows)) {
        w_offset = 0.0f;
    }
    return rmsnorm_rows("gp_rmsnorm_offset", "cpu_rmsnorm_offset", dtype, x, w, y, rows, dim, eps,
                        1, w_offset);
}
