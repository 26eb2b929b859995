/*
 * softmax.hip: gp_softmax. probs[h, i, :] = softmax(scores[h, i, :]) in f32,
 * the row maximum subtracted first (-INFINITY maps to 0).
 *
 * One block per row. Thread t owns the keys t, t + 256, ...: the row maximum
 * (exact whatever the order), then the sum of e = exp(s - max) over its keys
 * in increasing order, reduced by gp_block_sum in a fixed tree, then
 * probs = e / sum. s - max is an f32 subtraction; its exponential is taken
 * in double and rounded once to f32 (softmax_exp): but for double rounding
 * the correctly rounded f32 value on every vendor, subnormals included,
 * where the vendors' own f32 expf differ by an ulp or more. Masked keys
 * contribute exact zeros wherever they sit, so a decode row with
 * n_kv = q_pos0 + 1 equals the same row of a longer causal prefill bit for
 * bit. Fault softmax_no_max (n_q == 1): no max subtraction.
 */
#include "gp_hip.h"

__device__ __forceinline__ float softmax_exp(float d) { return (float)exp((double)d); }

__global__ __launch_bounds__(GP_BLOCK) void softmax_kernel(const float *__restrict__ scores,
                                                           float *__restrict__ probs,
                                                           long long n_rows, int n_kv, int no_max) {
    __shared__ float scratch[GP_BLOCK / GP_WAVE];
    for (long long row = blockIdx.x; row < n_rows; row += gridDim.x) {
        const float *s = scores + (size_t)row * n_kv;
        float *p = probs + (size_t)row * n_kv;
        float mx = -__int_as_float(0x7f800000);
        for (int j = threadIdx.x; j < n_kv; j += GP_BLOCK) {
            mx = fmaxf(mx, s[j]);
        }
        mx = gp_block_max(mx, scratch);
        if (no_max) {
            mx = 0.0f;
        }
        float sum = 0.0f;
        for (int j = threadIdx.x; j < n_kv; j += GP_BLOCK) {
            sum += softmax_exp(s[j] - mx);
        }
        sum = gp_block_sum(sum, scratch);
        for (int j = threadIdx.x; j < n_kv; j += GP_BLOCK) {
            p[j] = softmax_exp(s[j] - mx) / sum;
        }
    }
}

extern "C" int gp_softmax(const float *scores, float *probs, int n_heads, int n_q, int n_kv) {
    int rc = gp_check_softmax(scores, probs, n_heads, n_q, n_kv);
    if (rc != GP_OK) {
        return rc;
    }
    const long long n_rows = (long long)n_heads * n_q;
    const int no_max = gp_fault_on(GP_FAULT_SOFTMAX_NO_MAX, n_q);
    hipLaunchKernelGGL(softmax_kernel, dim3(gp_grid(n_rows)), dim3(GP_BLOCK), 0, 0, scores, probs,
                       n_rows, n_kv, no_max);
    if ((rc = gp_hip_check_launch("gp_softmax", "softmax_rowblock")) != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1, "softmax_rowblock");
    return GP_OK;
}
