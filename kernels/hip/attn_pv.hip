/*
 * attn_pv.hip: gp_attn_pv (pv).
 * out[i, h * head_dim + c] = sum_j probs[h, i, j] * v_cache[j, g * head_dim + c],
 * g = h / (n_heads / n_kv_heads), in the header's chunked order: per chunk
 * of GP_ATTN_PV_CHUNK_KEYS keys an f32 fmaf chain over j in increasing
 * order from 0.0f, the chunk partials added in chunk order in f32, rounded
 * once to the dtype.
 *
 * Two kernels, so that a decode call (n_q = 1) has a chain per (head,
 * channel, chunk) to run in parallel rather than one per (head, channel):
 *
 *  1. attn_pv_chunk_kernel. Work unit: (KV head g, a tile of up to
 *     pv_slots() of the query heads that read it, query i, chunk t), one
 *     block of PV_THREADS threads. Thread tid owns head slot tid / (head_dim
 *     / 4) and the four channels 4 * (tid % (head_dim / 4)) .. + 3: four
 *     independent chains. The chunk's keys stream through shared memory in
 *     sub-tiles of PV_TJ: V rows in 16-byte loads (coalesced; read once for
 *     all heads of the tile, which for head_dim * group <= 4 * PV_THREADS is
 *     the whole GQA group), the tile's probabilities beside them; the next
 *     sub-tile is loaded into registers while the chains run the current
 *     one. The four partials go to the workspace as one float4.
 *  2. attn_pv_combine_kernel: one thread per (query, head, channel) adds
 *     the chunk partials in chunk order (acc = part_0, acc = acc + part_t)
 *     and rounds once.
 *
 * The workspace (n_chunks * head_dim floats per (query, head)) is one
 * device buffer kept between calls (gp_hip_workspace); queries go in row
 * batches so that it stays within PV_WS_CAP bytes (at least one query). At
 * decode, KV 32768, llama3-8b heads: 32 heads * 128 chunks * 128 channels *
 * 4 bytes = 2 MiB, written once and read once (V is 64 MiB in f16).
 *
 * The arithmetic of (h, i, c) depends on the data and the key index alone
 * (chunk boundaries at multiples of GP_ATTN_PV_CHUNK_KEYS), never on n_q,
 * the batching or the tiling: decode equals the prefill row at the same
 * position bit for bit (the header says why masked keys with p = 0 change
 * nothing). Fault gqa_modulo (n_q == 1): g = h % n_kv_heads.
 */
#include "gp_hip.h"

#define PV_CK GP_ATTN_PV_CHUNK_KEYS
#define PV_THREADS 128  /* threads per block of the chunk kernel */
#define PV_TJ 32        /* keys per sub-tile staged in shared memory */
#define PV_MAX_SLOTS 16 /* head slots per tile at most (tiny head_dim) */
#define PV_U 8          /* keys per unrolled step of a chain */
#define PV_WS_CAP ((size_t)256 << 20)
#define PV_PPT (PV_MAX_SLOTS * PV_TJ / PV_THREADS) /* probabilities per thread per sub-tile */

/* 16-byte vectors of V per thread per sub-tile: PV_TJ rows over
 * PV_THREADS / nv16 loading rows, at least 2 of them (head_dim <=
 * GP_MAX_HEAD_DIM). */
template <int DT> struct pv_vr {
    static constexpr int n = (PV_TJ + PV_THREADS / (GP_MAX_HEAD_DIM / gp_vec<DT>::n) - 1) /
                             (PV_THREADS / (GP_MAX_HEAD_DIM / gp_vec<DT>::n));
};

/* Head slots per tile: whole heads of head_dim / 4 threads each. */
__host__ __device__ __forceinline__ int pv_slots(int head_dim) {
    const int s = PV_THREADS / (head_dim / 4);
    return s < PV_MAX_SLOTS ? s : PV_MAX_SLOTS;
}

/* Four consecutive channels of one key from shared memory, as f32. */
template <int DT>
__device__ __forceinline__ void pv_load4(const typename gp_elem<DT>::type *p, float *out) {
    if constexpr (DT == GP_DTYPE_F32) {
        const float4 v = *reinterpret_cast<const float4 *>(p);
        out[0] = v.x;
        out[1] = v.y;
        out[2] = v.z;
        out[3] = v.w;
    } else {
        const uint2 v = *reinterpret_cast<const uint2 *>(p);
        out[0] = gp_to_f32<DT>((uint16_t)(v.x & 0xffffu));
        out[1] = gp_to_f32<DT>((uint16_t)(v.x >> 16));
        out[2] = gp_to_f32<DT>((uint16_t)(v.y & 0xffffu));
        out[3] = gp_to_f32<DT>((uint16_t)(v.y >> 16));
    }
}

/* Queries i0 .. i0 + n_rows - 1; ws holds n_chunks * head_dim floats per
 * (row of the batch, head). */
template <int DT>
/* PV_MIN_BLOCKS (-D, for variants): a __launch_bounds__ register cap; left
 * out by default, where the compiler's choice measured best on an H200
 * (caps of 6 and 8 blocks spill and run 40-70 % slower at KV 4096). */
#if defined(PV_MIN_BLOCKS)
#define PV_BOUNDS __launch_bounds__(PV_THREADS, PV_MIN_BLOCKS)
#else
#define PV_BOUNDS __launch_bounds__(PV_THREADS)
#endif /* PV_MIN_BLOCKS */
__global__ PV_BOUNDS void
attn_pv_chunk_kernel(const float *__restrict__ probs,
                     const typename gp_elem<DT>::type *__restrict__ v_cache, float *__restrict__ ws,
                     int i0, int n_rows, int n_chunks, int n_q, int n_kv, int n_heads,
                     int n_kv_heads, int head_dim, int gqa_modulo, int vec_ok) {
    typedef typename gp_elem<DT>::type S;
    constexpr int VEC = gp_vec<DT>::n;
    constexpr int VR = pv_vr<DT>::n;
    __shared__ S vs[PV_TJ * GP_MAX_HEAD_DIM] __attribute__((aligned(16))); /* [key][channel] */
    __shared__ float ps[PV_MAX_SLOTS * PV_TJ];                             /* [slot][key] */
    const size_t kv_width = (size_t)n_kv_heads * head_dim;
    const int group = n_heads / n_kv_heads;
    const int nvec = head_dim / 4; /* threads per head slot */
    const int spt = pv_slots(head_dim);
    const int ptiles = (group + spt - 1) / spt;
    const int nv16 = head_dim / VEC; /* 16-byte vectors per V row */
    const long long units = (long long)n_kv_heads * ptiles * n_rows * n_chunks;
    const int tid = threadIdx.x;
    /* V loads: thread tid takes vector lcol of rows lrow, lrow + rstep, ...
     * of a sub-tile (rstep * nv16 <= PV_THREADS threads load) */
    const int lcol = tid % nv16, lrow = tid / nv16, rstep = PV_THREADS / nv16;
    const bool loader = lrow < rstep;
    const int slot = tid / nvec;
    const int c = 4 * (tid % nvec);
    for (long long u = blockIdx.x; u < units; u += gridDim.x) {
        const int t = (int)(u % n_chunks);
        long long rest = u / n_chunks;
        const int il = (int)(rest % n_rows);
        rest /= n_rows;
        const int pt = (int)(rest % ptiles);
        const int g = (int)(rest / ptiles);
        const int i = i0 + il;
        const int s0 = pt * spt;
        const int nh = min(spt, group - s0);
        const bool active = slot < nh;
        const int j0 = t * PV_CK;
        const int jn = min(PV_CK, n_kv - j0);
        const S *vbase = v_cache + (size_t)j0 * kv_width + (size_t)g * head_dim;
        auto head_of = [&](int s) {
            return gqa_modulo ? g + (s0 + s) * n_kv_heads : g * group + s0 + s;
        };

        uint4 vr[VR];
        float pr[PV_PPT];
        /* sub-tile keys [jt, jt + PV_TJ) of the chunk into registers */
        auto load = [&](int jt) {
            const int rows = min(PV_TJ, jn - jt);
            const S *src = vbase + (size_t)(jt + lrow) * kv_width + lcol * VEC;
            const size_t step = (size_t)rstep * kv_width;
#pragma unroll
            for (int r = 0; r < VR; r++) {
                vr[r] = make_uint4(0u, 0u, 0u, 0u);
                if (loader && lrow + r * rstep < rows) {
                    vr[r] = gp_load_raw16<DT>(src + r * step, vec_ok);
                }
            }
#pragma unroll
            for (int r = 0; r < PV_PPT; r++) {
                const int e = tid + r * PV_THREADS;
                const int s = e / PV_TJ, jj = e % PV_TJ;
                float p = 0.0f;
                if (s < nh && jj < rows) {
                    p = probs[((size_t)head_of(s) * n_q + i) * n_kv + j0 + jt + jj];
                }
                pr[r] = p;
            }
        };
        load(0);
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int jt = 0; jt < jn; jt += PV_TJ) {
            __syncthreads(); /* the previous sub-tile (or unit) is done with vs, ps */
#pragma unroll
            for (int r = 0; r < VR; r++) {
                const int row = lrow + r * rstep;
                if (loader && row < PV_TJ) {
                    *reinterpret_cast<uint4 *>(vs + row * head_dim + lcol * VEC) = vr[r];
                }
            }
#pragma unroll
            for (int r = 0; r < PV_PPT; r++) {
                ps[tid + r * PV_THREADS] = pr[r];
            }
            __syncthreads();
            if (jt + PV_TJ < jn) {
                load(jt + PV_TJ); /* in flight while the chains run */
            }
            if (active) {
                const int rows = min(PV_TJ, jn - jt);
                const float *pp = ps + slot * PV_TJ;
                const S *vc = vs + c;
                int jj = 0;
                /* PV_U keys at a time: the shared-memory loads first, then
                 * each chain's fmafs in key order */
                for (; jj + PV_U <= rows; jj += PV_U) {
                    float vu[PV_U][4], pu[PV_U];
#pragma unroll
                    for (int k = 0; k < PV_U; k++) {
                        pv_load4<DT>(vc + (jj + k) * head_dim, vu[k]);
                        pu[k] = pp[jj + k];
                    }
#pragma unroll
                    for (int k = 0; k < PV_U; k++) {
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            acc[e] = fmaf(pu[k], vu[k][e], acc[e]);
                        }
                    }
                }
                for (; jj < rows; jj++) {
                    float v4[4];
                    pv_load4<DT>(vc + jj * head_dim, v4);
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        acc[e] = fmaf(pp[jj], v4[e], acc[e]);
                    }
                }
            }
        }
        if (active) {
            const int h = head_of(slot);
            *reinterpret_cast<float4 *>(
                ws + (((size_t)il * n_heads + h) * n_chunks + t) * head_dim + c) =
                make_float4(acc[0], acc[1], acc[2], acc[3]);
        }
    }
}

/* out rows i0 .. i0 + n_rows - 1: the chunk partials of each (query, head,
 * channel) added in chunk order, rounded once. */
template <int DT>
__global__ __launch_bounds__(GP_BLOCK) void attn_pv_combine_kernel(
    const float *__restrict__ ws, typename gp_elem<DT>::type *__restrict__ out, int i0, int n_rows,
    int n_chunks, int n_heads, int head_dim) {
    const size_t out_width = (size_t)n_heads * head_dim;
    const long long n = (long long)n_rows * (long long)out_width;
    for (long long e = (long long)blockIdx.x * GP_BLOCK + threadIdx.x; e < n;
         e += (long long)gridDim.x * GP_BLOCK) {
        const int c = (int)(e % head_dim);
        const long long rh = e / head_dim; /* il * n_heads + h */
        const float *part = ws + (size_t)rh * n_chunks * head_dim + c;
        float acc = part[0];
        for (int t = 1; t < n_chunks; t++) {
            acc = acc + part[(size_t)t * head_dim];
        }
        const int il = (int)(rh / n_heads), h = (int)(rh % n_heads);
        out[(size_t)(i0 + il) * out_width + (size_t)h * head_dim + c] = gp_from_f32<DT>(acc);
    }
}

/* The chunk partials between the two kernels (see the file comment). */
static gp_hip_workspace pv_ws;

template <int DT>
static int attn_pv_launch(const float *probs, const void *v_cache, void *out, int n_q, int n_kv,
                          int n_heads, int n_kv_heads, int head_dim, int gqa_modulo) {
    typedef typename gp_elem<DT>::type S;
    const int n_chunks = (n_kv + PV_CK - 1) / PV_CK;
    const size_t per_query = (size_t)n_heads * n_chunks * head_dim * sizeof(float);
    size_t batch = PV_WS_CAP / per_query;
    if (batch < 1) {
        batch = 1;
    }
    if (batch > (size_t)n_q) {
        batch = (size_t)n_q;
    }
    int rc = gp_hip_workspace_grow(&pv_ws, "gp_attn_pv", batch * per_query);
    if (rc != GP_OK) {
        return rc;
    }
    const int group = n_heads / n_kv_heads;
    const int spt = pv_slots(head_dim);
    const int ptiles = (group + spt - 1) / spt;
    /* V rows start at multiples of head_dim (% 8 == 0) elements: 16-byte
     * aligned wherever the cache itself is. */
    const int vec_ok = ((uintptr_t)v_cache & 15u) == 0 ? 1 : 0;
    void (*chunk)(const float *, const S *, float *, int, int, int, int, int, int, int, int, int,
                  int) = attn_pv_chunk_kernel<DT>;
    void (*combine)(const float *, S *, int, int, int, int, int) = attn_pv_combine_kernel<DT>;
    for (int i0 = 0; i0 < n_q; i0 += (int)batch) {
        const int n_rows = (int)batch < n_q - i0 ? (int)batch : n_q - i0;
        const long long units1 = (long long)n_kv_heads * ptiles * n_rows * n_chunks;
        hipLaunchKernelGGL(chunk, dim3(gp_grid(units1)), dim3(PV_THREADS), 0, 0, probs,
                           (const S *)v_cache, (float *)pv_ws.ptr, i0, n_rows, n_chunks, n_q, n_kv,
                           n_heads, n_kv_heads, head_dim, gqa_modulo, vec_ok);
        const long long elems = (long long)n_rows * n_heads * head_dim;
        hipLaunchKernelGGL(combine, dim3(gp_grid((elems + GP_BLOCK - 1) / GP_BLOCK)),
                           dim3(GP_BLOCK), 0, 0, (const float *)pv_ws.ptr, (S *)out, i0, n_rows,
                           n_chunks, n_heads, head_dim);
        if ((rc = gp_hip_check_launch("gp_attn_pv", "attn_pv_chunked")) != GP_OK) {
            return rc;
        }
    }
    return GP_OK;
}

extern "C" int gp_attn_pv(int dtype, const float *probs, const void *v_cache, void *out, int n_q,
                          int n_kv, int n_heads, int n_kv_heads, int head_dim) {
    int rc = gp_check_attn_pv(dtype, probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads, head_dim);
    if (rc != GP_OK) {
        return rc;
    }
    const int gqa_modulo = gp_fault_on(GP_FAULT_GQA_MODULO, n_q);
    switch (dtype) {
    case GP_DTYPE_F32:
        rc = attn_pv_launch<GP_DTYPE_F32>(probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads,
                                          head_dim, gqa_modulo);
        break;
    case GP_DTYPE_F16:
        rc = attn_pv_launch<GP_DTYPE_F16>(probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads,
                                          head_dim, gqa_modulo);
        break;
    default:
        rc = attn_pv_launch<GP_DTYPE_BF16>(probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads,
                                           head_dim, gqa_modulo);
        break;
    }
    if (rc != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, PV_CK, 0, (n_kv + PV_CK - 1) / PV_CK, "attn_pv_chunked");
    return GP_OK;
}
