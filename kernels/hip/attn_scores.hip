/*
 * attn_scores.hip: gp_attn_scores (qk).
 * scores[h, i, j] = scale * dot(q[i, h, :], k_cache[j, g, :]), g = h / (n_heads /
 * n_kv_heads) (GQA / MQA), for query i at position q_pos0 + i; with causal,
 * keys j > q_pos0 + i get -INFINITY. Every element of scores is written.
 *
 * Work unit: (KV head g, a tile of up to QK_HT of the query heads that read
 * it, query i, a chunk of QK_KB = 64 keys), a block of QK_KB threads. The
 * tile's query rows are staged in shared memory as f32, and the chunk's K
 * rows slab by slab of QK_CS columns (coalesced 16-byte loads, the next
 * slab in flight in registers while the current one is used); thread t
 * takes key j = chunk * QK_KB + t and advances one accumulator per head of
 * the tile with fmaf over c = 0 .. head_dim - 1 in order, then multiplies
 * by scale. The arithmetic of an element is exactly that of a plain loop
 * over c, whatever the tiling: it depends on (h, i, j) and the data alone,
 * so decode (n_q = 1) equals the prefill row at the same position bit for
 * bit. Sharing the K row among the heads of a GQA group reads the K cache
 * from memory once per query instead of once per head. 64-key chunks give
 * a decode call n_kv_heads * n_kv / 64 blocks (128 at KV 512 with 8 KV
 * heads; 256-key blocks left 16 blocks there, each a serial slab loop, a
 * floor of ~18 us whatever the length); a chunk whose keys are all past a
 * causal query is written -INFINITY without reading K.
 * Faults (n_q == 1): gqa_modulo maps h to h % n_kv_heads, scale_missing and
 * scale_twice, mask_off_by_one also masks key q_pos0 + i itself. chunk_pos_off
 * (q_pos0 > 0 and n_q > 1, a later chunk of a chunked prefill): query i at
 * position q_pos0 - 1 + i, the same mask as mask_off_by_one.
 */
#include "gp_hip.h"

enum { QK_GQA_MODULO = 1, QK_SCALE_MISSING = 2, QK_SCALE_TWICE = 4, QK_MASK_OFF_BY_ONE = 8 };

#define QK_HT 8  /* query heads per tile: accumulators per thread */
#define QK_CS 32 /* K columns staged in shared memory at a time */
#define QK_KB 64 /* keys per block = threads per block */

/* The query head of slot t of KV head g: the group's heads g * group + t, or
 * with the gqa_modulo fault the heads h with h % n_kv_heads == g. */
__device__ __forceinline__ int qk_head(int g, int t, int group, int n_kv_heads, int flags) {
    return (flags & QK_GQA_MODULO) ? g + t * n_kv_heads : g * group + t;
}

template <int DT>
__global__ __launch_bounds__(QK_KB) void attn_scores_kernel(
    const typename gp_elem<DT>::type *__restrict__ q,
    const typename gp_elem<DT>::type *__restrict__ k_cache, float *__restrict__ scores, int n_q,
    int n_kv, int n_heads, int n_kv_heads, int head_dim, int q_pos0, float scale, int causal,
    int flags, int vec_ok) {
    typedef typename gp_elem<DT>::type S;
    constexpr int vec = gp_vec<DT>::n;
    constexpr int ld = QK_CS + vec; /* shared row stride: one 16-byte pad */
    constexpr int VR = QK_CS / vec; /* 16-byte vectors per thread per slab */
    __shared__ float qs[QK_HT * GP_MAX_HEAD_DIM];
    __shared__ S ks[QK_KB * ld] __attribute__((aligned(16)));
    const size_t q_width = (size_t)n_heads * head_dim;
    const size_t kv_width = (size_t)n_kv_heads * head_dim;
    const int group = n_heads / n_kv_heads;
    const int htiles = (group + QK_HT - 1) / QK_HT;
    const int chunks = (n_kv + QK_KB - 1) / QK_KB;
    const long long units = (long long)n_kv_heads * htiles * n_q * chunks;
    const int tid = threadIdx.x;
    for (long long u = blockIdx.x; u < units; u += gridDim.x) {
        const int chunk = (int)(u % chunks);
        long long rest = u / chunks;
        const int i = (int)(rest % n_q);
        rest /= n_q;
        const int ht = (int)(rest % htiles);
        const int g = (int)(rest / htiles);
        const int t0 = ht * QK_HT;
        const int nh = min(QK_HT, group - t0);
        const int jbase = chunk * QK_KB;
        const int rows = min(QK_KB, n_kv - jbase);
        const int j = jbase + tid;
        /* the query's last visible key: its own position, one less with
         * mask_off_by_one */
        const int lim = (flags & QK_MASK_OFF_BY_ONE) ? q_pos0 + i - 1 : q_pos0 + i;
        const bool masked = j >= n_kv || (causal && j > lim);
        const bool all_masked = causal && jbase > lim; /* block-uniform: skip K */
        float acc[QK_HT];
#pragma unroll
        for (int t = 0; t < QK_HT; t++) {
            acc[t] = 0.0f;
        }
        if (!all_masked) {
            __syncthreads(); /* the previous unit is done with qs and ks */
            for (int e = tid; e < nh * head_dim; e += QK_KB) {
                const int t = e / head_dim, c = e % head_dim;
                const int h = qk_head(g, t0 + t, group, n_kv_heads, flags);
                qs[t * head_dim + c] =
                    gp_to_f32<DT>(q[(size_t)i * q_width + (size_t)h * head_dim + c]);
            }
            const S *kbase = k_cache + (size_t)jbase * kv_width + (size_t)g * head_dim;
            uint4 kr[VR];
            /* the slab of columns [c0, c0 + QK_CS) of the block's rows into
             * registers, 16 bytes per load (coalesced along a row) */
            auto load = [&](int c0) {
                const int vpr = min(QK_CS, head_dim - c0) / vec; /* vectors per row */
#pragma unroll
                for (int r = 0; r < VR; r++) {
                    const int e = tid + r * QK_KB;
                    const int row = e / vpr, v = e % vpr;
                    kr[r] = make_uint4(0u, 0u, 0u, 0u);
                    if (row < rows) {
                        kr[r] = gp_load_raw16<DT>(kbase + (size_t)row * kv_width + c0 + v * vec,
                                                  vec_ok);
                    }
                }
            };
            load(0);
            /* head_dim in slabs of QK_CS columns: the block stages the slab
             * of its rows (the next one loads while this one is used), then
             * each thread continues its own chains over the slab's columns
             * in order */
            for (int c0 = 0; c0 < head_dim; c0 += QK_CS) {
                const int w = min(QK_CS, head_dim - c0); /* a multiple of 8 */
                const int vpr = w / vec;
                if (c0 > 0) {
                    __syncthreads(); /* the previous slab consumed */
                }
#pragma unroll
                for (int r = 0; r < VR; r++) {
                    const int e = tid + r * QK_KB;
                    const int row = e / vpr, v = e % vpr;
                    if (row < QK_KB) {
                        *reinterpret_cast<uint4 *>(ks + row * ld + v * vec) = kr[r];
                    }
                }
                __syncthreads(); /* qs and the slab written */
                if (c0 + QK_CS < head_dim) {
                    load(c0 + QK_CS); /* in flight while the chains run */
                }
                if (!masked) {
                    const S *kp = ks + tid * ld;
                    for (int cv = 0; cv < w; cv += vec) {
                        float kv[vec];
                        gp_load_vec16<DT>(kp + cv, kv);
#pragma unroll
                        for (int e = 0; e < vec; e++) {
                            const int c = c0 + cv + e;
#pragma unroll
                            for (int t = 0; t < QK_HT; t++) {
                                if (t < nh) {
                                    acc[t] = fmaf(qs[t * head_dim + c], kv[e], acc[t]);
                                }
                            }
                        }
                    }
                }
            }
        }
        if (j >= n_kv) {
            continue;
        }
#pragma unroll
        for (int t = 0; t < QK_HT; t++) {
            if (t < nh) {
                const int h = qk_head(g, t0 + t, group, n_kv_heads, flags);
                float s;
                if (masked) {
                    s = -GP_INF;
                } else {
                    s = acc[t];
                    if (!(flags & QK_SCALE_MISSING)) {
                        s = s * scale;
                    }
                    if (flags & QK_SCALE_TWICE) {
                        s = s * scale;
                    }
                }
                scores[((size_t)h * n_q + i) * n_kv + j] = s;
            }
        }
    }
}

template <int DT>
static void attn_scores_launch(const void *q, const void *k_cache, float *scores, int n_q, int n_kv,
                               int n_heads, int n_kv_heads, int head_dim, int q_pos0, float scale,
                               int causal, int flags) {
    typedef typename gp_elem<DT>::type S;
    void (*kernel)(const S *, const S *, float *, int, int, int, int, int, int, float, int, int,
                   int) = attn_scores_kernel<DT>;
    const int group = n_heads / n_kv_heads;
    const long long units =
        (long long)n_kv_heads * ((group + QK_HT - 1) / QK_HT) * n_q * ((n_kv + QK_KB - 1) / QK_KB);
    /* K rows start at multiples of head_dim (% 8 == 0) elements: 16-byte
     * aligned wherever the cache itself is. */
    const int vec_ok = ((uintptr_t)k_cache & 15u) == 0 ? 1 : 0;
    hipLaunchKernelGGL(kernel, dim3(gp_grid(units)), dim3(QK_KB), 0, 0, (const S *)q,
                       (const S *)k_cache, scores, n_q, n_kv, n_heads, n_kv_heads, head_dim, q_pos0,
                       scale, causal, flags, vec_ok);
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
    if (gp_fault_on(GP_FAULT_MASK_OFF_BY_ONE, n_q) ||
        gp_fault_chunk_on(GP_FAULT_CHUNK_POS_OFF, q_pos0, n_q)) {
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
    if ((rc = gp_hip_check_launch("gp_attn_scores", "attn_scores_gqa_key64")) != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1, "attn_scores_gqa_key64");
    return GP_OK;
}
