/*
 * attention_splitkv.h: the split-KV flash-decoding device code that
 * gp_attention (attention.hip) and gp_attention_batched
 * (attention_batched.hip) share, so that a row of either is computed by the
 * same instructions in the same order: one split of one (query, head) and
 * the combine of its splits, plus the f32 workspace between them. See
 * attention.hip for the algorithm; the fixed key split is
 * GP_ATTN_SPLIT_KEYS, counted from key 0 of the query's own keys.
 */
#ifndef GP_ATTENTION_SPLITKV_H
#define GP_ATTENTION_SPLITKV_H

#include "gp_hip.h"

#define ATT_KEYS GP_ATTN_SPLIT_KEYS /* keys per split */
#define ATT_THREADS 64              /* threads per block: one per key of a split */
#define ATT_CS 32                   /* K columns staged in shared memory at a time */
#define ATT_LDK (ATT_CS + 1)        /* shared row stride of the K slab (f32) */
#define ATT_WS_CAP ((size_t)256 << 20)

enum { ATT_NO_RESCALE = 1, ATT_LSE_OFF_BY_ONE = 2, ATT_CAUSAL_PREV = 4, ATT_GQA_MODULO = 8 };

__device__ __forceinline__ float att_exp(float d) { return (float)exp((double)d); }

__device__ __forceinline__ float att_log(float l) { return (float)log((double)l); }

/* Visible keys of query i (index in the call): gp_attn_visible of gp_common. */
__device__ __forceinline__ int att_visible(int i, int n_kv, int q_pos0, int causal, int flags) {
    if (!causal) {
        return n_kv;
    }
    return (flags & ATT_CAUSAL_PREV) ? q_pos0 + i : q_pos0 + i + 1;
}

__device__ __forceinline__ int att_kv_head(int h, int n_heads, int n_kv_heads, int flags) {
    return (flags & ATT_GQA_MODULO) ? h % n_kv_heads : h / (n_heads / n_kv_heads);
}

/* One split s (keys [64s, 64s + 64) clipped to n_vis; the caller skips a
 * split with no visible key, block-uniformly) of one (query, head), by the
 * whole block of ATT_THREADS threads: partials m_s, l_s, acc_s[head_dim] to
 * part. q_row is the head's query (head_dim elements), k_head and v_head
 * the head's column of key 0 of the query's keys (row stride kv_width);
 * qs, ks and ps the block's shared scratch (GP_MAX_HEAD_DIM, ATT_KEYS *
 * ATT_LDK and ATT_KEYS floats). */
template <int DT>
__device__ __forceinline__ void
att_split_unit(const typename gp_elem<DT>::type *__restrict__ q_row,
               const typename gp_elem<DT>::type *__restrict__ k_head,
               const typename gp_elem<DT>::type *__restrict__ v_head, size_t kv_width, int head_dim,
               int s, int n_vis, float scale, float *__restrict__ part, float *qs, float *ks,
               float *ps) {
    typedef typename gp_elem<DT>::type S;
    const int tid = threadIdx.x;
    const int j0 = s * ATT_KEYS;
    const int jn = min(ATT_KEYS, n_vis - j0);
    __syncthreads(); /* the previous unit is done with qs, ks and ps */
    for (int c = tid; c < head_dim; c += ATT_THREADS) {
        qs[c] = gp_to_f32<DT>(q_row[c]);
    }
    /* scores: thread tid's key, an fmaf chain over c in increasing order */
    const S *kb = k_head + (size_t)j0 * kv_width;
    float dot = 0.0f;
    for (int c0 = 0; c0 < head_dim; c0 += ATT_CS) {
        const int w = min(ATT_CS, head_dim - c0);
        __syncthreads(); /* qs written; the previous slab consumed */
        for (int e = tid; e < jn * w; e += ATT_THREADS) {
            const int r = e / w, c = e % w;
            ks[r * ATT_LDK + c] = gp_to_f32<DT>(kb[(size_t)r * kv_width + c0 + c]);
        }
        __syncthreads();
        if (tid < jn) {
            for (int c = 0; c < w; c++) {
                dot = fmaf(qs[c0 + c], ks[tid * ATT_LDK + c], dot);
            }
        }
    }
    const float sc = tid < jn ? dot * scale : 0.0f;
    ps[tid] = sc;
    __syncthreads();
    float m = -GP_INF;
    for (int t = 0; t < jn; t++) {
        m = fmaxf(m, ps[t]);
    }
    __syncthreads(); /* every thread has read the scores */
    ps[tid] = tid < jn ? att_exp(sc - m) : 0.0f;
    __syncthreads();
    const S *vb = v_head + (size_t)j0 * kv_width;
    for (int c = tid; c < head_dim; c += ATT_THREADS) {
        float acc = 0.0f;
        for (int t = 0; t < jn; t++) {
            acc = fmaf(ps[t], gp_to_f32<DT>(vb[(size_t)t * kv_width + c]), acc);
        }
        part[2 + c] = acc;
    }
    if (tid == 0) {
        float l = 0.0f;
        for (int t = 0; t < jn; t++) {
            l += ps[t];
        }
        part[0] = m;
        part[1] = l;
    }
}

/* The combine of the ns splits at part (ns * (head_dim + 2) floats) of one
 * (query, head), by the block: out_row[head_dim] = o / l rounded once to
 * the dtype, *lse_elem = m + log(l) (lse_elem may be NULL). ns == 0 (no
 * visible key: attn_causal_prev only) gives out 0 and lse -INFINITY. */
template <int DT>
__device__ __forceinline__ void
att_combine_unit(const float *__restrict__ part, int ns, int head_dim, int flags,
                 typename gp_elem<DT>::type *__restrict__ out_row, float *lse_elem) {
    const size_t stride = (size_t)head_dim + 2;
    const int tid = threadIdx.x;
    if (ns == 0) {
        for (int c = tid; c < head_dim; c += ATT_THREADS) {
            out_row[c] = gp_from_f32<DT>(0.0f);
        }
        if (tid == 0 && lse_elem != NULL) {
            *lse_elem = -GP_INF;
        }
        return;
    }
    float m = -GP_INF;
    for (int s = 0; s < ns; s++) {
        m = fmaxf(m, part[(size_t)s * stride]);
    }
    float l = 0.0f, l_lse = 0.0f;
    for (int s = 0; s < ns; s++) {
        const float w = (flags & ATT_NO_RESCALE) ? 1.0f : att_exp(part[(size_t)s * stride] - m);
        l = fmaf(part[(size_t)s * stride + 1], w, l);
        if (!((flags & ATT_LSE_OFF_BY_ONE) && ns >= 2 && s == ns - 1)) {
            l_lse = fmaf(part[(size_t)s * stride + 1], w, l_lse);
        }
    }
    for (int c = tid; c < head_dim; c += ATT_THREADS) {
        float o = 0.0f;
        for (int s = 0; s < ns; s++) {
            const float w = (flags & ATT_NO_RESCALE) ? 1.0f : att_exp(part[(size_t)s * stride] - m);
            o = fmaf(part[(size_t)s * stride + 2 + c], w, o);
        }
        out_row[c] = gp_from_f32<DT>(o / l);
    }
    if (tid == 0 && lse_elem != NULL) {
        *lse_elem = m + att_log(l_lse);
    }
}

/* The split partials between the two kernels: one device buffer per
 * translation unit, grown on demand, never shrunk, kept for the life of the
 * process (the ABI has no unload hook). */
struct att_workspace_buf {
    float *ptr;
    size_t bytes;
};
static att_workspace_buf att_ws;

/* Grows att_ws to at least bytes; fn names the entry point in messages. */
static int att_workspace(const char *fn, size_t bytes) {
    if (bytes <= att_ws.bytes) {
        return GP_OK;
    }
    if (att_ws.ptr != NULL) {
        const hipError_t err = hipFree(att_ws.ptr);
        att_ws.ptr = NULL;
        att_ws.bytes = 0;
        if (err != hipSuccess) {
            return gp_hip_fail(fn, "hipFree (workspace)", err);
        }
    }
    void *p = NULL;
    const hipError_t err = hipMalloc(&p, bytes);
    if (err != hipSuccess) {
        (void)hipGetLastError(); /* a failed allocation is not sticky */
        return gp_hip_fail(fn, "hipMalloc (workspace)", err);
    }
    att_ws.ptr = (float *)p;
    att_ws.bytes = bytes;
    return GP_OK;
}

#endif /* GP_ATTENTION_SPLITKV_H */
