/*
 * rmsnorm.hip: gp_rmsnorm, y[r, :] = x[r, :] * w / sqrt(mean(x[r, :]^2) + eps).
 *
 * One block per row. Thread t squares and accumulates (fmaf, f32) the columns
 * t, t + 256, ... in increasing order; the block sum is a per-wave butterfly
 * followed by the wave sums in wave order (gp_block_sum). Rows are
 * independent, so a row's result never depends on rows.
 */
#include "gp_hip.h"

template <int DT>
__global__
__launch_bounds__(GP_BLOCK) void rmsnorm_kernel(const typename gp_elem<DT>::type *__restrict__ x,
                                                const typename gp_elem<DT>::type *__restrict__ w,
                                                typename gp_elem<DT>::type *y, int rows, int dim,
                                                float eps) {
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
            y[base + c] = gp_from_f32<DT>(v * inv * gp_to_f32<DT>(w[c]));
        }
    }
}

template <int DT>
static void rmsnorm_launch(const void *x, const void *w, void *y, int rows, int dim, float eps) {
    typedef typename gp_elem<DT>::type S;
    void (*kernel)(const S *, const S *, S *, int, int, float) = rmsnorm_kernel<DT>;
    hipLaunchKernelGGL(kernel, dim3(gp_grid(rows)), dim3(GP_BLOCK), 0, 0, (const S *)x,
                       (const S *)w, (S *)y, rows, dim, eps);
}

extern "C" int gp_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim,
                          float eps) {
    int rc = gp_check_rmsnorm(dtype, x, w, y, rows, dim, eps);
    if (rc != GP_OK) {
        return rc;
    }
    switch (dtype) {
    case GP_DTYPE_F32:
        rmsnorm_launch<GP_DTYPE_F32>(x, w, y, rows, dim, eps);
        break;
    case GP_DTYPE_F16:
        rmsnorm_launch<GP_DTYPE_F16>(x, w, y, rows, dim, eps);
        break;
    default:
        rmsnorm_launch<GP_DTYPE_BF16>(x, w, y, rows, dim, eps);
        break;
    }
    if ((rc = gp_hip_check_launch("gp_rmsnorm", "rmsnorm_block256")) != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1, "rmsnorm_block256");
    return GP_OK;
}
