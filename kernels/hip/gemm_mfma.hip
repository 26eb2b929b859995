/*
 * gemm_mfma.hip: the MFMA route of gp_linear, y[M,N] = x[M,K] * W[N,K]^T (+ bias),
 * as a tiled GEMM on the matrix cores (gp_mma.h).
 *
 * A block of 256 threads computes a 64x64 tile of y. K is consumed in 16-deep
 * slices staged in shared memory (zero-filled past M, N and K), each wave
 * advancing its 16x16 accumulator tiles slice by slice in increasing K: the
 * reduction order of an element is fixed by K alone, never by M, so a row
 * computed at M = 1 equals the same row at any M bit for bit. No split-K.
 * Where the device pass has no matrix-core tile for the dtype (NVIDIA f32,
 * AMD without MFMA) the same tiling runs plain f32 FMAs, k in increasing
 * order, and is attested as gemm_fma_*.
 */
#include <stdio.h>

#include "gp_mma.h"

#define GEMM_BM 64
#define GEMM_BN 64
#define GEMM_BK 16
#define GEMM_THREADS 256
#define GEMM_LDS (GEMM_BK + 8) /* shared row stride of the A/B slices, elements */
#define GEMM_LDC (GEMM_BN + 4) /* shared row stride of the f32 result tile */

template <int DT>
__global__ __launch_bounds__(GEMM_THREADS) void gemm_tile_kernel(
    const typename gp_elem<DT>::type *__restrict__ x,
    const typename gp_elem<DT>::type *__restrict__ w,
    const typename gp_elem<DT>::type *__restrict__ bias, typename gp_elem<DT>::type *__restrict__ y,
    int M, int N, int K, int flags) {
    typedef typename gp_elem<DT>::type S;
    typedef gp_mma<DT> mma;
    constexpr int waves = GEMM_THREADS / GP_WAVE;
    constexpr int tiles_n = GEMM_BN / GP_MMA_N;
    constexpr int subs = (GEMM_BM / GP_MMA_M) * tiles_n / waves; /* 16x16 tiles per wave */

    __shared__ S As[GEMM_BM * GEMM_LDS] __attribute__((aligned(32)));
    __shared__ S Bs[GEMM_BN * GEMM_LDS] __attribute__((aligned(32)));
    __shared__ float Cs[GEMM_BM * GEMM_LDC] __attribute__((aligned(32)));

    const int tid = threadIdx.x;
    const int wave = tid / GP_WAVE;
    const int m0 = blockIdx.x * GEMM_BM;
    const int n0 = blockIdx.y * GEMM_BN;

    typename mma::acc_t acc[subs];
    float facc[4][4]; /* FMA path: rows ty + 16a, columns tx + 16b */
    const int ty = tid / 16, tx = tid % 16;
    if constexpr (mma::core) {
#pragma unroll
        for (int s = 0; s < subs; s++) {
            mma::zero(acc[s]);
        }
    } else {
#pragma unroll
        for (int a = 0; a < 4; a++) {
#pragma unroll
            for (int b = 0; b < 4; b++) {
                facc[a][b] = 0.0f;
            }
        }
    }

    for (int k0 = 0; k0 < K; k0 += GEMM_BK) {
        for (int e = tid; e < GEMM_BM * GEMM_BK; e += GEMM_THREADS) {
            const int r = e / GEMM_BK, kk = e % GEMM_BK;
            const int gm = m0 + r, gk = k0 + kk;
            As[r * GEMM_LDS + kk] = (gm < M && gk < K) ? x[(size_t)gm * K + gk] : S(0);
        }
        for (int e = tid; e < GEMM_BN * GEMM_BK; e += GEMM_THREADS) {
            const int r = e / GEMM_BK, kk = e % GEMM_BK;
            const int gn = n0 + r, gk = k0 + kk;
            Bs[r * GEMM_LDS + kk] = (gn < N && gk < K) ? w[(size_t)gn * K + gk] : S(0);
        }
        __syncthreads();
        if constexpr (mma::core) {
#pragma unroll
            for (int s = 0; s < subs; s++) {
                const int t = wave + s * waves;
                const int ti = t / tiles_n, tj = t % tiles_n;
                mma::step(acc[s], As + ti * GP_MMA_M * GEMM_LDS, GEMM_LDS,
                          Bs + tj * GP_MMA_N * GEMM_LDS, GEMM_LDS);
            }
        } else {
#pragma unroll
            for (int kk = 0; kk < GEMM_BK; kk++) {
                float av[4], bv[4];
#pragma unroll
                for (int a = 0; a < 4; a++) {
                    av[a] = gp_to_f32<DT>(As[(ty + 16 * a) * GEMM_LDS + kk]);
                    bv[a] = gp_to_f32<DT>(Bs[(tx + 16 * a) * GEMM_LDS + kk]);
                }
#pragma unroll
                for (int a = 0; a < 4; a++) {
#pragma unroll
                    for (int b = 0; b < 4; b++) {
                        facc[a][b] = fmaf(av[a], bv[b], facc[a][b]);
                    }
                }
            }
        }
        __syncthreads();
    }

    if constexpr (mma::core) {
#pragma unroll
        for (int s = 0; s < subs; s++) {
            const int t = wave + s * waves;
            const int ti = t / tiles_n, tj = t % tiles_n;
            mma::store(acc[s], Cs + ti * GP_MMA_M * GEMM_LDC + tj * GP_MMA_N, GEMM_LDC);
        }
    } else {
#pragma unroll
        for (int a = 0; a < 4; a++) {
#pragma unroll
            for (int b = 0; b < 4; b++) {
                Cs[(ty + 16 * a) * GEMM_LDC + tx + 16 * b] = facc[a][b];
            }
        }
    }
    __syncthreads();

    const bool use_bias = bias != nullptr && !(flags & GP_LIN_SKIP_BIAS);
    const bool rz = (flags & GP_LIN_ROUND_TRUNC) != 0;
    for (int e = tid; e < GEMM_BM * GEMM_BN; e += GEMM_THREADS) {
        const int r = e / GEMM_BN, c = e % GEMM_BN;
        const int gm = m0 + r, gn = n0 + c;
        if (gm < M && gn < N) {
            float v = Cs[r * GEMM_LDC + c];
            if (use_bias) {
                v = v + gp_to_f32<DT>(bias[gn]);
            }
            y[(size_t)gm * N + gn] = gp_from_f32<DT>(v, rz);
        }
    }
}

template <int DT>
static int gemm_launch(const void *x, const void *w, const void *bias, void *y, int M, int N, int K,
                       int flags) {
    typedef typename gp_elem<DT>::type S;
    const dim3 grid((unsigned)((M + GEMM_BM - 1) / GEMM_BM),
                    (unsigned)((N + GEMM_BN - 1) / GEMM_BN));
    const dim3 block(GEMM_THREADS);
    void (*kernel)(const S *, const S *, const S *, S *, int, int, int, int) = gemm_tile_kernel<DT>;
    hipLaunchKernelGGL(kernel, grid, block, 0, 0, (const S *)x, (const S *)w, (const S *)bias,
                       (S *)y, M, N, K, flags);
    return GP_OK;
}

/* The name of what ran: the matrix-core instruction shape, or the FMA tile. */
static void gemm_kernel_name(int dtype, char *name, size_t cap) {
    const char *dt = gp_dtype_name(dtype);
    if (!gp_hip_matrix_cores(dtype)) {
        snprintf(name, cap, "gemm_fma_%s_%dx%dx%d", dt, GEMM_BM, GEMM_BN, GEMM_BK);
        return;
    }
#if defined(GP_AMD)
    snprintf(name, cap, "gemm_mfma_%s_16x16x%d", dt, dtype == GP_DTYPE_F32 ? 4 : 16);
#else
    snprintf(name, cap, "gemm_wmma_%s_16x16x16", dt);
#endif /* GP_AMD */
}

int gp_hip_gemm(int dtype, const void *x, const void *w, const void *bias, void *y, int M, int N,
                int K, int flags) {
    switch (dtype) {
    case GP_DTYPE_F32:
        gemm_launch<GP_DTYPE_F32>(x, w, bias, y, M, N, K, flags);
        break;
    case GP_DTYPE_F16:
        gemm_launch<GP_DTYPE_F16>(x, w, bias, y, M, N, K, flags);
        break;
    default:
        gemm_launch<GP_DTYPE_BF16>(x, w, bias, y, M, N, K, flags);
        break;
    }
    char name[GP_KERNEL_NAME_CAP];
    gemm_kernel_name(dtype, name, sizeof name);
    const int rc = gp_hip_check_launch("gp_linear", name);
    if (rc != GP_OK) {
        return rc;
    }
    gp_attest(GP_ROUTE_MFMA, GEMM_BM, GEMM_BN, GEMM_BK, 1, name);
    return GP_OK;
}
