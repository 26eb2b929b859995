/*
 * attn_pv.hip: gp_attn_pv (pv).
 * out[i, h * head_dim + c] = sum_j probs[h, i, j] * v_cache[j, g * head_dim + c],
 * g = h / (n_heads / n_kv_heads), accumulated in f32 (fmaf) over j in
 * increasing order and rounded once to the dtype.
 *
 * Work unit: (KV head g, a tile of up to PV_HT of the query heads that read
 * it, query i, a chunk of GP_WAVE channels). Warp t of the block owns head
 * slot t, lane l channel chunk * GP_WAVE + l: one f32 accumulator each, one
 * fmaf per key in increasing j, exactly the plain loop. The keys stream
 * through shared memory in tiles of PV_TJ, stored channel-major so that a
 * lane reads four keys of its channel at once: every thread of the block loads a
 * share of the next tile's V rows (read once for all heads of the group)
 * and probabilities into registers while the warps run the current tile's
 * chains, so the serial fmaf chain, not the memory latency, sets the pace.
 * The result of (h, i, c) depends on the data alone, never on n_q: decode
 * equals the prefill row at the same position bit for bit; keys with
 * probability 0 (masked) leave the accumulator unchanged. Fault gqa_modulo
 * (n_q == 1): g = h % n_kv_heads.
 */
#include "gp_hip.h"

#define PV_HT 8 /* head slots = warps per block */
#define PV_THREADS (PV_HT * GP_WAVE)
#define PV_TJ (GP_WAVE == 64 ? 128 : 256)     /* keys per tile */
#define PV_VPT (PV_TJ * GP_WAVE / PV_THREADS) /* V elements per thread per tile */
#define PV_PPT (PV_TJ * PV_HT / PV_THREADS)   /* probabilities per thread per tile */
#define PV_U 16                               /* keys per unrolled step of a chain */
#define PV_LDT (PV_TJ + 4) /* shared row stride of a channel's keys: 8/16-byte reads */

/* Four consecutive keys' values of one channel from shared memory, as f32. */
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

template <int DT>
__global__ __launch_bounds__(PV_THREADS) void attn_pv_kernel(
    const float *__restrict__ probs, const typename gp_elem<DT>::type *__restrict__ v_cache,
    typename gp_elem<DT>::type *__restrict__ out, int n_q, int n_kv, int n_heads, int n_kv_heads,
    int head_dim, int gqa_modulo) {
    typedef typename gp_elem<DT>::type S;
    __shared__ S vs[GP_WAVE * PV_LDT] __attribute__((aligned(16))); /* [channel][key] */
    __shared__ float ps[PV_HT * PV_TJ] __attribute__((aligned(16)));
    const size_t out_width = (size_t)n_heads * head_dim;
    const size_t kv_width = (size_t)n_kv_heads * head_dim;
    const int group = n_heads / n_kv_heads;
    const int htiles = (group + PV_HT - 1) / PV_HT;
    const int cchunks = (head_dim + GP_WAVE - 1) / GP_WAVE;
    const long long units = (long long)n_kv_heads * htiles * n_q * cchunks;
    const int tid = threadIdx.x;
    const int lane = tid % GP_WAVE;
    const int wave = tid / GP_WAVE;
    for (long long u = blockIdx.x; u < units; u += gridDim.x) {
        const int cc = (int)(u % cchunks);
        long long rest = u / cchunks;
        const int i = (int)(rest % n_q);
        rest /= n_q;
        const int ht = (int)(rest % htiles);
        const int g = (int)(rest / htiles);
        const int t0 = ht * PV_HT;
        const int nh = min(PV_HT, group - t0);
        const int c = cc * GP_WAVE + lane; /* this thread's channel, for loads and compute */
        const S *vbase = v_cache + (size_t)g * head_dim;

        S vr[PV_VPT];
        float pr[PV_PPT];
        /* the tile at j0 into registers: V rows j0 + tid / GP_WAVE + r * PV_HT
         * (channel c), probabilities of slot e / PV_TJ, key e % PV_TJ */
        auto load = [&](int j0) {
#pragma unroll
            for (int r = 0; r < PV_VPT; r++) {
                const int j = j0 + wave + r * PV_HT;
                vr[r] = (j < n_kv && c < head_dim) ? vbase[(size_t)j * kv_width + c] : S(0);
            }
#pragma unroll
            for (int r = 0; r < PV_PPT; r++) {
                const int e = tid + r * PV_THREADS;
                const int t = e / PV_TJ, j = j0 + e % PV_TJ;
                float p = 0.0f;
                if (t < nh && j < n_kv) {
                    const int h = gqa_modulo ? g + (t0 + t) * n_kv_heads : g * group + t0 + t;
                    p = probs[((size_t)h * n_q + i) * n_kv + j];
                }
                pr[r] = p;
            }
        };
        load(0);
        float acc = 0.0f;
        for (int j0 = 0; j0 < n_kv; j0 += PV_TJ) {
            __syncthreads(); /* the previous tile's chains are done with vs, ps */
#pragma unroll
            for (int r = 0; r < PV_VPT; r++) {
                vs[lane * PV_LDT + wave + r * PV_HT] = vr[r];
            }
#pragma unroll
            for (int r = 0; r < PV_PPT; r++) {
                ps[tid + r * PV_THREADS] = pr[r];
            }
            __syncthreads();
            if (j0 + PV_TJ < n_kv) {
                load(j0 + PV_TJ); /* in flight while the chains run */
            }
            if (wave < nh && c < head_dim) {
                const int jn = min(PV_TJ, n_kv - j0);
                const float *pt = ps + wave * PV_TJ;
                const S *vl = vs + lane * PV_LDT;
                int jj = 0;
                /* PV_U keys at a time: every shared-memory load first, then
                 * the chain's fmafs in key order */
                for (; jj + PV_U <= jn; jj += PV_U) {
                    float pu[PV_U], vu[PV_U];
#pragma unroll
                    for (int u = 0; u < PV_U; u += 4) {
                        const float4 p4 = *reinterpret_cast<const float4 *>(pt + jj + u);
                        pu[u] = p4.x;
                        pu[u + 1] = p4.y;
                        pu[u + 2] = p4.z;
                        pu[u + 3] = p4.w;
                    }
#pragma unroll
                    for (int u = 0; u < PV_U; u += 4) {
                        pv_load4<DT>(vl + jj + u, vu + u);
                    }
#pragma unroll
                    for (int u = 0; u < PV_U; u++) {
                        acc = fmaf(pu[u], vu[u], acc);
                    }
                }
                for (; jj < jn; jj++) {
                    acc = fmaf(pt[jj], gp_to_f32<DT>(vl[jj]), acc);
                }
            }
        }
        if (wave < nh && c < head_dim) {
            const int h = gqa_modulo ? g + (t0 + wave) * n_kv_heads : g * group + t0 + wave;
            out[(size_t)i * out_width + (size_t)h * head_dim + c] = gp_from_f32<DT>(acc);
        }
    }
}

template <int DT>
static void attn_pv_launch(const float *probs, const void *v_cache, void *out, int n_q, int n_kv,
                           int n_heads, int n_kv_heads, int head_dim, int gqa_modulo) {
    typedef typename gp_elem<DT>::type S;
    const int group = n_heads / n_kv_heads;
    const long long units = (long long)n_kv_heads * ((group + PV_HT - 1) / PV_HT) * n_q *
                            ((head_dim + GP_WAVE - 1) / GP_WAVE);
    void (*kernel)(const float *, const S *, S *, int, int, int, int, int, int) =
        attn_pv_kernel<DT>;
    hipLaunchKernelGGL(kernel, dim3(gp_grid(units)), dim3(PV_THREADS), 0, 0, probs,
                       (const S *)v_cache, (S *)out, n_q, n_kv, n_heads, n_kv_heads, head_dim,
                       gqa_modulo);
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
        attn_pv_launch<GP_DTYPE_F32>(probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads, head_dim,
                                     gqa_modulo);
        break;
    case GP_DTYPE_F16:
        attn_pv_launch<GP_DTYPE_F16>(probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads, head_dim,
                                     gqa_modulo);
        break;
    default:
        attn_pv_launch<GP_DTYPE_BF16>(probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads, head_dim,
                                      gqa_modulo);
        break;
    }
    if ((rc = gp_hip_check_launch("gp_attn_pv", "attn_pv_gqa_tiled")) != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1, "attn_pv_gqa_tiled");
    return GP_OK;
}
