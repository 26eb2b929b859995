/*
 * attention.hip: gp_attention (attn), the fused attention stage, as split-KV
 * flash decoding with the header's fixed key split (GP_ATTN_SPLIT_KEYS = 64).
 *
 * Query i sees the keys 0 .. n_vis-1 (n_vis = q_pos0 + i + 1 when causal,
 * else n_kv), cut into splits s of keys [64s, 64s + 64) clipped to n_vis.
 *
 * Kernel 1 (attention_split_kernel), one block of ATT_THREADS = 128 threads
 * per unit (query i, KV head g, up to ATT_HPB = 4 query heads of g's group,
 * 2 consecutive splits): the K and V tiles of the unit's 128 keys are read
 * once for all its heads (16-byte loads, software pipelined through shared
 * memory), and each (query, head, split) gets, in f32 (attention_splitkv.h
 * att_group_unit has the thread mapping):
 *   s_t = (fmaf chain over c = 0 .. head_dim-1 of q[c] * k[t, c]) * scale,
 *   m_s = max_t s_t, p_t = exp(s_t - m_s), l_s = sum_t p_t in key order,
 *   acc_s[c] = fmaf chain over t of p_t * v[64s + t, c] in key order,
 * written to an f32 workspace.
 * Kernel 2 (attention_combine_kernel), one block per (query i, head h,
 * group of ATT_CMB_CH = 32 channels), reads the workspace with all its
 * threads (ATT_CMB_S splits at a time through shared memory) and combines
 * the splits in increasing order: m = max_s m_s, w_s =
 * exp(m_s - m), l = fmaf(l_s, w_s, l), o[c] = fmaf(acc_s[c], w_s, o[c]),
 * out = o / l rounded once to the dtype, lse[h, i] = m + log(l).
 * exp and log are taken in double and rounded once to f32 (as softmax.hip
 * does): the same on every vendor, and the same function as the CPU
 * backend's (kernels/cpu/cpu_fused.c), which it matches operation for
 * operation. A split's keys and arithmetic depend on the key index alone,
 * never on n_q or on how the queries are chunked, so decode (n_q = 1)
 * equals the prefill row at the same position bit for bit.
 *
 * The workspace (m_s, l_s, acc_s[head_dim] per split, row and head) is one
 * device buffer grown on demand and kept for later calls; the queries run in
 * chunks so that it stays within ATT_WS_CAP bytes (at least one query).
 *
 * Faults (n_q == 1): attn_no_rescale (w_s = 1), attn_lse_off_by_one (the
 * last split left out of lse when there are >= 2), attn_causal_prev (causal
 * limit q_pos0 + i - 1), attn_gqa_modulo (kv head h % n_kv_heads); and
 * chunk_pos_off (q_pos0 > 0 and n_q > 1, a later chunk of a chunked
 * prefill): the causal limit of attn_causal_prev.
 *
 * The per-unit device code (a split unit, a combine) and the workspace are
 * in attention_splitkv.h, shared with gp_attention_batched
 * (attention_batched.hip), so both compute a row the same way.
 */
#include "attention_splitkv.h"

/* Queries i0 .. i0 + n_rows - 1; the workspace holds n_splits splits of
 * (head_dim + 2) floats per (row - i0, head). A unit (att_group_unit) is
 * (row, KV head g, head chunk, split pair). */
template <int DT>
__global__ ATT_SPLIT_BOUNDS void
attention_split_kernel(const typename gp_elem<DT>::type *__restrict__ q,
                       const typename gp_elem<DT>::type *__restrict__ k_cache,
                       const typename gp_elem<DT>::type *__restrict__ v_cache,
                       float *__restrict__ ws, int i0, int n_rows, int n_splits, int n_kv,
                       int n_heads, int n_kv_heads, int head_dim, int q_pos0, float scale,
                       int causal, int flags, int vec) {
    __shared__ att_smem sm;
    const size_t q_width = (size_t)n_heads * head_dim;
    const size_t stride = (size_t)head_dim + 2;
    const int n_chunks = att_head_chunks(n_heads, n_kv_heads);
    const int n_pairs = att_units_per_row(n_splits);
    const long long units = (long long)n_rows * n_kv_heads * n_chunks * n_pairs;
    for (long long u = blockIdx.x; u < units; u += gridDim.x) {
        const int pair = (int)(u % n_pairs);
        long long rest = u / n_pairs;
        const int chunk = (int)(rest % n_chunks);
        rest /= n_chunks;
        const int g = (int)(rest % n_kv_heads);
        const int il = (int)(rest / n_kv_heads);
        const int i = i0 + il;
        const int n_vis = att_visible(i, n_kv, q_pos0, causal, flags);
        if (pair * ATT_ROWS >= n_vis) {
            continue; /* no visible key in the unit: skipped (block-uniform) */
        }
        att_group_unit<DT>(q + (size_t)i * q_width, k_cache + (size_t)g * head_dim,
                           v_cache + (size_t)g * head_dim, (size_t)n_kv_heads * head_dim, head_dim,
                           g, chunk, n_heads, n_kv_heads, flags, pair, n_vis, scale,
                           ws + (size_t)il * n_heads * n_splits * stride, n_splits, vec != 0, &sm);
    }
}

template <int DT>
__global__ __launch_bounds__(ATT_THREADS) void attention_combine_kernel(
    const float *__restrict__ ws, typename gp_elem<DT>::type *__restrict__ out,
    float *__restrict__ lse, int i0, int n_rows, int n_splits, int n_q, int n_kv, int n_heads,
    int head_dim, int q_pos0, int causal, int flags) {
    __shared__ att_cmb_smem sm;
    const size_t q_width = (size_t)n_heads * head_dim;
    const size_t stride = (size_t)head_dim + 2;
    const int n_groups = att_cmb_groups(head_dim);
    const long long units = (long long)n_rows * n_heads * n_groups;
    for (long long u = blockIdx.x; u < units; u += gridDim.x) {
        const int cg = (int)(u % n_groups);
        const int h = (int)(u / n_groups % n_heads);
        const int il = (int)(u / n_groups / n_heads);
        const int i = i0 + il;
        const int n_vis = att_visible(i, n_kv, q_pos0, causal, flags);
        att_combine_unit<DT>(ws + ((size_t)il * n_heads + h) * n_splits * stride,
                             n_vis <= 0 ? 0 : (n_vis + ATT_KEYS - 1) / ATT_KEYS, head_dim,
                             cg * ATT_CMB_CH, flags,
                             out + (size_t)i * q_width + (size_t)h * head_dim,
                             lse == NULL || cg != 0 ? NULL : lse + (size_t)h * n_q + i, &sm);
    }
}

template <int DT>
static int attention_launch(const void *q, const void *k_cache, const void *v_cache, void *out,
                            float *lse, int n_q, int n_kv, int n_heads, int n_kv_heads,
                            int head_dim, int q_pos0, float scale, int causal, int flags) {
    typedef typename gp_elem<DT>::type S;
    void (*split)(const S *, const S *, const S *, float *, int, int, int, int, int, int, int, int,
                  float, int, int, int) = attention_split_kernel<DT>;
    void (*combine)(const float *, S *, float *, int, int, int, int, int, int, int, int, int, int) =
        attention_combine_kernel<DT>;
    const int causal_prev = (flags & ATT_CAUSAL_PREV) != 0;
    const int vec = att_caches_aligned(k_cache, v_cache);
    const size_t stride = (size_t)head_dim + 2;
    /* bytes per query at the most splits any query has; queries per chunk */
    const int max_splits = gp_attn_splits(n_kv);
    const size_t per_query = (size_t)n_heads * (size_t)max_splits * stride * sizeof(float);
    size_t chunk = ATT_WS_CAP / per_query;
    if (chunk < 1) {
        chunk = 1;
    }
    if (chunk > (size_t)n_q) {
        chunk = (size_t)n_q;
    }
    int rc = gp_hip_workspace_grow(&att_ws, "gp_attention", chunk * per_query);
    if (rc != GP_OK) {
        return rc;
    }
    for (int i0 = 0; i0 < n_q; i0 += (int)chunk) {
        const int n_rows = (int)chunk < n_q - i0 ? (int)chunk : n_q - i0;
        /* the chunk's longest row is its last (causal) or any (not) */
        int n_splits =
            gp_attn_splits(gp_attn_visible(i0 + n_rows - 1, n_kv, q_pos0, causal, causal_prev));
        if (n_splits < 1) {
            n_splits = 1; /* a row without keys (attn_causal_prev): combine only */
        }
        const long long units1 = (long long)n_rows * n_kv_heads *
                                 att_head_chunks(n_heads, n_kv_heads) * att_units_per_row(n_splits);
        hipLaunchKernelGGL(split, dim3(gp_grid(units1)), dim3(ATT_THREADS), 0, 0, (const S *)q,
                           (const S *)k_cache, (const S *)v_cache, (float *)att_ws.ptr, i0, n_rows,
                           n_splits, n_kv, n_heads, n_kv_heads, head_dim, q_pos0, scale, causal,
                           flags, vec);
        if ((rc = gp_hip_check_launch("gp_attention", "attention_splitkv64")) != GP_OK) {
            return rc;
        }
        const long long units2 = (long long)n_rows * n_heads * att_cmb_groups(head_dim);
        hipLaunchKernelGGL(combine, dim3(gp_grid(units2)), dim3(ATT_THREADS), 0, 0,
                           (const float *)att_ws.ptr, (S *)out, lse, i0, n_rows, n_splits, n_q,
                           n_kv, n_heads, head_dim, q_pos0, causal, flags);
        if ((rc = gp_hip_check_launch("gp_attention", "attention_splitkv64_combine")) != GP_OK) {
            return rc;
        }
    }
    return GP_OK;
}

extern "C" int gp_attention(int dtype, const void *q, const void *k_cache, const void *v_cache,
                            void *out, float *lse, int n_q, int n_kv, int n_heads, int n_kv_heads,
                            int head_dim, int q_pos0, float scale, int causal) {
    int rc = gp_check_attention(dtype, q, k_cache, v_cache, out, n_q, n_kv, n_heads, n_kv_heads,
                                head_dim, q_pos0, scale);
    if (rc != GP_OK) {
        return rc;
    }
    int flags = 0;
    if (gp_fault_on(GP_FAULT_ATTN_NO_RESCALE, n_q)) {
        flags |= ATT_NO_RESCALE;
    }
    if (gp_fault_on(GP_FAULT_ATTN_LSE_OFF_BY_ONE, n_q)) {
        flags |= ATT_LSE_OFF_BY_ONE;
    }
    if (gp_fault_on(GP_FAULT_ATTN_CAUSAL_PREV, n_q) ||
        gp_fault_chunk_on(GP_FAULT_CHUNK_POS_OFF, q_pos0, n_q)) {
        flags |= ATT_CAUSAL_PREV;
    }
    if (gp_fault_on(GP_FAULT_ATTN_GQA_MODULO, n_q)) {
        flags |= ATT_GQA_MODULO;
    }
    switch (dtype) {
    case GP_DTYPE_F32:
        rc = attention_launch<GP_DTYPE_F32>(q, k_cache, v_cache, out, lse, n_q, n_kv, n_heads,
                                            n_kv_heads, head_dim, q_pos0, scale, causal, flags);
        break;
    case GP_DTYPE_F16:
        rc = attention_launch<GP_DTYPE_F16>(q, k_cache, v_cache, out, lse, n_q, n_kv, n_heads,
                                            n_kv_heads, head_dim, q_pos0, scale, causal, flags);
        break;
    default:
        rc = attention_launch<GP_DTYPE_BF16>(q, k_cache, v_cache, out, lse, n_q, n_kv, n_heads,
                                             n_kv_heads, head_dim, q_pos0, scale, causal, flags);
        break;
    }
    if (rc != GP_OK) {
        return rc;
    }
    const int longest = gp_attn_splits(
        gp_attn_visible(n_q - 1, n_kv, q_pos0, causal, (flags & ATT_CAUSAL_PREV) != 0));
    gp_attest(0, 0, GP_ATTN_SPLIT_KEYS, 0, longest > 1 ? longest : 1, "attention_splitkv64");
    return GP_OK;
}
