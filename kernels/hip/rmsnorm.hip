/*
 * rmsnorm.hip: gp_rmsnorm, y[r, :] = x[r, :] * w / sqrt(mean(x[r, :]^2) + eps),
 * and gp_rmsnorm_offset ("mlp", post_norm), the same with the weight
 * w_offset + w (f32). Fault post_norm_no_offset (rows == 1): w_offset dropped.
 *
 * One block per row. Thread t squares and accumulates (fmaf, f32) the columns
 * t, t + 256, ... in increasing order; the block sum is a per-wave butterfly
 * followed by the wave sums in wave order (gp_block_sum). Rows are
 * independent, so a row's result never depends on rows.
 */
#include "gp_hip.h"

/* OFFSET: the weight is w_offset + w (gp_rmsnorm_offset); gp_rmsnorm's
 * instantiation has no add at all. */
template <int DT, bool OFFSET>
__global__
__launch_bounds__(GP_BLOCK) void rmsnorm_kernel(const typename gp_elem<DT>::type *__restrict__ x,
                                                const typename gp_elem<DT>::type *__restrict__ w,
                                                typename gp_elem<DT>::type *y, int rows, int dim,
                                                float eps, float w_offset) {
    __shared__ float scratch[GP_BLOCK / GP_WAVE];
    for (int r = blockIdx.x; r < rows; r += gridDim.x) {
        const size_t base = (size_t)r * dim;
        float ss = 0.0f;
        for (int c = threadIdx.x; c < dim; c += GP_BLOCK) {
            const float v = gp_to_f32<DT>(x[base + c]);
            ss = fmaf(v, v, ss);
        }
        ss = gp_block_sum(ss, scratch);
        const float inv = 1.0f / sqrtf(ss / (float)dim + eps);
        /* Each thread reads x[c] before writing y[c]: x and y may alias. */
        for (int c = threadIdx.x; c < dim; c += GP_BLOCK) {
            const float v = gp_to_f32<DT>(x[base + c]);
            float wc = gp_to_f32<DT>(w[c]);
            if (OFFSET) {
                wc = w_offset + wc;
            }
            y[base + c] = gp_from_f32<DT>(v * inv * wc);
        }
    }
}

template <int DT, bool OFFSET>
static void rmsnorm_launch(const void *x, const void *w, void *y, int rows, int dim, float eps,
                           float w_offset) {
    typedef typename gp_elem<DT>::type S;
    void (*kernel)(const S *, const S *, S *, int, int, float, float) = rmsnorm_kernel<DT, OFFSET>;
    hipLaunchKernelGGL(kernel, dim3(gp_grid(rows)), dim3(GP_BLOCK), 0, 0, (const S *)x,
                       (const S *)w, (S *)y, rows, dim, eps, w_offset);
}

template <bool OFFSET>
static int rmsnorm_run(const char *fn, const char *name, int dtype, const void *x, const void *w,
                       void *y, int rows, int dim, float eps, float w_offset) {
    switch (dtype) {
    case GP_DTYPE_F32:
        rmsnorm_launch<GP_DTYPE_F32, OFFSET>(x, w, y, rows, dim, eps, w_offset);
        break;
    case GP_DTYPE_F16:
        rmsnorm_launch<GP_DTYPE_F16, OFFSET>(x, w, y, rows, dim, eps, w_offset);
        break;
    default:
        rmsnorm_launch<GP_DTYPE_BF16, OFFSET>(x, w, y, rows, dim, eps, w_offset);
        break;
    }
    const int rc = gp_hip_check_launch(fn, name);
    if (rc != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1, name);
    return GP_OK;
}

extern "C" int gp_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim,
                          float eps) {
    const int rc = gp_check_rmsnorm(dtype, x, w, y, rows, dim, eps);
    if (rc != GP_OK) {
        return rc;
    }
    return rmsnorm_run<false>("gp_rmsnorm", "rmsnorm_block256", dtype, x, w, y, rows, dim, eps,
                              0.0f);
}

extern "C" int gp_rmsnorm_offset(int dtype, const void *x, const void *w, void *y, int rows,
                                 int dim, float eps, float w_offset) {
    const int rc = gp_check_rmsnorm_offset(dtype, x, w, y, rows, dim, eps, w_offset);
    if (rc != GP_OK) {
        return rc;
    }
    if (gp_fault_on(GP_FAULT_POST_NORM_NO_OFFSET, rows)) {
        w_offset = 0.0f;
    }
    return rmsnorm_run<true>("gp_rmsnorm_offset", "rmsnorm_offset_block256", dtype, x, w, y, rows,
                             dim, eps, w_offset);
}
