/*
 * softmax.hip: gp_softmax. probs[h, i, :] = softmax(scores[h, i, :]) in f32,
 * the row maximum subtracted first (-INFINITY maps to 0).
 *
 * A row is cut into segments of SM_SEG keys, counted from key 0 (so the
 * cut depends on the key index alone, never on n_q or n_kv's rounding);
 * thread t of a segment's block owns its keys seg * SM_SEG + 4t + 1024r +
 * k (r = 0, 1; k = 0 .. 3), loaded as float4 where the row is 16-byte
 * aligned. The arithmetic, the same for every shape:
 *   m   = max of the row (exact whatever the order);
 *   e_j = exp(s_j - m): s - m an f32 subtraction, its exponential taken in
 *         double and rounded once to f32 (softmax_exp): but for double
 *         rounding the correctly rounded f32 value on every vendor,
 *         subnormals included, where the vendors' own f32 expf differ by
 *         an ulp or more;
 *   sum = the segment sums added in segment order (sum = seg_0, then sum
 *         + seg_s), a segment's sum being gp_block_sum's fixed tree over
 *         the threads' sums, each over its keys in (r, k) order;
 *   p_j = e_j / sum.
 * A row of up to SM_ROW_SEGS segments (n_kv <= 8192) runs in one kernel, a
 * block per row with the keys in registers; a longer row in three, a block
 * per (row, segment) each, so that a decode call (n_heads rows) fills the GPU:
 * segment maxima to a workspace; e_j to probs and the segment sums to the
 * workspace; p_j = e_j / sum in place. Both routes compute the same
 * values: a segment past the last key sums to +0, and sum + 0 = sum.
 * Masked keys (-INFINITY) contribute exact zeros wherever they sit, so a
 * decode row with n_kv = q_pos0 + 1 equals the same row of a longer causal
 * prefill bit for bit. probs may alias scores (each element is read by the
 * thread that writes it, before it writes it). Fault softmax_no_max
 * (n_q == 1): no max subtraction.
 */
#include "gp_hip.h"

#define SM_R 2                       /* float4 loads per thread per segment */
#define SM_SEG (GP_BLOCK * 4 * SM_R) /* keys per segment: 2048 */
#define SM_WS_CAP ((size_t)64 << 20)
#define SM_ROW_SEGS 4 /* segments a one-block-per-row launch takes: 8192 keys */

__device__ __forceinline__ float softmax_exp(float d) { return (float)exp((double)d); }

/* The 4 * SM_R keys of this thread in segment seg of a row, -INFINITY past
 * n_kv: element 4r + k is key seg * SM_SEG + 4 * threadIdx.x + 4 * GP_BLOCK
 * * r + k. */
__device__ __forceinline__ void sm_load(const float *__restrict__ s, int seg, int n_kv, int vec,
                                        float *v) {
#pragma unroll
    for (int r = 0; r < SM_R; r++) {
        const int j0 = seg * SM_SEG + 4 * (int)threadIdx.x + 4 * GP_BLOCK * r;
        if (vec && j0 < n_kv) { /* n_kv % 4 == 0: the whole float4 is in the row */
            const float4 f = *reinterpret_cast<const float4 *>(s + j0);
            v[4 * r] = f.x;
            v[4 * r + 1] = f.y;
            v[4 * r + 2] = f.z;
            v[4 * r + 3] = f.w;
        } else {
#pragma unroll
            for (int k = 0; k < 4; k++) {
                v[4 * r + k] = j0 + k < n_kv ? s[j0 + k] : -GP_INF;
            }
        }
    }
}

/* Stores the keys of sm_load's layout that lie in the row. */
__device__ __forceinline__ void sm_store(float *__restrict__ p, int seg, int n_kv, int vec,
                                         const float *v) {
#pragma unroll
    for (int r = 0; r < SM_R; r++) {
        const int j0 = seg * SM_SEG + 4 * (int)threadIdx.x + 4 * GP_BLOCK * r;
        if (vec && j0 < n_kv) {
            *reinterpret_cast<float4 *>(p + j0) =
                make_float4(v[4 * r], v[4 * r + 1], v[4 * r + 2], v[4 * r + 3]);
        } else {
#pragma unroll
            for (int k = 0; k < 4; k++) {
                if (j0 + k < n_kv) {
                    p[j0 + k] = v[4 * r + k];
                }
            }
        }
    }
}

/* This thread's e_j = exp(s_j - m) in place and their sum in (r, k) order. */
__device__ __forceinline__ float sm_exp_sum(float *v, float m) {
    float sum = 0.0f;
#pragma unroll
    for (int e = 0; e < 4 * SM_R; e++) {
        v[e] = softmax_exp(v[e] - m);
        sum += v[e];
    }
    return sum;
}

__device__ __forceinline__ float sm_thread_max(const float *v) {
    float mx = -GP_INF;
#pragma unroll
    for (int e = 0; e < 4 * SM_R; e++) {
        mx = fmaxf(mx, v[e]);
    }
    return mx;
}

/* Rows of up to NSEG segments (n_kv <= NSEG * SM_SEG): a block per row, the
 * keys in registers, the same segment sums in the same order as the
 * three-kernel route (a segment past the last key sums to +0). */
template <int NSEG>
__global__ __launch_bounds__(GP_BLOCK) void softmax_row_kernel(const float *scores, float *probs,
                                                               long long n_rows, int n_kv, int vec,
                                                               int no_max) {
    __shared__ float scratch[GP_BLOCK / GP_WAVE];
    for (long long row = blockIdx.x; row < n_rows; row += gridDim.x) {
        const float *s = scores + (size_t)row * n_kv;
        float *p = probs + (size_t)row * n_kv;
        float v[NSEG][4 * SM_R];
        float mx = -GP_INF;
#pragma unroll
        for (int g = 0; g < NSEG; g++) {
            sm_load(s, g, n_kv, vec, v[g]);
            mx = fmaxf(mx, sm_thread_max(v[g]));
        }
        float m = gp_block_max(mx, scratch);
        if (no_max) {
            m = 0.0f;
        }
        float sum = 0.0f;
#pragma unroll
        for (int g = 0; g < NSEG; g++) {
            const float seg = gp_block_sum(sm_exp_sum(v[g], m), scratch);
            sum = g == 0 ? seg : sum + seg;
        }
#pragma unroll
        for (int g = 0; g < NSEG; g++) {
#pragma unroll
            for (int e = 0; e < 4 * SM_R; e++) {
                v[g][e] = v[g][e] / sum;
            }
            sm_store(p, g, n_kv, vec, v[g]);
        }
    }
}

/* Long rows, step 1: seg_max[row * n_seg + seg] for rows row0 .. row0 +
 * n_rows - 1 (row indices relative to the batch in the workspace). */
__global__ __launch_bounds__(GP_BLOCK) void softmax_seg_max_kernel(const float *scores,
                                                                   float *__restrict__ seg_max,
                                                                   long long row0, long long n_rows,
                                                                   int n_seg, int n_kv, int vec) {
    __shared__ float scratch[GP_BLOCK / GP_WAVE];
    const long long units = n_rows * n_seg;
    for (long long u = blockIdx.x; u < units; u += gridDim.x) {
        const long long rl = u / n_seg;
        const int seg = (int)(u % n_seg);
        float v[4 * SM_R];
        sm_load(scores + (size_t)(row0 + rl) * n_kv, seg, n_kv, vec, v);
        const float m = gp_block_max(sm_thread_max(v), scratch);
        if (threadIdx.x == 0) {
            seg_max[u] = m;
        }
    }
}

/* Long rows, step 2: the row maximum from the segment maxima, e_j to probs,
 * seg_sum[row * n_seg + seg]. */
__global__ __launch_bounds__(GP_BLOCK) void softmax_seg_exp_kernel(
    const float *scores, float *probs, const float *__restrict__ seg_max,
    float *__restrict__ seg_sum, long long row0, long long n_rows, int n_seg, int n_kv, int vec,
    int no_max) {
    __shared__ float scratch[GP_BLOCK / GP_WAVE];
    const long long units = n_rows * n_seg;
    for (long long u = blockIdx.x; u < units; u += gridDim.x) {
        const long long rl = u / n_seg;
        const int seg = (int)(u % n_seg);
        float m = -GP_INF;
        for (int t = 0; t < n_seg; t++) {
            m = fmaxf(m, seg_max[rl * n_seg + t]);
        }
        if (no_max) {
            m = 0.0f;
        }
        float v[4 * SM_R];
        sm_load(scores + (size_t)(row0 + rl) * n_kv, seg, n_kv, vec, v);
        const float sum = gp_block_sum(sm_exp_sum(v, m), scratch);
        sm_store(probs + (size_t)(row0 + rl) * n_kv, seg, n_kv, vec, v);
        if (threadIdx.x == 0) {
            seg_sum[u] = sum;
        }
    }
}

/* Long rows, step 3: p_j = e_j / sum, the segment sums added in order. */
__global__ __launch_bounds__(GP_BLOCK) void softmax_seg_div_kernel(
    float *probs, const float *__restrict__ seg_sum, long long row0, long long n_rows, int n_seg,
    int n_kv, int vec) {
    const long long units = n_rows * n_seg;
    for (long long u = blockIdx.x; u < units; u += gridDim.x) {
        const long long rl = u / n_seg;
        const int seg = (int)(u % n_seg);
        float sum = seg_sum[rl * n_seg];
        for (int t = 1; t < n_seg; t++) {
            sum = sum + seg_sum[rl * n_seg + t];
        }
        float *p = probs + (size_t)(row0 + rl) * n_kv;
        float v[4 * SM_R];
        sm_load(p, seg, n_kv, vec, v);
#pragma unroll
        for (int e = 0; e < 4 * SM_R; e++) {
            v[e] = v[e] / sum;
        }
        sm_store(p, seg, n_kv, vec, v);
    }
}

/* Segment maxima and sums of the long-row route (see the file comment). */
static gp_hip_workspace sm_ws;

extern "C" int gp_softmax(const float *scores, float *probs, int n_heads, int n_q, int n_kv) {
    int rc = gp_check_softmax(scores, probs, n_heads, n_q, n_kv);
    if (rc != GP_OK) {
        return rc;
    }
    const long long n_rows = (long long)n_heads * n_q;
    const int no_max = gp_fault_on(GP_FAULT_SOFTMAX_NO_MAX, n_q);
    const int vec =
        (n_kv % 4 == 0 && ((uintptr_t)scores & 15u) == 0 && ((uintptr_t)probs & 15u) == 0) ? 1 : 0;
    const int n_seg = (n_kv + SM_SEG - 1) / SM_SEG;
    if (n_seg <= SM_ROW_SEGS) {
        /* one launch: a block per row (measured on an H200 at n_q = 1, 32 rows:
         * faster than the three launches up to 8192 keys, docs/PERFORMANCE.md) */
        void (*kernel)(const float *, float *, long long, int, int, int) =
            n_seg == 1 ? softmax_row_kernel<1>
                       : (n_seg == 2 ? softmax_row_kernel<2> : softmax_row_kernel<SM_ROW_SEGS>);
        hipLaunchKernelGGL(kernel, dim3(gp_grid(n_rows)), dim3(GP_BLOCK), 0, 0, scores, probs,
                           n_rows, n_kv, vec, no_max);
        if ((rc = gp_hip_check_launch("gp_softmax", "softmax_row")) != GP_OK) {
            return rc;
        }
    } else {
        const size_t per_row = 2 * (size_t)n_seg * sizeof(float);
        long long batch = (long long)(SM_WS_CAP / per_row);
        if (batch > n_rows) {
            batch = n_rows;
        }
        if ((rc = gp_hip_workspace_grow(&sm_ws, "gp_softmax", (size_t)batch * per_row)) != GP_OK) {
            return rc;
        }
        float *seg_max = (float *)sm_ws.ptr;
        float *seg_sum = seg_max + (size_t)batch * n_seg;
        for (long long row0 = 0; row0 < n_rows; row0 += batch) {
            const long long rows = batch < n_rows - row0 ? batch : n_rows - row0;
            const unsigned grid = gp_grid(rows * n_seg);
            hipLaunchKernelGGL(softmax_seg_max_kernel, dim3(grid), dim3(GP_BLOCK), 0, 0, scores,
                               seg_max, row0, rows, n_seg, n_kv, vec);
            hipLaunchKernelGGL(softmax_seg_exp_kernel, dim3(grid), dim3(GP_BLOCK), 0, 0, scores,
                               probs, (const float *)seg_max, seg_sum, row0, rows, n_seg, n_kv, vec,
                               no_max);
            hipLaunchKernelGGL(softmax_seg_div_kernel, dim3(grid), dim3(GP_BLOCK), 0, 0, probs,
                               (const float *)seg_sum, row0, rows, n_seg, n_kv, vec);
            if ((rc = gp_hip_check_launch("gp_softmax", "softmax_segmented")) != GP_OK) {
                return rc;
            }
        }
    }
    gp_attest(0, 0, 0, 0, 1, n_seg <= SM_ROW_SEGS ? "softmax_row" : "softmax_segmented");
    return GP_OK;
}
