/*
 * attn_scores.hip: gp_attn_scores (qk).
 * scores[h, i, j] = scale * dot(q[i, h, :], k_cache[j, g, :]), g = h / (n_heads /
 * n_kv_heads) (GQA / MQA), for query i at position q_pos0 + i; with causal,
 * keys j > q_pos0 + i get -INFINITY. Every element of scores is written.
 *
 * One block per (h, i) stages the query row in shared memory as f32; thread t
 * takes keys t, t + 256, ... and accumulates the dot product with fmaf over
 * c = 0 .. head_dim - 1 in order. An element depends on (h, i, j) and the
 * data alone: decode (n_q = 1) equals the prefill row at the same position.
 * Faults (n_q == 1): gqa_modulo maps h to h % n_kv_heads, scale_missing and
 * scale_twice, mask_off_by_one also masks key q_pos0 + i itself.
 */
#include "gp_hip.h"

enum { QK_GQA_MODULO = 1, QK_SCALE_MISSING = 2, QK_SCALE_TWICE = 4, QK_MASK_OFF_BY_ONE = 8 };

template <int DT>
__global__ __launch_bounds__(GP_BLOCK) void attn_scores_kernel(
    const typename gp_elem<DT>::type *__restrict__ q,
    const typename gp_elem<DT>::type *__restrict__ k_cache, float *__restrict__ scores, int n_q,
    int n_kv, int n_heads, int n_kv_heads, int head_dim, int q_pos0, float scale, int causal,
    int flags) {
    typedef typename gp_elem<DT>::type S;
    __shared__ float qs[GP_MAX_HEAD_DIM];
    const size_t q_width = (size_t)n_heads * head_dim;
    const size_t kv_width = (size_t)n_kv_heads * head_dim;
    const int group = n_heads / n_kv_heads;
    const long long pairs = (long long)n_heads * n_q;
    for (long long pair = blockIdx.x; pair < pairs; pair += gridDim.x) {
        const int h = (int)(pair / n_q);
        const int i = (int)(pair % n_q);
        const int g = (flags & QK_GQA_MODULO) ? h % n_kv_heads : h / group;
        __syncthreads(); /* the previous pair is done with qs */
        for (int c = threadIdx.x; c < head_dim; c += GP_BLOCK) {
            qs[c] = gp_to_f32<DT>(q[(size_t)i * q_width + (size_t)h * head_dim + c]);
        }
        __syncthreads();
        const int last = q_pos0 + i; /* the query's own position */
        float *row = scores + (size_t)pair * n_kv;
        for (int j = threadIdx.x; j < n_kv; j += GP_BLOCK) {
            float s;
            if (causal && (j > last || ((flags & QK_MASK_OFF_BY_ONE) && j == last))) {
                s = -__int_as_float(0x7f800000);
            } else {
                const S *kr = k_cache + (size_t)j * kv_width + (size_t)g * head_dim;
                float acc = 0.0f;
                for (int c = 0; c < head_dim; c++) {
                    acc = fmaf(qs[c], gp_to_f32<DT>(kr[c]), acc);
                }
                s = acc;
                if (!(flags & QK_SCALE_MISSING)) {
                    s = s * scale;
                }
                if (flags & QK_SCALE_TWICE) {
                    s = s * scale;
                }
            }
            row[j] = s;
        }
    }
}

template <int DT>
static void attn_scores_launch(const void *q, const void *k_cache, float *scores, int n_q, int n_kv,
                               int n_heads, int n_kv_heads, int head_dim, int q_pos0, float scale,
                               int causal, int flags) {
    typedef typename gp_elem<DT>::type S;
    void (*kernel)(const S *, const S *, float *, int, int, int, int, int, int, float, int, int) =
        attn_scores_kernel<DT>;
    hipLaunchKernelGGL(kernel, dim3(gp_grid((long long)n_heads * n_q)), dim3(GP_BLOCK), 0, 0,
                       (const S *)q, (const S *)k_cache, scores, n_q, n_kv, n_heads, n_kv_heads,
                       head_dim, q_pos0, scale, causal, flags);
}

extern "C" int gp_attn_scores(int dtype, const void *q, const void *k_cache, float *scores, int n_q,
                              int n_kv, int n_heads, int n_kv_heads, int head_dim, int q_pos0,
                              float scale, int causal) {
    int rc = gp_check_attn_scores(dtype, q, k_cache, scores, n_q, n_kv, n_heads, n_kv_heads,
                                  head_dim, q_pos0, scale);
    if (rc != GP_OK) {
        return rc;
    }
    int flags = 0;
    if (gp_fault_on(GP_FAULT_GQA_MODULO, n_q)) {
        flags |= QK_GQA_MODULO;
    }
    if (gp_fault_on(GP_FAULT_SCALE_MISSING, n_q)) {
        flags |= QK_SCALE_MISSING;
    }
    if (gp_fault_on(GP_FAULT_SCALE_TWICE, n_q)) {
        flags |= QK_SCALE_TWICE;
    }
    if (gp_fault_on(GP_FAULT_MASK_OFF_BY_ONE, n_q)) {
        flags |= QK_MASK_OFF_BY_ONE;
    }
    switch (dtype) {
    case GP_DTYPE_F32:
        attn_scores_launch<GP_DTYPE_F32>(q, k_cache, scores, n_q, n_kv, n_heads, n_kv_heads,
                                         head_dim, q_pos0, scale, causal, flags);
        break;
    case GP_DTYPE_F16:
        attn_scores_launch<GP_DTYPE_F16>(q, k_cache, scores, n_q, n_kv, n_heads, n_kv_heads,
                                         head_dim, q_pos0, scale, causal, flags);
        break;
    default:
        attn_scores_launch<GP_DTYPE_BF16>(q, k_cache, scores, n_q, n_kv, n_heads, n_kv_heads,
                                          head_dim, q_pos0, scale, causal, flags);
        break;
    }
    if ((rc = gp_hip_check_launch("gp_attn_scores", "attn_scores_rowblock")) != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1, "attn_scores_rowblock");
    return GP_OK;
}
