/*
 * gemv_valu.hip: the VALU route of gp_linear, a skinny GEMV on the vector
 * units: y[m, n] = dot(x[m, :], W[n, :]) (+ bias[n]).
 *
 * Work split: one wave (64-lane AMD wavefront, 32-lane NVIDIA warp) per K
 * split of GEMV_ROWS consecutive outputs; a block of GEMV_WAVES waves covers
 * (GEMV_WAVES / split_k) * GEMV_ROWS outputs, the split_k waves of an output
 * side by side. split_k follows the header's policy (gp_valu_split_k): split
 * s reduces K elements [s * (K / split_k), (s + 1) * (K / split_k)), the last
 * split also takes the K % split_k tail.
 *
 * Arithmetic order of one output (n, split s), the same for every geometry:
 * lane l owns the 16-byte chunks l, l + wave, l + 2 * wave, ... of the split
 * (4 f32 or 8 f16/bf16 elements each) and accumulates them in one f32
 * accumulator with fmaf, element by element in increasing k; the lanes are
 * reduced by an xor butterfly; the split partials are summed in order s = 0,
 * 1, ... by one thread (no atomics); the bias is added last. A wave's
 * GEMV_ROWS outputs share the loads of x but each has its own accumulator,
 * advanced by the same sequence, so the interleaving of rows changes no
 * result.
 *
 * Bytes in flight (decode is memory bound): each lane loads GEMV_UNROLL
 * chunks of x and of each of its GEMV_ROWS rows of W as raw 16-byte words
 * before converting the first, and with GEMV_PREFETCH the next step's loads
 * are issued before the current step is used. After the whole steps one
 * step of the lane's remaining whole chunks (fewer than GEMV_UNROLL) is
 * loaded together; a last partial chunk, or every chunk where x or a row of
 * W is not 16-byte aligned, goes element by element. Load paths move the same
 * values: they change nothing in the arithmetic.
 *
 * Why a row's result never depends on M: the geometry (GEMV_* below, split_k
 * from N and K) is fixed at build time or by the shape, never by M; rows of
 * x are independent (the grid's y dimension and the m loop only pick which
 * block computes a row). Decode faults arrive as flags (linear.hip):
 * gemv_f16_acc rounds every accumulation to f16 (a separate kernel
 * instantiation, so the clean kernel has no branch per element), splitk_drop_tail
 * drops the last split's K % split_k tail, gemv_skip_last_k_tile clips every
 * split at gp_fault_k_keep(K).
 */
#include <stdio.h>
#include <string.h>

#include "gp_hip.h"

/* The geometry, fixed at build time (never chosen by M: see above). Each is
 * a -D override on the compiler's command line, so that one build can try a
 * variant (scripts/gpu-gemv-variants.sh). */
#ifndef GEMV_WAVES
#define GEMV_WAVES 4 /* waves per block */
#endif               /* GEMV_WAVES */
#ifndef GEMV_ROWS
#define GEMV_ROWS 1 /* outputs (rows of W) per wave, sharing the loads of x */
#endif              /* GEMV_ROWS */
#ifndef GEMV_UNROLL
#define GEMV_UNROLL 4 /* 16-byte chunks per lane and row loaded before use */
#endif                /* GEMV_UNROLL */
#ifndef GEMV_PREFETCH
#define GEMV_PREFETCH 0 /* 1: the next step's chunks are loaded before this step is used */
#endif                  /* GEMV_PREFETCH */
#ifndef GEMV_MIN_BLOCKS
#define GEMV_MIN_BLOCKS 1 /* __launch_bounds__ blocks per SM / CU (register cap) */
#endif                    /* GEMV_MIN_BLOCKS */
#define GEMV_THREADS (GEMV_WAVES * GP_WAVE)

static_assert(GEMV_WAVES >= 1 && GEMV_WAVES % GP_VALU_SPLIT_K == 0 && GEMV_THREADS <= 1024,
              "GEMV_WAVES: a multiple of GP_VALU_SPLIT_K (an output's split waves share a "
              "block), at most 1024 threads");
static_assert(GEMV_ROWS >= 1 && GEMV_ROWS <= 8, "GEMV_ROWS: 1 to 8 rows of W per wave");
static_assert(GEMV_UNROLL >= 1 && GEMV_UNROLL <= 16, "GEMV_UNROLL: 1 to 16 chunks per step");
static_assert(GEMV_PREFETCH == 0 || GEMV_PREFETCH == 1, "GEMV_PREFETCH: 0 or 1");
static_assert(GEMV_MIN_BLOCKS >= 1 && GEMV_MIN_BLOCKS * GEMV_THREADS <= 2048,
              "GEMV_MIN_BLOCKS: at least 1, at most 2048 threads per SM / CU");

/* A lane's chunks of one step: x, and the same chunks of each of its rows. */
struct gemv_step {
    uint4 x[GEMV_UNROLL];
    uint4 w[GEMV_UNROLL][GEMV_ROWS];
};

/* One accumulation: fmaf, rounded to f16 under the gemv_f16_acc fault. */
template <bool F16ACC> __device__ __forceinline__ float gemv_fma(float a, float b, float acc) {
    acc = fmaf(a, b, acc);
    if constexpr (F16ACC) {
        acc = gp_round_f16(acc);
    }
    return acc;
}

/* Loads the chunk at element at (16-byte aligned in x and every row) as
 * raw bits into slot u of a step. */
template <int DT>
__device__ __forceinline__ void gemv_load(const typename gp_elem<DT>::type *xr,
                                          const typename gp_elem<DT>::type *const (&wr)[GEMV_ROWS],
                                          int at, int u, gemv_step &b) {
    b.x[u] = *reinterpret_cast<const uint4 *>(xr + at);
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) {
        b.w[u][r] = *reinterpret_cast<const uint4 *>(wr[r] + at);
    }
}

/* Accumulates chunk u of a step into each row's accumulator, element by
 * element in increasing k (gp_load_vec16 on the registers: the one home of
 * the 16-byte unpacking). */
template <int DT, bool F16ACC>
__device__ __forceinline__ void gemv_use(const gemv_step &b, int u, float (&acc)[GEMV_ROWS]) {
    typedef typename gp_elem<DT>::type S;
    constexpr int vec = gp_vec<DT>::n;
    float xv[vec];
    gp_load_vec16<DT>(reinterpret_cast<const S *>(&b.x[u]), xv);
#pragma unroll
    for (int r = 0; r < GEMV_ROWS; r++) {
        float wv[vec];
        gp_load_vec16<DT>(reinterpret_cast<const S *>(&b.w[u][r]), wv);
#pragma unroll
        for (int j = 0; j < vec; j++) {
            acc[r] = gemv_fma<F16ACC>(xv[j], wv[j], acc[r]);
        }
    }
}

template <int DT, bool F16ACC>
__global__ __launch_bounds__(GEMV_THREADS, GEMV_MIN_BLOCKS) void gemv_splitk_kernel(
    const typename gp_elem<DT>::type *__restrict__ x,
    const typename gp_elem<DT>::type *__restrict__ w,
    const typename gp_elem<DT>::type *__restrict__ bias, typename gp_elem<DT>::type *__restrict__ y,
    int M, int N, int K, int split_k, int flags, int k_keep) {
    typedef typename gp_elem<DT>::type S;
    constexpr int vec = gp_vec<DT>::n;
    constexpr int stride = GP_WAVE * vec; /* elements between a lane's chunks */
    constexpr int span = GEMV_UNROLL * stride;
    __shared__ float part[GEMV_WAVES][GEMV_ROWS];

    const int lane = threadIdx.x % GP_WAVE;
    const int wave = threadIdx.x / GP_WAVE;
    const int outs = GEMV_WAVES / split_k * GEMV_ROWS; /* outputs per block */
    const int s = wave % split_k;
    const int n0 = blockIdx.x * outs + wave / split_k * GEMV_ROWS; /* the wave's first output */

    /* Split s covers [k0, k1). */
    const int chunk = K / split_k;
    const int k0 = s * chunk;
    int k1 = k0 + chunk;
    if (s == split_k - 1 && !(flags & GP_LIN_DROP_TAIL)) {
        k1 = K;
    }
    if (flags & GP_LIN_SKIP_K_TILE) { /* gemv_skip_last_k_tile: stop at k_keep */
        k1 = min(k1, k_keep);
    }

    for (int m = blockIdx.y; m < M; m += gridDim.y) { /* uniform over the block */
        float acc[GEMV_ROWS];
#pragma unroll
        for (int r = 0; r < GEMV_ROWS; r++) {
            acc[r] = 0.0f;
        }
        if (n0 < N) { /* uniform over the wave */
            const S *xr = x + (size_t)m * K;
            /* Rows past N repeat row N - 1 (loaded, never stored). */
            const S *wr[GEMV_ROWS];
            int c = k0 + lane * vec;
            /* The same for every lane: its chunks are 16-byte multiples apart. */
            bool aligned = gp_aligned16(xr + c);
#pragma unroll
            for (int r = 0; r < GEMV_ROWS; r++) {
                wr[r] = w + (size_t)min(n0 + r, N - 1) * K;
                aligned = aligned && gp_aligned16(wr[r] + c);
            }
            if (aligned) {
                /* Whole steps: GEMV_UNROLL whole chunks of this lane from c. */
#if GEMV_PREFETCH
                if (c + span - stride + vec <= k1) {
                    gemv_step cur;
#pragma unroll
                    for (int u = 0; u < GEMV_UNROLL; u++) {
                        gemv_load<DT>(xr, wr, c + u * stride, u, cur);
                    }
                    for (;;) {
                        const int cn = c + span;
                        const bool more = cn + span - stride + vec <= k1;
                        gemv_step next;
                        if (more) {
#pragma unroll
                            for (int u = 0; u < GEMV_UNROLL; u++) {
                                gemv_load<DT>(xr, wr, cn + u * stride, u, next);
                            }
                        }
#pragma unroll
                        for (int u = 0; u < GEMV_UNROLL; u++) {
                            gemv_use<DT, F16ACC>(cur, u, acc);
                        }
                        c = cn;
                        if (!more) {
                            break;
                        }
                        cur = next;
                    }
                }
#else
                for (; c + span - stride + vec <= k1; c += span) {
                    gemv_step cur;
#pragma unroll
                    for (int u = 0; u < GEMV_UNROLL; u++) {
                        gemv_load<DT>(xr, wr, c + u * stride, u, cur);
                    }
#pragma unroll
                    for (int u = 0; u < GEMV_UNROLL; u++) {
                        gemv_use<DT, F16ACC>(cur, u, acc);
                    }
                }
#endif /* GEMV_PREFETCH */
                /* The lane's remaining whole chunks (fewer than GEMV_UNROLL),
                 * all loaded before the first is used; slots past them
                 * reload the last one (no branch around a load) and are
                 * not used. */
                const int whole = c + vec <= k1 ? (k1 - c - vec) / stride + 1 : 0;
                if (GEMV_UNROLL > 1 && whole > 0) {
                    gemv_step last;
#pragma unroll
                    for (int u = 0; u < GEMV_UNROLL - 1; u++) {
                        gemv_load<DT>(xr, wr, c + min(u, whole - 1) * stride, u, last);
                    }
#pragma unroll
                    for (int u = 0; u < GEMV_UNROLL - 1; u++) {
                        if (u < whole) {
                            gemv_use<DT, F16ACC>(last, u, acc);
                        }
                    }
                    c += whole * stride;
                }
            }
            /* Element by element: a last partial chunk, or all of an
             * unaligned row. */
            for (; c < k1; c += stride) {
                const int cnt = min(vec, k1 - c);
                float xv[vec];
#pragma unroll
                for (int j = 0; j < vec; j++) {
                    xv[j] = j < cnt ? gp_to_f32<DT>(xr[c + j]) : 0.0f;
                }
#pragma unroll
                for (int r = 0; r < GEMV_ROWS; r++) {
#pragma unroll
                    for (int j = 0; j < vec; j++) {
                        if (j < cnt) {
                            acc[r] = gemv_fma<F16ACC>(xv[j], gp_to_f32<DT>(wr[r][c + j]), acc[r]);
                        }
                    }
                }
            }
        }
        /* Butterfly over the whole wave (all lanes take part), per row. */
#pragma unroll
        for (int off = GP_WAVE / 2; off > 0; off >>= 1) {
#pragma unroll
            for (int r = 0; r < GEMV_ROWS; r++) {
                acc[r] += __shfl_xor(acc[r], off);
                if constexpr (F16ACC) {
                    acc[r] = gp_round_f16(acc[r]);
                }
            }
        }
        if (lane == 0) {
#pragma unroll
            for (int r = 0; r < GEMV_ROWS; r++) {
                part[wave][r] = acc[r];
            }
        }
        __syncthreads();
        if ((int)threadIdx.x < outs) {
            const int o =
                threadIdx.x; /* output o of the block: group o / GEMV_ROWS, row o % GEMV_ROWS */
            const int on = blockIdx.x * outs + o;
            const int g = o / GEMV_ROWS, r = o % GEMV_ROWS;
            if (on < N) {
                float sum = part[g * split_k][r];
                for (int t = 1; t < split_k; t++) {
                    sum += part[g * split_k + t][r];
                    if constexpr (F16ACC) {
                        sum = gp_round_f16(sum);
                    }
                }
                if (bias != nullptr && !(flags & GP_LIN_SKIP_BIAS)) {
                    sum = sum + gp_to_f32<DT>(bias[on]);
                }
                y[(size_t)m * N + on] = gp_from_f32<DT>(sum, (flags & GP_LIN_ROUND_TRUNC) != 0);
            }
        }
        __syncthreads();
    }
}

template <int DT>
static void gemv_launch(const void *x, const void *w, const void *bias, void *y, int M, int N,
                        int K, int split_k, int flags) {
    typedef typename gp_elem<DT>::type S;
    const int outs = GEMV_WAVES / split_k * GEMV_ROWS;
    const dim3 grid((unsigned)((N + outs - 1) / outs), gp_grid(M));
    const dim3 block(GEMV_THREADS);
    void (*kernel)(const S *, const S *, const S *, S *, int, int, int, int, int, int) =
        (flags & GP_LIN_F16_ACC) ? gemv_splitk_kernel<DT, true> : gemv_splitk_kernel<DT, false>;
    hipLaunchKernelGGL(kernel, grid, block, 0, 0, (const S *)x, (const S *)w, (const S *)bias,
                       (S *)y, M, N, K, split_k, flags, gp_fault_k_keep(K));
}

int gp_hip_gemv(int dtype, const void *x, const void *w, const void *bias, void *y, int M, int N,
                int K, int flags) {
    const int split_k = gp_valu_split_k(N, K);
    switch (dtype) {
    case GP_DTYPE_F32:
        gemv_launch<GP_DTYPE_F32>(x, w, bias, y, M, N, K, split_k, flags);
        break;
    case GP_DTYPE_F16:
        gemv_launch<GP_DTYPE_F16>(x, w, bias, y, M, N, K, split_k, flags);
        break;
    default:
        gemv_launch<GP_DTYPE_BF16>(x, w, bias, y, M, N, K, split_k, flags);
        break;
    }
    /* The geometry in the name: w<waves>r<rows>u<unroll>, p with prefetch,
     * b<n> where __launch_bounds__ asks for n blocks. */
    char name[GP_KERNEL_NAME_CAP];
    snprintf(name, sizeof name, "gemv_%s_splitk%d_w%dr%du%d%s", GP_WAVE_NAME, split_k, GEMV_WAVES,
             GEMV_ROWS, GEMV_UNROLL, GEMV_PREFETCH ? "p" : "");
    if (GEMV_MIN_BLOCKS != 1) {
        const size_t len = strlen(name);
        snprintf(name + len, sizeof name - len, "_b%d", GEMV_MIN_BLOCKS);
    }
    const int rc = gp_hip_check_launch("gp_linear", name);
    if (rc != GP_OK) {
        return rc;
    }
    gp_attest(GP_ROUTE_VALU, 0, 0, 0, split_k, name);
    return GP_OK;
}
