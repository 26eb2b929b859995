/*
 * attention_splitkv.h: the split-KV flash-decoding device code that
 * gp_attention (attention.hip) and gp_attention_batched
 * (attention_batched.hip) share, so that a row of either is computed by the
 * same instructions in the same order: a unit of splits of one KV head's
 * group of query heads, the combine of one (query, head)'s splits, and the
 * f32 workspace between them. See attention.hip for the algorithm; the
 * fixed key split is GP_ATTN_SPLIT_KEYS, counted from key 0 of the query's
 * own keys.
 *
 * Unit (att_group_unit), one block of ATT_THREADS = 128 threads: one query
 * row, one KV head g, up to ATT_HPB query heads of g's group (a head
 * chunk), and ATT_SPB = 2 consecutive splits (a tile of ATT_ROWS = 128
 * keys). The K and V tiles are read from memory once for all the chunk's
 * heads (a GQA group of 4 heads shares them), with 16-byte loads, in slabs
 * of ATT_SLAB_BYTES per row held in shared memory as the storage dtype
 * (32-bit words, row stride ATT_LDW words: odd, so a thread per row reads
 * without bank conflicts). The slabs (K's, then V's) are software
 * pipelined: the next slab's loads are issued into registers before the
 * current slab is computed.
 *   scores: thread r takes key j0 + r of the tile and the chunk's heads:
 *     d[h] = fmaf(q[h][c], k[c], d[h]) for c = 0 .. head_dim-1 in order
 *     (one chain per (key, head), continued across slabs), s = d * scale;
 *   m_s: the maximum of the split's scores (a wave butterfly, then the
 *     waves of the split in order: max is exact, so only the sign of a zero
 *     maximum can depend on the order, and it cannot reach out or lse:
 *     s - (+0) == s - (-0) and m + log(l) with log(l) = +0 is +0 either
 *     way); p_j = exp(s_j - m_s) in double rounded once;
 *   l_s = sum of p_j in key order (one thread per (split, head));
 *   acc_s[c] = fmaf(p_j, v[j][c], acc_s[c]) over the split's keys in order
 *     (thread w of a split takes the channels of word w of a V slab row).
 * So every (query, head, split) partial is the operation sequence of the
 * header's contract, whatever the blocking; the partials go to the
 * workspace, (head_dim + 2) floats per (row, head, split): m_s, l_s,
 * acc_s[head_dim].
 *
 * Combine (att_combine_unit), one block per (row, head, ATT_CMB_CH
 * channels): the workspace is read by every thread into shared memory,
 * ATT_CMB_S splits at a time; the chains over the splits (l, o[c]) stay
 * one thread each, in split order.
 */
#ifndef GP_ATTENTION_SPLITKV_H
#define GP_ATTENTION_SPLITKV_H

#include "gp_hip.h"

#define ATT_KEYS GP_ATTN_SPLIT_KEYS   /* keys per split */
#define ATT_SPB 2                     /* splits per unit */
#define ATT_ROWS (ATT_SPB * ATT_KEYS) /* keys per unit: the tile's rows */
#define ATT_THREADS ATT_ROWS          /* threads per block: one per tile row */
/* __launch_bounds__ blocks per SM / CU of the split kernels: a register cap
 * (at most 128 per thread on NVIDIA at 4) that buys occupancy for the
 * memory stream. Measured on an H200 (docs/PERFORMANCE.md): 4 gave
 * 98-107 us at KV 32768 against 110-133 us uncapped, the same at KV 4096;
 * 5 and 8 spill and lose. -D override for variants. */
#if !defined(ATT_MIN_BLOCKS) && defined(GP_NVIDIA)
#define ATT_MIN_BLOCKS 4
#endif /* NVIDIA default; AMD: the compiler's choice (4 does not fit gfx942) */
#if defined(ATT_MIN_BLOCKS)
#define ATT_SPLIT_BOUNDS __launch_bounds__(ATT_THREADS, ATT_MIN_BLOCKS)
#else
#define ATT_SPLIT_BOUNDS __launch_bounds__(ATT_THREADS)
#endif /* ATT_MIN_BLOCKS */

#define ATT_HPB 4          /* query heads per unit (a float4 of q or p) */
#define ATT_SLAB_BYTES 256 /* bytes of a tile row per slab */
#define ATT_SLAB_WORDS (ATT_SLAB_BYTES / 4)
#define ATT_LDW (ATT_SLAB_WORDS + 1)                           /* shared row stride in words: odd */
#define ATT_VPT (ATT_ROWS * ATT_SLAB_BYTES / 16 / ATT_THREADS) /* 16-byte loads per thread */
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

/* The r-th query head h of KV head g's group (r < n_heads / n_kv_heads):
 * the inverse of att_kv_head, so att_kv_head(h) == g. */
__device__ __forceinline__ int att_group_head(int g, int r, int n_heads, int n_kv_heads,
                                              int flags) {
    return (flags & ATT_GQA_MODULO) ? g + r * n_kv_heads : g * (n_heads / n_kv_heads) + r;
}

/* Head chunks of ATT_HPB heads per KV head's group, and 2-split units of a
 * row with n_splits splits: the grid's factors. */
__host__ __device__ inline int att_head_chunks(int n_heads, int n_kv_heads) {
    return (n_heads / n_kv_heads + ATT_HPB - 1) / ATT_HPB;
}

__host__ __device__ inline int att_units_per_row(int n_splits) {
    return (n_splits + ATT_SPB - 1) / ATT_SPB;
}

/* Host side: both caches 16-byte aligned, so att_group_unit's 16-byte loads
 * apply (head_dim % 8 == 0 makes every KV head row whole 16-byte chunks). */
static inline int att_caches_aligned(const void *k_cache, const void *v_cache) {
    return (((uintptr_t)k_cache | (uintptr_t)v_cache) & 15u) == 0;
}

/* Storage elements per 32-bit word, and element e of a word as f32. */
template <int DT> struct att_word {
    static constexpr int n = 4 / (int)sizeof(typename gp_elem<DT>::type);
};

template <int DT> __device__ __forceinline__ float att_word_elem(uint32_t w, int e) {
    if constexpr (DT == GP_DTYPE_F32) {
        return gp_dev_bits_f32(w);
    } else {
        return gp_to_f32<DT>((uint16_t)(e == 0 ? (w & 0xffffu) : (w >> 16)));
    }
}

/* One word (att_word<DT>::n elements) at p, element by element: the path
 * for caches that are not 16-byte aligned. */
template <int DT>
__device__ __forceinline__ uint32_t att_word_load(const typename gp_elem<DT>::type *p) {
    if constexpr (DT == GP_DTYPE_F32) {
        return __float_as_uint(p[0]);
    } else {
        return (uint32_t)p[0] | ((uint32_t)p[1] << 16);
    }
}

/* The block's shared memory: the tile (K or V slab), q and p of the
 * chunk's heads as float4 (head k in component k), wave maxima, m_s. */
struct att_smem {
    uint32_t tile[ATT_ROWS * ATT_LDW];
    float4 qt[GP_MAX_HEAD_DIM];
    float4 pt[ATT_ROWS];
    float red[ATT_ROWS / GP_WAVE][ATT_HPB];
    float m[ATT_SPB][ATT_HPB];
};

__device__ __forceinline__ float att_f4(const float4 &v, int k) {
    return k == 0 ? v.x : k == 1 ? v.y : k == 2 ? v.z : v.w;
}

/* A slab row is ATT_SLAB_CHUNKS 16-byte chunks; thread t always takes chunk
 * t % ATT_SLAB_CHUNKS of rows t / ATT_SLAB_CHUNKS + e * ATT_ROW_STEP. */
#define ATT_SLAB_CHUNKS (ATT_SLAB_BYTES / 16)
#define ATT_ROW_STEP (ATT_THREADS / ATT_SLAB_CHUNKS)

/* Issues the 16-byte loads of one slab (words [0, words) of each of rows
 * tile rows, from src + row * kv_width) into regs; rows past the unit's
 * visible keys are not read. */
template <int DT>
__device__ __forceinline__ void att_slab_fetch(uint4 *regs,
                                               const typename gp_elem<DT>::type *__restrict__ src,
                                               size_t kv_width, int words, int rows) {
    const int ch = threadIdx.x % ATT_SLAB_CHUNKS, r0 = threadIdx.x / ATT_SLAB_CHUNKS;
    if (ch * 4 >= words) {
        return;
    }
    const typename gp_elem<DT>::type *p =
        src + (size_t)r0 * kv_width + (size_t)ch * (16 / sizeof(*src));
    const size_t step = (size_t)ATT_ROW_STEP * kv_width;
#pragma unroll
    for (int e = 0; e < ATT_VPT; e++) {
        if (r0 + e * ATT_ROW_STEP < rows) {
            regs[e] = *reinterpret_cast<const uint4 *>(p + (size_t)e * step);
        }
    }
}

/* Stores the slab fetched by att_slab_fetch into the tile. */
__device__ __forceinline__ void att_slab_put(const uint4 *regs, uint32_t *tile, int words,
                                             int rows) {
    const int ch = threadIdx.x % ATT_SLAB_CHUNKS, r0 = threadIdx.x / ATT_SLAB_CHUNKS;
    if (ch * 4 >= words) {
        return;
    }
#pragma unroll
    for (int e = 0; e < ATT_VPT; e++) {
        if (r0 + e * ATT_ROW_STEP < rows) {
            uint32_t *d = tile + (r0 + e * ATT_ROW_STEP) * ATT_LDW + ch * 4;
            d[0] = regs[e].x;
            d[1] = regs[e].y;
            d[2] = regs[e].z;
            d[3] = regs[e].w;
        }
    }
}

/* The unaligned path: the slab straight from memory into the tile. */
template <int DT>
__device__ __forceinline__ void att_slab_copy(const typename gp_elem<DT>::type *__restrict__ src,
                                              size_t kv_width, uint32_t *tile, int words,
                                              int rows) {
    for (int idx = threadIdx.x; idx < rows * words; idx += ATT_THREADS) {
        const int r = idx / words, w = idx % words;
        tile[r * ATT_LDW + w] =
            att_word_load<DT>(src + (size_t)r * kv_width + (size_t)w * att_word<DT>::n);
    }
}

/* One unit: query row q_row (n_heads * head_dim elements), the query
 * heads chunk * ATT_HPB .. of KV head g's group, splits ATT_SPB * pair ..
 * (the caller skips a unit whose first split has no visible key,
 * block-uniformly). k_base and v_base: key 0 of the row's keys, column 0
 * of KV head g (row stride kv_width). ws_row: the row's workspace
 * (n_heads * n_splits * (head_dim + 2) floats). vec: the caches are
 * 16-byte aligned (head_dim % 8 == 0 makes every slab row a whole number
 * of 16-byte chunks). */
template <int DT>
__device__ __forceinline__ void
att_group_unit(const typename gp_elem<DT>::type *__restrict__ q_row,
               const typename gp_elem<DT>::type *__restrict__ k_base,
               const typename gp_elem<DT>::type *__restrict__ v_base, size_t kv_width, int head_dim,
               int g, int chunk, int n_heads, int n_kv_heads, int flags, int pair, int n_vis,
               float scale, float *__restrict__ ws_row, int n_splits, bool vec, att_smem *sm) {
    typedef typename gp_elem<DT>::type S;
    constexpr int EPW = att_word<DT>::n;
    constexpr int ES = (int)sizeof(S);
    const int tid = threadIdx.x;
    const int half = tid / ATT_KEYS, lane = tid % ATT_KEYS;
    const int grp = n_heads / n_kv_heads;
    const int nh = min(ATT_HPB, grp - chunk * ATT_HPB);
    const int s0 = pair * ATT_SPB;
    const int j0 = s0 * ATT_KEYS;
    const int rows = min(ATT_ROWS, n_vis - j0);
    const int s = s0 + half;                            /* the thread's split */
    const int jn = min(ATT_KEYS, n_vis - s * ATT_KEYS); /* its keys (<= 0: none) */
    const bool row_ok = tid < rows;
    const size_t stride = (size_t)head_dim + 2;
    const int n_slabs = (head_dim * ES + ATT_SLAB_BYTES - 1) / ATT_SLAB_BYTES;
    const S *kt = k_base + (size_t)j0 * kv_width;
    const S *vt = v_base + (size_t)j0 * kv_width;

    __syncthreads(); /* the previous unit is done with the shared memory */
    for (int c = tid; c < head_dim; c += ATT_THREADS) {
        float v[ATT_HPB];
#pragma unroll
        for (int k = 0; k < ATT_HPB; k++) {
            const int h = att_group_head(g, chunk * ATT_HPB + k, n_heads, n_kv_heads, flags);
            v[k] = k < nh ? gp_to_f32<DT>(q_row[(size_t)h * head_dim + c]) : 0.0f;
        }
        sm->qt[c] = make_float4(v[0], v[1], v[2], v[3]);
    }
    uint4 regs[ATT_VPT];
    const int words0 = min(ATT_SLAB_WORDS, head_dim * ES / 4);
    if (vec) {
        att_slab_fetch<DT>(regs, kt, kv_width, words0, rows);
    }
    float dot[ATT_HPB] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int step = 0; step < 2 * n_slabs; step++) {
        const bool is_v = step >= n_slabs;
        const int slab = is_v ? step - n_slabs : step;
        const int w0 = slab * ATT_SLAB_WORDS; /* the slab's first word of a row */
        const int words = min(ATT_SLAB_WORDS, head_dim * ES / 4 - w0);
        __syncthreads(); /* the tile's previous slab is consumed */
        if (vec) {
            att_slab_put(regs, sm->tile, words, rows);
        } else {
            att_slab_copy<DT>((is_v ? vt : kt) + (size_t)w0 * EPW, kv_width, sm->tile, words, rows);
        }
        __syncthreads();
        if (vec && step + 1 < 2 * n_slabs) {
            /* the next slab's loads are in flight while this one is used */
            const bool nv = step + 1 >= n_slabs;
            const int nw0 = (nv ? step + 1 - n_slabs : step + 1) * ATT_SLAB_WORDS;
            att_slab_fetch<DT>(regs, (nv ? vt : kt) + (size_t)nw0 * EPW, kv_width,
                               min(ATT_SLAB_WORDS, head_dim * ES / 4 - nw0), rows);
        }
        if (!is_v) {
            if (row_ok) {
                const uint32_t *kr = sm->tile + tid * ATT_LDW;
#pragma unroll 4
                for (int w = 0; w < words; w++) {
                    const uint32_t kw = kr[w];
#pragma unroll
                    for (int e = 0; e < EPW; e++) {
                        const float kv = att_word_elem<DT>(kw, e);
                        const float4 q4 = sm->qt[(w0 + w) * EPW + e];
                        dot[0] = fmaf(q4.x, kv, dot[0]);
                        dot[1] = fmaf(q4.y, kv, dot[1]);
                        dot[2] = fmaf(q4.z, kv, dot[2]);
                        dot[3] = fmaf(q4.w, kv, dot[3]);
                    }
                }
            }
            if (slab == n_slabs - 1) {
                /* softmax of the split (block-uniform: every thread comes) */
                float sc[ATT_HPB], mx[ATT_HPB];
#pragma unroll
                for (int k = 0; k < ATT_HPB; k++) {
                    sc[k] = dot[k] * scale;
                    mx[k] = gp_wave_max(row_ok ? fmaxf(-GP_INF, sc[k]) : -GP_INF);
                    if (tid % GP_WAVE == 0) {
                        sm->red[tid / GP_WAVE][k] = mx[k];
                    }
                }
                __syncthreads();
                float p[ATT_HPB];
#pragma unroll
                for (int k = 0; k < ATT_HPB; k++) {
                    float m = -GP_INF;
                    for (int w = 0; w < ATT_KEYS / GP_WAVE; w++) {
                        m = fmaxf(m, sm->red[half * (ATT_KEYS / GP_WAVE) + w][k]);
                    }
                    p[k] = row_ok ? att_exp(sc[k] - m) : 0.0f;
                    if (lane == 0) {
                        sm->m[half][k] = m;
                    }
                }
                sm->pt[tid] = make_float4(p[0], p[1], p[2], p[3]);
                __syncthreads(); /* p is in pt for the V slabs and l_s */
            }
        } else if (jn > 0 && lane < words) {
            /* acc_s of word `lane` of the slab's rows: its EPW channels */
            float acc[EPW][ATT_HPB];
#pragma unroll
            for (int e = 0; e < EPW; e++) {
#pragma unroll
                for (int k = 0; k < ATT_HPB; k++) {
                    acc[e][k] = 0.0f;
                }
            }
            const uint32_t *vc = sm->tile + half * ATT_KEYS * ATT_LDW + lane;
            const float4 *pc = sm->pt + half * ATT_KEYS;
#pragma unroll 4
            for (int t = 0; t < jn; t++) {
                const uint32_t vw = vc[t * ATT_LDW];
                const float4 p4 = pc[t];
#pragma unroll
                for (int e = 0; e < EPW; e++) {
                    const float v = att_word_elem<DT>(vw, e);
                    acc[e][0] = fmaf(p4.x, v, acc[e][0]);
                    acc[e][1] = fmaf(p4.y, v, acc[e][1]);
                    acc[e][2] = fmaf(p4.z, v, acc[e][2]);
                    acc[e][3] = fmaf(p4.w, v, acc[e][3]);
                }
            }
#pragma unroll
            for (int k = 0; k < ATT_HPB; k++) {
                if (k < nh) {
                    const int h =
                        att_group_head(g, chunk * ATT_HPB + k, n_heads, n_kv_heads, flags);
                    float *acc_out = ws_row + ((size_t)h * n_splits + s) * stride + 2 +
                                     (size_t)(w0 + lane) * EPW;
#pragma unroll
                    for (int e = 0; e < EPW; e++) {
                        acc_out[e] = acc[e][k];
                    }
                }
            }
        }
    }
    /* l_s of (split s0 + hs, head k): the p in key order; last, so that it
     * overlaps the other threads' acc_s instead of holding up a barrier */
    if (tid < ATT_SPB * ATT_HPB) {
        const int hs = tid / ATT_HPB, k = tid % ATT_HPB;
        const int js = min(ATT_KEYS, n_vis - (s0 + hs) * ATT_KEYS);
        if (k < nh && js > 0) {
            float l = 0.0f;
            for (int t = 0; t < js; t++) {
                l += att_f4(sm->pt[hs * ATT_KEYS + t], k);
            }
            const int h = att_group_head(g, chunk * ATT_HPB + k, n_heads, n_kv_heads, flags);
            float *part = ws_row + ((size_t)h * n_splits + s0 + hs) * stride;
            part[0] = sm->m[hs][k];
            part[1] = l;
        }
    }
}

/* The combine: a block of ATT_THREADS threads per (query, head, group of
 * ATT_CMB_CH channels); the workspace is read ATT_CMB_S splits at a time
 * into shared memory by every thread (many loads in flight), then summed
 * in split order by one thread per channel. */
#define ATT_CMB_CH 32
#define ATT_CMB_S 128
#define ATT_CMB_LPT (ATT_CMB_S * ATT_CMB_CH / ATT_THREADS) /* loads per thread per batch */

__host__ __device__ inline int att_cmb_groups(int head_dim) {
    return (head_dim + ATT_CMB_CH - 1) / ATT_CMB_CH;
}

struct att_cmb_smem {
    float acc[ATT_CMB_S][ATT_CMB_CH + 1]; /* acc_s[c0 + c] of a batch of splits */
    float w[ATT_CMB_S];                   /* w_s */
    float l[ATT_CMB_S];                   /* l_s */
    float red[ATT_THREADS / GP_WAVE];
    float ll[2];
};

/* The combine of the ns splits at part (ns * (head_dim + 2) floats) of one
 * (query, head), channels c0 .. c0 + ATT_CMB_CH - 1, by the block:
 * out_row[c] = o[c] / l rounded once to the dtype, and *lse_elem = m +
 * log(l) where lse_elem is not NULL (the caller passes it to one channel
 * group). ns == 0 (no visible key: attn_causal_prev only) gives out 0 and
 * lse -INFINITY. Arithmetic: m = the maximum of the m_s (a block
 * reduction: max is exact, and the m_s are never NaN (fmaxf(-INF, s)), so
 * only the sign of a zero maximum can depend on the order, which reaches
 * neither w_s = exp(m_s - m) nor m + log(l)); w_s = exp(m_s - m) once per
 * split; l (and lse's l) = fmaf chains over the splits in order (one
 * thread; every channel group computes the same l); o[c] = fmaf chain over
 * the splits in order (thread c). */
template <int DT>
__device__ __forceinline__ void att_combine_unit(const float *__restrict__ part, int ns,
                                                 int head_dim, int c0, int flags,
                                                 typename gp_elem<DT>::type *__restrict__ out_row,
                                                 float *lse_elem, att_cmb_smem *sm) {
    const size_t stride = (size_t)head_dim + 2;
    const int tid = threadIdx.x;
    const int cw = min(ATT_CMB_CH, head_dim - c0); /* the group's channels */
    if (ns == 0) {
        if (tid < cw) {
            out_row[c0 + tid] = gp_from_f32<DT>(0.0f);
        }
        if (tid == 0 && lse_elem != NULL) {
            *lse_elem = -GP_INF;
        }
        return;
    }
    float m = -GP_INF;
    for (int s = tid; s < ns; s += ATT_THREADS) {
        m = fmaxf(m, part[(size_t)s * stride]);
    }
    m = gp_wave_max(m);
    __syncthreads(); /* the previous unit is done with the shared memory */
    if (tid % GP_WAVE == 0) {
        sm->red[tid / GP_WAVE] = m;
    }
    __syncthreads();
    m = sm->red[0];
    for (int w = 1; w < ATT_THREADS / GP_WAVE; w++) {
        m = fmaxf(m, sm->red[w]);
    }
    float o = 0.0f, l = 0.0f, l_lse = 0.0f;
    const int lc = tid % ATT_CMB_CH, lr = tid / ATT_CMB_CH; /* the thread's loads */
    for (int sb = 0; sb < ns; sb += ATT_CMB_S) {
        const int cnt = min(ATT_CMB_S, ns - sb);
        __syncthreads(); /* the previous batch is consumed */
        if (tid < cnt) {
            const float *ps = part + (size_t)(sb + tid) * stride;
            sm->w[tid] = (flags & ATT_NO_RESCALE) ? 1.0f : att_exp(ps[0] - m);
            sm->l[tid] = ps[1];
        }
        if (lc < cw) {
            const float *pc = part + (size_t)sb * stride + 2 + c0 + lc;
#pragma unroll
            for (int k = 0; k < ATT_CMB_LPT; k++) {
                const int t = lr + k * (ATT_THREADS / ATT_CMB_CH);
                if (t < cnt) {
                    sm->acc[t][lc] = pc[(size_t)t * stride];
                }
            }
        }
        __syncthreads();
        if (tid < cw) {
            for (int t = 0; t < cnt; t++) {
                o = fmaf(sm->acc[t][tid], sm->w[t], o);
            }
        } else if (tid == ATT_CMB_CH) {
            for (int t = 0; t < cnt; t++) {
                const int s = sb + t;
                l = fmaf(sm->l[t], sm->w[t], l);
                if (!((flags & ATT_LSE_OFF_BY_ONE) && ns >= 2 && s == ns - 1)) {
                    l_lse = fmaf(sm->l[t], sm->w[t], l_lse);
                }
            }
        }
    }
    if (tid == ATT_CMB_CH) {
        sm->ll[0] = l;
        sm->ll[1] = l_lse;
    }
    __syncthreads();
    if (tid < cw) {
        out_row[c0 + tid] = gp_from_f32<DT>(o / sm->ll[0]);
    }
    if (tid == 0 && lse_elem != NULL) {
        *lse_elem = m + att_log(sm->ll[1]);
    }
}

/* The split partials between the two kernels (gp_hip_workspace: grown on
 * demand, kept), one per translation unit. */
static gp_hip_workspace att_ws;

#endif /* GP_ATTENTION_SPLITKV_H */
