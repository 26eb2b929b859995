/*
 * attention_batched.hip: gp_attention_batched (attn of the "batched"
 * capability): B sequences, one query each, over a shared KV cache.
 * Sequence b's query (row b of q) is at position kv_len[b] - 1 and attends
 * causally to its keys 0 .. kv_len[b] - 1, cache rows kv_start[b] ...
 *
 * The same two kernels as gp_attention (attention.hip), through the same
 * device code (attention_splitkv.h: att_group_unit, att_combine_unit): a
 * unit is (sequence b, KV head g, head chunk, split pair) instead of
 * (query i, KV head g, head chunk, split pair), with the caches offset to the sequence's first row,
 * so row b is bit-identical to gp_attention(n_q = 1, n_kv = kv_len[b], q_pos0 = kv_len[b] - 1) on
 * those rows: the splits count from the sequence's key 0.
 *
 * The per-sequence arrays stay in device memory: the host never reads them
 * (no synchronizing copy in a decode step), so the workspace and grid are
 * provisioned for the most keys a sequence can have, capacity, and units
 * past a sequence's keys return at once. A sequence whose kv_start/kv_len
 * break the header's rules (kv_len >= 1, kv_start >= 0, kv_start + kv_len
 * <= capacity) is skipped: its rows of out and lse stay unwritten.
 *
 * Faults: the decode faults of gp_attention when B == 1 (row count 1);
 * batch_kv_start_off when B > 1 (gp_batched_first_row: the sequence's keys
 * read from kv_start + 1 on).
 */
#include "attention_splitkv.h"

/* The sequence's span is valid (the header's rules). */
__device__ __forceinline__ bool att_span_ok(int start, int n, int capacity) {
    return n >= 1 && start >= 0 && (long long)start + n <= capacity;
}

/* Sequences b0 .. b0 + n_rows - 1; the workspace holds n_splits splits of
 * (head_dim + 2) floats per (sequence - b0, head). A unit (att_group_unit)
 * is (sequence, KV head g, head chunk, split pair). */
template <int DT>
__global__ ATT_SPLIT_BOUNDS void
attention_batched_split_kernel(const typename gp_elem<DT>::type *__restrict__ q,
                               const typename gp_elem<DT>::type *__restrict__ k_cache,
                               const typename gp_elem<DT>::type *__restrict__ v_cache,
                               float *__restrict__ ws, const int32_t *__restrict__ kv_start,
                               const int32_t *__restrict__ kv_len, int b0, int n_rows, int n_splits,
                               int capacity, int n_heads, int n_kv_heads, int head_dim, float scale,
                               int flags, int start_off, int vec) {
    __shared__ att_smem sm;
    const size_t q_width = (size_t)n_heads * head_dim;
    const size_t kv_width = (size_t)n_kv_heads * head_dim;
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
        const int bl = (int)(rest / n_kv_heads);
        const int b = b0 + bl;
        const int n = kv_len[b], start = kv_start[b];
        if (!att_span_ok(start, n, capacity)) {
            continue; /* block-uniform: the sequence is skipped */
        }
        const int n_vis = att_visible(0, n, n - 1, 1, flags);
        if (pair * ATT_ROWS >= n_vis) {
            continue; /* no visible key in the unit (block-uniform) */
        }
        const size_t first = (size_t)gp_batched_first_row(start, n, capacity, start_off);
        att_group_unit<DT>(q + (size_t)b * q_width,
                           k_cache + first * kv_width + (size_t)g * head_dim,
                           v_cache + first * kv_width + (size_t)g * head_dim, kv_width, head_dim, g,
                           chunk, n_heads, n_kv_heads, flags, pair, n_vis, scale,
                           ws + (size_t)bl * n_heads * n_splits * stride, n_splits, vec != 0, &sm);
    }
}

template <int DT>
__global__ __launch_bounds__(ATT_THREADS) void attention_batched_combine_kernel(
    const float *__restrict__ ws, typename gp_elem<DT>::type *__restrict__ out,
    float *__restrict__ lse, const int32_t *__restrict__ kv_start,
    const int32_t *__restrict__ kv_len, int b0, int n_rows, int n_splits, int B, int capacity,
    int n_heads, int head_dim, int flags) {
    __shared__ att_cmb_smem sm;
    const size_t q_width = (size_t)n_heads * head_dim;
    const size_t stride = (size_t)head_dim + 2;
    const int n_groups = att_cmb_groups(head_dim);
    const long long units = (long long)n_rows * n_heads * n_groups;
    for (long long u = blockIdx.x; u < units; u += gridDim.x) {
        const int cg = (int)(u % n_groups);
        const int h = (int)(u / n_groups % n_heads);
        const int bl = (int)(u / n_groups / n_heads);
        const int b = b0 + bl;
        const int n = kv_len[b];
        if (!att_span_ok(kv_start[b], n, capacity)) {
            continue;
        }
        const int n_vis = att_visible(0, n, n - 1, 1, flags);
        att_combine_unit<DT>(ws + ((size_t)bl * n_heads + h) * n_splits * stride,
                             n_vis <= 0 ? 0 : (n_vis + ATT_KEYS - 1) / ATT_KEYS, head_dim,
                             cg * ATT_CMB_CH, flags,
                             out + (size_t)b * q_width + (size_t)h * head_dim,
                             lse == NULL || cg != 0 ? NULL : lse + (size_t)h * B + b, &sm);
    }
}

template <int DT>
static int attention_batched_launch(const void *q, const void *k_cache, const void *v_cache,
                                    void *out, float *lse, int B, const int32_t *kv_start,
                                    const int32_t *kv_len, int capacity, int n_heads,
                                    int n_kv_heads, int head_dim, float scale, int flags,
                                    int start_off) {
    static const char fn[] = "gp_attention_batched";
    typedef typename gp_elem<DT>::type S;
    void (*split)(const S *, const S *, const S *, float *, const int32_t *, const int32_t *, int,
                  int, int, int, int, int, int, float, int, int, int) =
        attention_batched_split_kernel<DT>;
    void (*combine)(const float *, S *, float *, const int32_t *, const int32_t *, int, int, int,
                    int, int, int, int, int) = attention_batched_combine_kernel<DT>;
    const size_t stride = (size_t)head_dim + 2;
    const int vec = att_caches_aligned(k_cache, v_cache);
    /* the most splits a sequence can have: capacity keys */
    const int n_splits = gp_attn_splits(capacity);
    const size_t per_seq = (size_t)n_heads * (size_t)n_splits * stride * sizeof(float);
    size_t chunk = ATT_WS_CAP / per_seq;
    if (chunk < 1) {
        chunk = 1;
    }
    if (chunk > (size_t)B) {
        chunk = (size_t)B;
    }
    int rc = gp_hip_workspace_grow(&att_ws, fn, chunk * per_seq);
    if (rc != GP_OK) {
        return rc;
    }
    for (int b0 = 0; b0 < B; b0 += (int)chunk) {
        const int n_rows = (int)chunk < B - b0 ? (int)chunk : B - b0;
        const long long units1 = (long long)n_rows * n_kv_heads *
                                 att_head_chunks(n_heads, n_kv_heads) * att_units_per_row(n_splits);
        hipLaunchKernelGGL(split, dim3(gp_grid(units1)), dim3(ATT_THREADS), 0, 0, (const S *)q,
                           (const S *)k_cache, (const S *)v_cache, (float *)att_ws.ptr, kv_start,
                           kv_len, b0, n_rows, n_splits, capacity, n_heads, n_kv_heads, head_dim,
                           scale, flags, start_off, vec);
        if ((rc = gp_hip_check_launch(fn, "attention_batched_splitkv64")) != GP_OK) {
            return rc;
        }
        const long long units2 = (long long)n_rows * n_heads * att_cmb_groups(head_dim);
        hipLaunchKernelGGL(combine, dim3(gp_grid(units2)), dim3(ATT_THREADS), 0, 0,
                           (const float *)att_ws.ptr, (S *)out, lse, kv_start, kv_len, b0, n_rows,
                           n_splits, B, capacity, n_heads, head_dim, flags);
        if ((rc = gp_hip_check_launch(fn, "attention_batched_splitkv64_combine")) != GP_OK) {
            return rc;
        }
    }
    return GP_OK;
}

extern "C" int gp_attention_batched(int dtype, const void *q, const void *k_cache,
                                    const void *v_cache, void *out, float *lse, int B,
                                    const int32_t *kv_start, const int32_t *kv_len, int capacity,
                                    int n_heads, int n_kv_heads, int head_dim, float scale) {
    int rc = gp_check_attention_batched(dtype, q, k_cache, v_cache, out, B, kv_start, kv_len,
                                        capacity, n_heads, n_kv_heads, head_dim, scale);
    if (rc != GP_OK) {
        return rc;
    }
    int flags = 0;
    if (gp_fault_on(GP_FAULT_ATTN_NO_RESCALE, B)) {
        flags |= ATT_NO_RESCALE;
    }
    if (gp_fault_on(GP_FAULT_ATTN_LSE_OFF_BY_ONE, B)) {
        flags |= ATT_LSE_OFF_BY_ONE;
    }
    if (gp_fault_on(GP_FAULT_ATTN_CAUSAL_PREV, B)) {
        flags |= ATT_CAUSAL_PREV;
    }
    if (gp_fault_on(GP_FAULT_ATTN_GQA_MODULO, B)) {
        flags |= ATT_GQA_MODULO;
    }
    const int start_off = gp_fault_batch_on(GP_FAULT_BATCH_KV_START_OFF, B);
    switch (dtype) {
    case GP_DTYPE_F32:
        rc = attention_batched_launch<GP_DTYPE_F32>(q, k_cache, v_cache, out, lse, B, kv_start,
                                                    kv_len, capacity, n_heads, n_kv_heads, head_dim,
                                                    scale, flags, start_off);
        break;
    case GP_DTYPE_F16:
        rc = attention_batched_launch<GP_DTYPE_F16>(q, k_cache, v_cache, out, lse, B, kv_start,
                                                    kv_len, capacity, n_heads, n_kv_heads, head_dim,
                                                    scale, flags, start_off);
        break;
    default:
        rc = attention_batched_launch<GP_DTYPE_BF16>(q, k_cache, v_cache, out, lse, B, kv_start,
                                                     kv_len, capacity, n_heads, n_kv_heads,
                                                     head_dim, scale, flags, start_off);
        break;
    }
    if (rc != GP_OK) {
        return rc;
    }
    /* the splits provisioned: the host does not read kv_len */
    const int splits = gp_attn_splits(capacity);
    gp_attest(0, 0, GP_ATTN_SPLIT_KEYS, 0, splits > 1 ? splits : 1, "attention_batched_splitkv64");
    return GP_OK;
}
