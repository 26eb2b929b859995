/*
 * cpu_fused.c: gp_attention (attn), the fused attention stage, as split-KV
 * flash decoding with the header's fixed key split (GP_ATTN_SPLIT_KEYS).
 *
 * Per (query i, head h) the visible keys 0 .. n_vis-1 are cut into splits of
 * GP_ATTN_SPLIT_KEYS keys; per split s, in f32:
 *   s_j = (fmaf chain over c = 0 .. head_dim-1 of q * k) * scale,
 *   m_s = max_j s_j, p_j = exp(s_j - m_s), l_s = sum_j p_j in key order,
 *   acc_s[c] = fmaf chain over j of p_j * v[j, c] in key order;
 * then the splits are combined in increasing order: m = max_s m_s,
 *   w_s = exp(m_s - m), l = fmaf(l_s, w_s, l), o[c] = fmaf(acc_s[c], w_s, o[c]),
 *   out = o / l rounded once to the dtype, lse = m + log(l).
 * exp and log are taken in double and rounded once to f32 (attn_exp,
 * attn_log), as the HIP kernels do, so both backends compute the same
 * function. A split's keys and arithmetic depend on the key index alone,
 * never on n_q: a row's result is the same whatever n_q (batch invariant).
 *
 * K is converted to f32 once per call, transposed per KV head to
 * [n_kv_heads][head_dim][keys, padded with zeros to whole splits], so that
 * a split's 64 dot chains (each over c in increasing order) advance side by
 * side in vector lanes; the V chains run side by side over c. Lanes hold
 * different keys or channels, never parts of one chain: the arithmetic is
 * that of the plain loops. The (i, h) rows are independent and spread over
 * OpenMP threads, each with its own split scratch; the result does not
 * depend on the thread count.
 *
 * Faults (n_q == 1): attn_no_rescale (w_s = 1), attn_lse_off_by_one (the
 * last split left out of lse when there are >= 2), attn_causal_prev (causal
 * limit q_pos0 + i - 1), attn_gqa_modulo (kv head h % n_kv_heads). Fault
 * chunk_pos_off (q_pos0 > 0 and n_q > 1: a later chunk of a chunked
 * prefill) takes query i at position q_pos0 - 1 + i: the same causal limit
 * as attn_causal_prev, reached by a different call.
 *
 * gp_cpu_attention_rows is the computation without the checks and fault
 * selection, shared with gp_attention_batched (cpu_batched.c).
 */
#include <stdlib.h>

#include "cpu_internal.h"

static float attn_exp(float d) { return (float)exp((double)d); }

static float attn_log(float l) { return (float)log((double)l); }

/* Partials of one split: m_s, l_s, acc_s[head_dim] at part[0], [1], [2..].
 * kt: the split's KV head in the transposed K, key j0 of channel c at
 * kt[c * kt_ld + j0]; the loops have fixed trip counts (GP_ATTN_SPLIT_KEYS,
 * 8: head_dim % 8 == 0) so that the compiler vectorizes them at -O2. */
static void attn_split(const float *restrict qr, const float *restrict kt, size_t kt_ld,
                       const float *vf, size_t kv_width, int head_dim, int j0, int j1, float scale,
                       float *restrict part) {
    float sc[GP_ATTN_SPLIT_KEYS];
    float *restrict acc = part + 2;
    float m = -INFINITY, l = 0.0f;
    const int jn = j1 - j0;
    int j, c, e;
    for (j = 0; j < GP_ATTN_SPLIT_KEYS; j++) {
        sc[j] = 0.0f;
    }
    for (c = 0; c < head_dim; c++) {
        const float qc = qr[c];
        const float *restrict kc = kt + (size_t)c * kt_ld + (size_t)j0;
        for (j = 0; j < GP_ATTN_SPLIT_KEYS; j++) {
            sc[j] = fmaf(qc, kc[j], sc[j]);
        }
    }
    for (j = 0; j < jn; j++) {
        sc[j] = sc[j] * scale;
        if (sc[j] > m) {
            m = sc[j];
        }
    }
    for (c = 0; c < head_dim; c++) {
        acc[c] = 0.0f;
    }
    for (j = 0; j < jn; j++) {
        const float *restrict vr = vf + (size_t)(j0 + j) * kv_width;
        float p = attn_exp(sc[j] - m);
        l += p;
        for (c = 0; c < head_dim; c += 8) {
            for (e = 0; e < 8; e++) {
                acc[c + e] = fmaf(p, vr[c + e], acc[c + e]);
            }
        }
    }
    part[0] = m;
    part[1] = l;
}

/* One (query, head) row: splits into part (n_splits * (head_dim + 2)
 * floats), then the combine into o (head_dim floats, out / l) and *lse. */
static void attn_row(const float *qr, const float *kt, size_t kt_ld, const float *vf,
                     size_t kv_width, int head_dim, int n_vis, float scale, int flags, float *part,
                     float *o, float *lse) {
    const size_t stride = (size_t)head_dim + 2;
    const int n_splits = gp_attn_splits(n_vis);
    float m = -INFINITY, l = 0.0f, l_lse = 0.0f;
    int s, c;
    if (n_splits == 0) { /* only under attn_causal_prev: no visible key */
        for (c = 0; c < head_dim; c++) {
            o[c] = 0.0f;
        }
        *lse = -INFINITY;
        return;
    }
    for (s = 0; s < n_splits; s++) {
        int j0 = s * GP_ATTN_SPLIT_KEYS;
        int j1 = j0 + GP_ATTN_SPLIT_KEYS < n_vis ? j0 + GP_ATTN_SPLIT_KEYS : n_vis;
        attn_split(qr, kt, kt_ld, vf, kv_width, head_dim, j0, j1, scale, part + (size_t)s * stride);
        if (part[(size_t)s * stride] > m) {
            m = part[(size_t)s * stride];
        }
    }
    for (c = 0; c < head_dim; c++) {
        o[c] = 0.0f;
    }
    for (s = 0; s < n_splits; s++) {
        const float *ps = part + (size_t)s * stride;
        float w = (flags & ATTN_NO_RESCALE) ? 1.0f : attn_exp(ps[0] - m);
        l = fmaf(ps[1], w, l);
        if (!((flags & ATTN_LSE_OFF_BY_ONE) && n_splits >= 2 && s == n_splits - 1)) {
            l_lse = fmaf(ps[1], w, l_lse);
        }
        for (c = 0; c < head_dim; c++) {
            o[c] = fmaf(ps[2 + c], w, o[c]);
        }
    }
    for (c = 0; c < head_dim; c++) {
        o[c] = o[c] / l;
    }
    *lse = m + attn_log(l_lse);
}

/* K as f32, transposed per KV head: kt[(g * head_dim + c) * kt_ld + j] =
 * k_cache[j, g * head_dim + c] for j < n_kv, 0 for n_kv <= j < kt_ld (the
 * last split's padding). NULL after recording GP_ERR_OUT_OF_MEMORY. */
static float *attn_k_transposed(const char *fn, int dtype, const void *k_cache, int n_kv,
                                size_t kv_width, size_t kt_ld) {
    const size_t n = kv_width * kt_ld;
    float *kt;
    long long r;
    if (n > SIZE_MAX / sizeof(float) || (kt = (float *)malloc(n * sizeof(float))) == NULL) {
        gp_fail(GP_ERR_OUT_OF_MEMORY, "%s: transposed K of %zu elements: out of memory", fn, n);
        return NULL;
    }
#pragma omp parallel for schedule(static) if (n > 65536)
    for (r = 0; r < (long long)kv_width; r++) {
        float *dst = kt + (size_t)r * kt_ld;
        size_t j;
        for (j = 0; j < (size_t)n_kv; j++) {
            dst[j] = gp_load(dtype, k_cache, j * kv_width + (size_t)r);
        }
        for (; j < kt_ld; j++) {
            dst[j] = 0.0f;
        }
    }
    return kt;
}

int gp_cpu_attention_rows(const char *fn, int dtype, const void *q, const void *k_cache,
                          const void *v_cache, void *out, float *lse, int n_q, int n_kv,
                          int n_heads, int n_kv_heads, int head_dim, int q_pos0, float scale,
                          int causal, int flags) {
    const size_t q_width = (size_t)n_heads * (size_t)head_dim;
    const size_t kv_width = (size_t)n_kv_heads * (size_t)head_dim;
    const size_t kt_ld = (size_t)gp_attn_splits(n_kv) * GP_ATTN_SPLIT_KEYS;
    float *qf, *kt, *vf;
    long long row, n_rows;
    int failed = 0;
    qf = gp_cpu_to_f32(fn, dtype, q, (size_t)n_q * q_width);
    kt = qf == NULL ? NULL : attn_k_transposed(fn, dtype, k_cache, n_kv, kv_width, kt_ld);
    vf = kt == NULL ? NULL : gp_cpu_to_f32(fn, dtype, v_cache, (size_t)n_kv * kv_width);
    if (vf == NULL) {
        free(qf);
        free(kt);
        return GP_ERR_OUT_OF_MEMORY;
    }
    n_rows = (long long)n_q * n_heads;
#pragma omp parallel
    {
        /* per thread: the split partials of one row, then its output */
        const size_t stride = (size_t)head_dim + 2;
        const size_t n_part = (size_t)gp_attn_splits(n_kv) * stride + (size_t)head_dim;
        float *part = (float *)malloc(n_part * sizeof(float));
        if (part == NULL) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (row = 0; row < n_rows; row++) {
            const int i = (int)(row / n_heads), h = (int)(row % n_heads);
            const int g = (flags & ATTN_GQA_MODULO) ? h % n_kv_heads : h / (n_heads / n_kv_heads);
            const int n_vis =
                gp_attn_visible(i, n_kv, q_pos0, causal, (flags & ATTN_CAUSAL_PREV) != 0);
            float *o, row_lse;
            int c;
            if (part == NULL) {
                continue;
            }
            o = part + (n_part - (size_t)head_dim);
            attn_row(qf + (size_t)i * q_width + (size_t)h * (size_t)head_dim,
                     kt + (size_t)g * (size_t)head_dim * kt_ld, kt_ld,
                     vf + (size_t)g * (size_t)head_dim, kv_width, head_dim, n_vis, scale, flags,
                     part, o, &row_lse);
            for (c = 0; c < head_dim; c++) {
                gp_store(dtype, out, (size_t)i * q_width + (size_t)h * (size_t)head_dim + c, o[c],
                         0);
            }
            if (lse != NULL) {
                lse[(size_t)h * (size_t)n_q + (size_t)i] = row_lse;
            }
        }
        free(part);
    }
    free(qf);
    free(kt);
    free(vf);
    if (failed) {
        return gp_fail(GP_ERR_OUT_OF_MEMORY, "%s: split scratch of %d splits: out of memory", fn,
                       gp_attn_splits(n_kv));
    }
    return GP_OK;
}

int gp_attention(int dtype, const void *q, const void *k_cache, const void *v_cache, void *out,
                 float *lse, int n_q, int n_kv, int n_heads, int n_kv_heads, int head_dim,
                 int q_pos0, float scale, int causal) {
    int flags = 0, longest;
    int rc = gp_check_attention(dtype, q, k_cache, v_cache, out, n_q, n_kv, n_heads, n_kv_heads,
                                head_dim, q_pos0, scale);
    if (rc != GP_OK) {
        return rc;
    }
    if (gp_fault_on(GP_FAULT_ATTN_NO_RESCALE, n_q)) {
        flags |= ATTN_NO_RESCALE;
    }
    if (gp_fault_on(GP_FAULT_ATTN_LSE_OFF_BY_ONE, n_q)) {
        flags |= ATTN_LSE_OFF_BY_ONE;
    }
    if (gp_fault_on(GP_FAULT_ATTN_CAUSAL_PREV, n_q) ||
        gp_fault_chunk_on(GP_FAULT_CHUNK_POS_OFF, q_pos0, n_q)) {
        flags |= ATTN_CAUSAL_PREV;
    }
    if (gp_fault_on(GP_FAULT_ATTN_GQA_MODULO, n_q)) {
        flags |= ATTN_GQA_MODULO;
    }
    rc = gp_cpu_attention_rows("gp_attention", dtype, q, k_cache, v_cache, out, lse, n_q, n_kv,
                               n_heads, n_kv_heads, head_dim, q_pos0, scale, causal, flags);
    if (rc != GP_OK) {
        return rc;
    }
    longest = gp_attn_splits(
        gp_attn_visible(n_q - 1, n_kv, q_pos0, causal, (flags & ATTN_CAUSAL_PREV) != 0));
    gp_attest(0, 0, GP_ATTN_SPLIT_KEYS, 0, longest > 1 ? longest : 1, "cpu_attention_splitkv64");
    return gp_ok();
}
