/*
 * rope.hip: gp_rope (q_rope, k_rope). Token r, head h, pair i < head_dim / 2
 * rotates by angle pos[r] * theta^(-2i / head_dim), computed in f32 with the
 * precise powf / sinf / cosf (the sources are never built with fast math):
 *   neox         pairs (i, i + head_dim / 2)
 *   interleaved  pairs (2i, 2i + 1)
 * One thread per pair reads both elements before writing both, so x and y may
 * alias. Faults (rows == 1): rope_wrong_layout swaps the layout,
 * rope_pos_prev uses max(pos - 1, 0), rope_pos_zero uses 0.
 */
#include "gp_hip.h"

enum { ROPE_POS_ASIS = 0, ROPE_POS_PREV = 1, ROPE_POS_ZERO = 2 };

template <int DT>
__global__ __launch_bounds__(GP_BLOCK) void rope_kernel(const typename gp_elem<DT>::type *x,
                                                        typename gp_elem<DT>::type *y,
                                                        const int32_t *__restrict__ pos, int rows,
                                                        int n_heads, int head_dim, float theta,
                                                        int layout, int pos_mode) {
    const int half = head_dim / 2;
    const size_t width = (size_t)n_heads * head_dim;
    const size_t total = (size_t)rows * n_heads * half;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        const int i = (int)(idx % half);
        const size_t rh = idx / half;
        const int h = (int)(rh % n_heads);
        const int r = (int)(rh / n_heads);
        int p = pos[r];
        if (pos_mode == ROPE_POS_PREV) {
            p = p > 0 ? p - 1 : 0;
        } else if (pos_mode == ROPE_POS_ZERO) {
            p = 0;
        }
        const float inv_freq = powf(theta, -(float)(2 * i) / (float)head_dim);
        const float angle = (float)p * inv_freq;
        const float cs = cosf(angle);
        const float sn = sinf(angle);
        const int i0 = layout == GP_ROPE_NEOX ? i : 2 * i;
        const int i1 = layout == GP_ROPE_NEOX ? i + half : 2 * i + 1;
        const size_t base = (size_t)r * width + (size_t)h * head_dim;
        const float x0 = gp_to_f32<DT>(x[base + i0]);
        const float x1 = gp_to_f32<DT>(x[base + i1]);
        y[base + i0] = gp_from_f32<DT>(x0 * cs - x1 * sn);
        y[base + i1] = gp_from_f32<DT>(x0 * sn + x1 * cs);
    }
}

template <int DT>
static void rope_launch(const void *x, void *y, const int32_t *pos, int rows, int n_heads,
                        int head_dim, float theta, int layout, int pos_mode) {
    typedef typename gp_elem<DT>::type S;
    const long long pairs = (long long)rows * n_heads * (head_dim / 2);
    void (*kernel)(const S *, S *, const int32_t *, int, int, int, float, int, int) =
        rope_kernel<DT>;
    hipLaunchKernelGGL(kernel, dim3(gp_grid((pairs + GP_BLOCK - 1) / GP_BLOCK)), dim3(GP_BLOCK), 0,
                       0, (const S *)x, (S *)y, pos, rows, n_heads, head_dim, theta, layout,
                       pos_mode);
}

extern "C" int gp_rope(int dtype, int layout, const void *x, void *y, const int32_t *pos, int rows,
                       int n_heads, int head_dim, float theta) {
    int rc = gp_check_rope(dtype, layout, x, y, pos, rows, n_heads, head_dim, theta);
    if (rc != GP_OK) {
        return rc;
    }
    if (gp_fault_on(GP_FAULT_ROPE_WRONG_LAYOUT, rows)) {
        layout = layout == GP_ROPE_NEOX ? GP_ROPE_INTERLEAVED : GP_ROPE_NEOX;
    }
    int pos_mode = ROPE_POS_ASIS;
    if (gp_fault_on(GP_FAULT_ROPE_POS_PREV, rows)) {
        pos_mode = ROPE_POS_PREV;
    } else if (gp_fault_on(GP_FAULT_ROPE_POS_ZERO, rows)) {
        pos_mode = ROPE_POS_ZERO;
    }
    switch (dtype) {
    case GP_DTYPE_F32:
        rope_launch<GP_DTYPE_F32>(x, y, pos, rows, n_heads, head_dim, theta, layout, pos_mode);
        break;
    case GP_DTYPE_F16:
        rope_launch<GP_DTYPE_F16>(x, y, pos, rows, n_heads, head_dim, theta, layout, pos_mode);
        break;
    default:
        rope_launch<GP_DTYPE_BF16>(x, y, pos, rows, n_heads, head_dim, theta, layout, pos_mode);
        break;
    }
    if ((rc = gp_hip_check_launch("gp_rope", "rope_pairwise")) != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1, "rope_pairwise");
    return GP_OK;
}
