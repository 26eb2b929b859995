/*
 * gemm_mfma.hip: the MFMA route of gp_linear, y[M,N] = x[M,K] * W[N,K]^T (+ bias),
 * as a tiled GEMM on the matrix cores (gp_mma.h).
 *
 * By default a block of 256 threads computes a 128x128 tile of y; the waves
 * split it 2 x (waves / 2), each wave owning a 64x32 (NVIDIA, 8 warps) or
 * 64x64 (AMD, 4 waves) sub-tile of 16x16 accumulators. K is consumed in
 * stages of GEMM_BK (64 bytes of K: 32 f16/bf16 or 16 f32 elements) staged
 * in shared memory through a GP_PIPE_STAGES-deep copy pipeline (cp.async on
 * NVIDIA), and each stage in 16-deep matrix-instruction slices. The tile
 * (GEMM_BM, GEMM_BN, GEMM_ROW_BYTES, GEMM_WAVES_M, GP_PIPE_STAGES,
 * GEMM_MIN_BLOCKS) is a build-time -D choice (static_asserts reject
 * inconsistent ones); the kernel's name reports it.
 *
 * Why a row's result does not depend on M (decode M = 1 equals prefill bit
 * for bit): the tile shape, the pipeline and the instruction sequence are
 * fixed at build time, never chosen by M; there is no split-K; every output
 * element is one f32 accumulator advanced slice by slice in increasing K
 * (stage after stage, slice after slice inside a stage), by an instruction
 * whose internal order does not depend on the element's position in the
 * tile. Shared memory is zero-filled past M, N and K (K's padding depends on
 * K alone; padded rows and columns are never stored). Loads take one of two
 * paths - 16-byte chunks (predicated per chunk) when K's rows are 16-byte
 * multiples and x, W are 16-byte aligned, else element by element - and
 * both put exactly the same values in shared memory before the same MMA
 * sequence runs, so the path (which depends on pointers, not on M) cannot
 * change a result either.
 *
 * Where the device pass has no matrix-core tile for the dtype (NVIDIA f32,
 * AMD without MFMA) the same tiling runs plain f32 FMAs, k in increasing
 * order, and is attested as gemm_fma_*.
 *
 * Hopper (CUDA_ARCH=sm_90a, GP_WGMMA): f16 and bf16 run gemm_wgmma_kernel
 * instead, two warpgroups issuing wgmma.mma_async m64nNk16 from 128-byte
 * swizzled shared tiles (gp_mma.h) fed by the same loader and cp.async
 * pipeline, 64 deep per stage. Its tile's N (128 or 256) follows the
 * weight's width N, never M; within one projection every call runs the
 * same kernel, and each output element still advances one f32 accumulator
 * through 16-deep slices in increasing K, so the argument above holds
 * unchanged (measured: 47-63 % of cuBLAS at M >= 512, docs/PERFORMANCE.md).
 */
#include <stdio.h>

#include "gp_mma.h"

/* The tile, fixed at build time (never chosen by M: see above). Each is a
 * -D override on the compiler's command line, so that one build can try a
 * variant (scripts/gpu-gemm-variants.sh); the defaults are the shipped tile. */
#ifndef GEMM_BM
#define GEMM_BM 128 /* block tile rows (M) */
#endif              /* GEMM_BM */
#ifndef GEMM_BN
#define GEMM_BN 128 /* block tile columns (N) */
#endif              /* GEMM_BN */
#ifndef GEMM_THREADS
#define GEMM_THREADS 256 /* the FMA path maps them 16 x 16 */
#endif                   /* GEMM_THREADS */
/* Bytes of K per shared row and stage (GEMM_BK elements). NVIDIA: 128 (BK
 * 64 at 16 bits) with 4 stages (gp_mma.h), the fastest of the variants
 * measured on an H200 at M = 512 and 2048 (docs/PERFORMANCE.md); AMD: 64,
 * because two 128-byte stages of a 128 x 128 tile do not fit a CU's 64 KiB. */
#ifndef GEMM_ROW_BYTES
#if defined(GP_NVIDIA)
#define GEMM_ROW_BYTES 128
#else
#define GEMM_ROW_BYTES 64
#endif /* GP_NVIDIA */
#endif /* GEMM_ROW_BYTES */
#ifndef GEMM_WAVES_M
#define GEMM_WAVES_M 2 /* waves along M; the rest split N */
#endif                 /* GEMM_WAVES_M */
#ifndef GEMM_MIN_BLOCKS
#define GEMM_MIN_BLOCKS 1      /* __launch_bounds__ blocks per SM / CU (register cap) */
#endif                         /* GEMM_MIN_BLOCKS */
#define GEMM_LDC_PAD 4         /* f32 result rows padded by 16 bytes (wmma: ldc % 4 == 0) */
#define GEMM_SMEM_STATIC 49152 /* above this, dynamic shared memory must be opted in */
#if defined(GP_NVIDIA)
#define GEMM_SMEM_MAX 232448 /* 227 KiB: the most one block may opt in to (sm_90) */
#else
#define GEMM_SMEM_MAX 65536 /* a CU's LDS (gfx90a, gfx942) */
#endif                      /* GP_NVIDIA */

/* The tile of a dtype: the configured one, except f32 on NVIDIA, which has
 * no matrix-core tile (gp_mma.h) and keeps the default shape for its FMA
 * path, whose threads hold (BM / 16) x (BN / 16) accumulators each. */
template <int DT> struct gemm_shape {
    static constexpr int bm = GEMM_BM, bn = GEMM_BN, threads = GEMM_THREADS;
    static constexpr int row_bytes = GEMM_ROW_BYTES, waves_m = GEMM_WAVES_M;
    static constexpr int stages = GP_PIPE_STAGES, min_blocks = GEMM_MIN_BLOCKS;
};
#if defined(GP_NVIDIA)
template <> struct gemm_shape<GP_DTYPE_F32> {
    static constexpr int bm = 128, bn = 128, threads = 256;
    static constexpr int row_bytes = 64, waves_m = 2;
    static constexpr int stages = 3, min_blocks = 1;
};
#endif /* GP_NVIDIA */

/* The per-dtype shape of a stage. A shared row holds GEMM_BK elements plus
 * 16 bytes of padding: 80- or 144-byte rows keep every 16-row fragment
 * 32-byte aligned (16 * 80 = 1280, 16 * 144 = 2304; wmma) and every row start
 * 16-byte aligned (cp.async, ldmatrix), and spread the rows of an 8x8
 * ldmatrix over all banks (20 or 36 words apart: 8 distinct 4-word groups
 * mod 32). */
template <int DT> struct gemm_cfg : gemm_shape<DT> {
    typedef gemm_shape<DT> sh;
    typedef typename gp_elem<DT>::type S;
    static constexpr int waves = sh::threads / GP_WAVE;
    static constexpr int waves_n = waves / sh::waves_m;
    static constexpr int wtm = sh::bm / sh::waves_m;          /* wave sub-tile rows */
    static constexpr int wtn = sh::bn / waves_n;              /* wave sub-tile columns */
    static constexpr int vec = 16 / (int)sizeof(S);           /* elements per 16-byte chunk */
    static constexpr int bk = sh::row_bytes / (int)sizeof(S); /* GEMM_BK */
    static constexpr int lds = bk + vec;                      /* shared row stride, elements */
    static constexpr int chunks = sh::row_bytes / 16;         /* 16-byte chunks per row */
    static constexpr int stage_elems = (sh::bm + sh::bn) * lds;
    static constexpr int ldc = sh::bn + GEMM_LDC_PAD;
    /* The epilogue stages one wave row of the tile (wtm rows) of f32 at a time. */
    static constexpr int c_bytes = wtm * ldc * (int)sizeof(float);
    static constexpr int pipe_bytes = sh::stages * stage_elems * (int)sizeof(S);
    static constexpr int smem_bytes = pipe_bytes > c_bytes ? pipe_bytes : c_bytes;
    /* Shared offset of (row r, k c) in a stage's A or B tile: padded rows. */
    __host__ __device__ static constexpr int off(int r, int c) { return r * lds + c; }
    static_assert(sh::row_bytes == 64 || sh::row_bytes == 128,
                  "GEMM_ROW_BYTES: 64 or 128 bytes of K per stage (80 / 144-byte padded rows)");
    static_assert(sh::stages >= 2, "GP_PIPE_STAGES: at least 2 (one loading, one read)");
    static_assert(sh::threads % GP_WAVE == 0 && waves % sh::waves_m == 0,
                  "GEMM_WAVES_M must divide the waves of GEMM_THREADS");
    static_assert(sh::bm % (sh::waves_m * GP_MMA_M) == 0 && sh::bn % (waves_n * GP_MMA_N) == 0,
                  "GEMM_BM / GEMM_BN: whole 16x16 fragments per wave");
    static_assert(bk % GP_MMA_K == 0, "a stage is whole 16-deep slices");
    static_assert(smem_bytes <= GEMM_SMEM_MAX,
                  "shared memory: GP_PIPE_STAGES * (GEMM_BM + GEMM_BN) padded rows exceed "
                  "GEMM_SMEM_MAX (227 KiB NVIDIA, 64 KiB AMD)");
};

/* Fills shared stages (A, then B) with K columns [k0, k0 + bk) of rows m0.. of
 * x and n0.. of W, zero past M, N and K. vec16: 16-byte chunks (K % vec == 0,
 * x and W 16-byte aligned, so a chunk is wholly inside or outside K), each
 * thread owning the same chunks in every stage, so their row addresses are
 * computed once rather than per stage; else element by element. Same shared
 * contents either way. */
template <int DT, typename Cfg = gemm_cfg<DT>> struct gemm_loader {
    typedef typename gp_elem<DT>::type S;
    typedef Cfg cfg;
    static constexpr int per_a = cfg::bm * cfg::chunks / cfg::threads; /* chunks per thread */
    static constexpr int per_b = cfg::bn * cfg::chunks / cfg::threads;
    static constexpr int rows_step = cfg::threads / cfg::chunks; /* rows between its chunks */
    static_assert(cfg::threads % cfg::chunks == 0 &&
                      per_a * cfg::threads == cfg::bm * cfg::chunks &&
                      per_b * cfg::threads == cfg::bn * cfg::chunks,
                  "GEMM_BM, GEMM_BN, GEMM_ROW_BYTES, GEMM_THREADS: whole 16-byte chunks per "
                  "thread, one K offset per thread");
    const S *x, *w;
    int M, N, K, m0, n0;
    int kk;             /* this thread's K offset inside a stage row, the same for all its chunks */
    int row0;           /* its first row; chunk i is row row0 + i * rows_step */
    const S *xa[per_a]; /* x row of chunk i at k = kk (x itself where the row is past M) */
    const S *wb[per_b];
    bool va[per_a], vb[per_b]; /* row inside M / N */

    __device__ gemm_loader(const S *x_, const S *w_, int M_, int N_, int K_, int m0_, int n0_)
        : x(x_), w(w_), M(M_), N(N_), K(K_), m0(m0_), n0(n0_) {
        const int tid = threadIdx.x;
        kk = (tid % cfg::chunks) * cfg::vec;
        row0 = tid / cfg::chunks;
#pragma unroll
        for (int i = 0; i < per_a; i++) {
            const int gm = m0 + row0 + i * rows_step;
            va[i] = gm < M;
            xa[i] = va[i] ? x + ((size_t)gm * K + kk) : x;
        }
#pragma unroll
        for (int i = 0; i < per_b; i++) {
            const int gn = n0 + row0 + i * rows_step;
            vb[i] = gn < N;
            wb[i] = vb[i] ? w + ((size_t)gn * K + kk) : w;
        }
    }

    __device__ __forceinline__ void load(S *As, S *Bs, int k0, bool vec16) const {
        if (vec16) {
            const bool kin = k0 + kk < K;
#pragma unroll
            for (int i = 0; i < per_a; i++) {
                const bool ok = va[i] && kin;
                gp_async_copy16(As + cfg::off(row0 + i * rows_step, kk), ok ? xa[i] + k0 : x, ok);
            }
#pragma unroll
            for (int i = 0; i < per_b; i++) {
                const bool ok = vb[i] && kin;
                gp_async_copy16(Bs + cfg::off(row0 + i * rows_step, kk), ok ? wb[i] + k0 : w, ok);
            }
            return;
        }
        for (int e = threadIdx.x; e < cfg::bm * cfg::bk; e += cfg::threads) {
            const int r = e / cfg::bk, c = e % cfg::bk;
            const int gm = m0 + r, gk = k0 + c;
            As[cfg::off(r, c)] = (gm < M && gk < K) ? x[(size_t)gm * K + gk] : S(0);
        }
        for (int e = threadIdx.x; e < cfg::bn * cfg::bk; e += cfg::threads) {
            const int r = e / cfg::bk, c = e % cfg::bk;
            const int gn = n0 + r, gk = k0 + c;
            Bs[cfg::off(r, c)] = (gn < N && gk < K) ? w[(size_t)gn * K + gk] : S(0);
        }
    }
};

/* One buffer for all instantiations (extern __shared__ must not change type). */
extern __shared__ __attribute__((aligned(128))) unsigned char gemm_smem[];

template <int DT>
__global__ __launch_bounds__(gemm_cfg<DT>::threads, gemm_cfg<DT>::min_blocks) void gemm_tile_kernel(
    const typename gp_elem<DT>::type *__restrict__ x,
    const typename gp_elem<DT>::type *__restrict__ w,
    const typename gp_elem<DT>::type *__restrict__ bias, typename gp_elem<DT>::type *__restrict__ y,
    int M, int N, int K, int flags, int vec16) {
    typedef typename gp_elem<DT>::type S;
    typedef gp_mma<DT> mma;
    typedef gemm_cfg<DT> cfg;
    constexpr int waves_n = cfg::waves_n;
    constexpr int wtm = cfg::wtm; /* wave sub-tile: 64 rows by default */
    constexpr int wtn = cfg::wtn; /* 32 (8 warps) or 64 (4 waves) columns by default */
    constexpr int stages = cfg::stages;
    constexpr int fm = wtm / GP_MMA_M, fn = wtn / GP_MMA_N;
    constexpr int half_rows = wtm; /* epilogue: one wave row of the tile at a time */
    /* FMA path: thread (ty, tx) owns rows ty + 16a, columns tx + 16b. */
    constexpr int fa = cfg::bm / 16, fb = cfg::bn / 16;
    static_assert(cfg::threads == 256, "GEMM_THREADS: the FMA path maps 16 x 16 threads");
    static_assert(cfg::bk % GP_MMA_K == 0, "a stage is whole 16-deep slices");

    S *const smem = reinterpret_cast<S *>(gemm_smem);
    const int tid = threadIdx.x;
    const int wave = tid / GP_WAVE;
    const int wave_m = wave / waves_n, wave_n = wave % waves_n;
    const int ty = tid / 16, tx = tid % 16;
    const int m0 = blockIdx.x * cfg::bm;
    const int n0 = blockIdx.y * cfg::bn;
    const bool vec = vec16 != 0;

    typename mma::acc_t acc[fm][fn];
    float facc[fa][fb];
    if constexpr (mma::core) {
#pragma unroll
        for (int i = 0; i < fm; i++) {
#pragma unroll
            for (int j = 0; j < fn; j++) {
                mma::zero(acc[i][j]);
            }
        }
    } else {
#pragma unroll
        for (int a = 0; a < fa; a++) {
#pragma unroll
            for (int b = 0; b < fb; b++) {
                facc[a][b] = 0.0f;
            }
        }
    }

    /* Pipeline: stage t % stages holds K tile t. One commit per tile
     * slot (empty past the end) keeps the group count uniform, so
     * wait<STAGES - 2> always means "tile kt has landed". */
    const int kt_count = (K + cfg::bk - 1) / cfg::bk;
    const gemm_loader<DT> loader(x, w, M, N, K, m0, n0);
#pragma unroll
    for (int s = 0; s < stages - 1; s++) {
        if (s < kt_count) {
            S *st = smem + s * cfg::stage_elems;
            loader.load(st, st + cfg::bm * cfg::lds, s * cfg::bk, vec);
        }
        gp_async_commit();
    }

    for (int kt = 0; kt < kt_count; kt++) {
        gp_async_wait<stages - 2>();
        /* Tile kt is visible to all, and every wave has finished reading tile
         * kt - 1, whose stage the load below overwrites. */
        __syncthreads();
        const int next = kt + stages - 1;
        if (next < kt_count) {
            S *st = smem + (next % stages) * cfg::stage_elems;
            loader.load(st, st + cfg::bm * cfg::lds, next * cfg::bk, vec);
        }
        gp_async_commit();

        const S *As = smem + (kt % stages) * cfg::stage_elems;
        const S *Bs = As + cfg::bm * cfg::lds;
        if constexpr (mma::core) {
            const S *Aw = As + wave_m * wtm * cfg::lds;
            const S *Bw = Bs + wave_n * wtn * cfg::lds;
#pragma unroll
            for (int ks = 0; ks < cfg::bk; ks += GP_MMA_K) { /* slices in increasing K */
                typename mma::a_frag_t af[fm];
                typename mma::b_frag_t bf[fn];
#pragma unroll
                for (int i = 0; i < fm; i++) {
                    mma::load_a(af[i], Aw + i * GP_MMA_M * cfg::lds + ks, cfg::lds);
                }
#pragma unroll
                for (int j = 0; j < fn; j++) {
                    mma::load_b(bf[j], Bw + j * GP_MMA_N * cfg::lds + ks, cfg::lds);
                }
#pragma unroll
                for (int i = 0; i < fm; i++) {
#pragma unroll
                    for (int j = 0; j < fn; j++) {
                        mma::mac(acc[i][j], af[i], bf[j]);
                    }
                }
            }
        } else {
#pragma unroll 4
            for (int kk = 0; kk < cfg::bk; kk++) { /* k in increasing order */
                float av[fa], bv[fb];
#pragma unroll
                for (int a = 0; a < fa; a++) {
                    av[a] = gp_to_f32<DT>(As[(ty + 16 * a) * cfg::lds + kk]);
                }
#pragma unroll
                for (int b = 0; b < fb; b++) {
                    bv[b] = gp_to_f32<DT>(Bs[(tx + 16 * b) * cfg::lds + kk]);
                }
#pragma unroll
                for (int a = 0; a < fa; a++) {
#pragma unroll
                    for (int b = 0; b < fb; b++) {
                        facc[a][b] = fmaf(av[a], bv[b], facc[a][b]);
                    }
                }
            }
        }
    }

    /* Epilogue: the pipeline's shared memory becomes the f32 result tile, one
     * half (wave row) at a time: v = acc + bias in f32, one rounding. */
    gp_async_wait<0>(); /* only empty groups remain; made explicit before reuse */
    __syncthreads();
    float *const Cs = reinterpret_cast<float *>(gemm_smem);
    const bool use_bias = bias != nullptr && !(flags & GP_LIN_SKIP_BIAS);
    const bool rz = (flags & GP_LIN_ROUND_TRUNC) != 0;
#pragma unroll 1
    for (int h = 0; h < cfg::waves_m; h++) {
        if constexpr (mma::core) {
            if (wave_m == h) {
#pragma unroll
                for (int i = 0; i < fm; i++) {
#pragma unroll
                    for (int j = 0; j < fn; j++) {
                        mma::store(acc[i][j],
                                   Cs + i * GP_MMA_M * cfg::ldc + wave_n * wtn + j * GP_MMA_N,
                                   cfg::ldc);
                    }
                }
            }
        } else {
#pragma unroll
            for (int a = 0; a < fa; a++) {
                if ((ty + 16 * a) / half_rows == h) {
#pragma unroll
                    for (int b = 0; b < fb; b++) {
                        Cs[(ty + 16 * a - h * half_rows) * cfg::ldc + tx + 16 * b] = facc[a][b];
                    }
                }
            }
        }
        __syncthreads();
        for (int e = tid; e < half_rows * cfg::bn; e += cfg::threads) {
            const int r = e / cfg::bn, c = e % cfg::bn;
            const int gm = m0 + h * half_rows + r, gn = n0 + c;
            if (gm < M && gn < N) {
                float v = Cs[r * cfg::ldc + c];
                if (use_bias) {
                    v = v + gp_to_f32<DT>(bias[gn]);
                }
                y[(size_t)gm * N + gn] = gp_from_f32<DT>(v, rz);
            }
        }
        __syncthreads(); /* Cs is rewritten by the next half */
    }
}

/* ---- the warpgroup tile (NVIDIA sm_90a, GP_WGMMA; f16 and bf16) -------- */

/* Two warpgroups of 128 threads split the 128 rows of the block tile; each
 * issues m64nNk16 over its 64 rows and the tile's N columns (N = 128 or
 * 256), four per 64-deep stage. The tile's N is chosen by the weight's
 * width alone - 256 where N >= GEMM_WG_WIDE_N, which keeps the 132 SMs
 * of an H100/H200 busy with fewer, wider tiles on the MLP's wide
 * projections, else 128 - never by M, so decode and prefill of one
 * projection always run the same kernel. GEMM_WG_STAGES_128 and
 * GEMM_WG_STAGES_256: the copy pipeline's depth of each (as deep as 227 KiB
 * allows; measured on an H200, docs/PERFORMANCE.md). */
#ifndef GEMM_WG_WIDE_N
#define GEMM_WG_WIDE_N 8192
#endif /* GEMM_WG_WIDE_N */
#ifndef GEMM_WG_STAGES_128
#define GEMM_WG_STAGES_128 5
#endif /* GEMM_WG_STAGES_128 */
#ifndef GEMM_WG_STAGES_256
#define GEMM_WG_STAGES_256 4
#endif /* GEMM_WG_STAGES_256 */

template <int DT, int BN> struct gemm_wg_cfg {
    typedef typename gp_elem<DT>::type S;
    static constexpr int bm = 128, bn = BN, threads = 256;
    static constexpr int stages = BN == 256 ? GEMM_WG_STAGES_256 : GEMM_WG_STAGES_128;
    static constexpr int row_bytes = 128;
    static constexpr int vec = 16 / (int)sizeof(S);       /* elements per 16-byte chunk */
    static constexpr int bk = row_bytes / (int)sizeof(S); /* 64 */
    static constexpr int chunks = row_bytes / 16;         /* 16-byte chunks per row */
    static constexpr int stage_elems = (bm + bn) * bk;    /* no padding: swizzled rows */
    static constexpr int ldc = bn + GEMM_LDC_PAD;
    static constexpr int c_bytes = 64 * ldc * (int)sizeof(float); /* one warpgroup's rows */
    static constexpr int pipe_bytes = stages * stage_elems * (int)sizeof(S);
    /* + 1024: the kernel rounds the buffer's start up to the swizzle's alignment */
    static constexpr int smem_bytes = (pipe_bytes > c_bytes ? pipe_bytes : c_bytes) + 1024;
    __host__ __device__ static constexpr int off(int r, int c) { return gp_wg_off(r, c); }
    static_assert(sizeof(S) == 2, "the warpgroup tile takes f16 and bf16");
    static_assert(bn == 128 || bn == 256, "the warpgroup tile's N: 128 or 256 (one m64nNk16)");
    static_assert(stages >= 3,
                  "GEMM_WG_STAGES_128 / _256: at least 3 (two tiles ahead of the one read)");
    static_assert(smem_bytes <= GEMM_SMEM_MAX,
                  "shared memory: GEMM_WG_STAGES_<N> * (128 + N) rows of 128 bytes exceed "
                  "227 KiB");
};

/* The pipeline keeps P = stages - 2 tiles loading ahead of the one the
 * warpgroups multiply, and one batch of warpgroup instructions in flight:
 * iteration kt waits for tile kt, fences the copies for the async proxy,
 * syncs, starts loading tile kt + P into the stage of tile kt - 2 (whose
 * instructions every warpgroup has waited for, wait<1> at the end of
 * iteration kt - 1, before the barrier), then issues tile kt's four
 * 16-deep slices in increasing K as one batch. */
template <int DT, int BN>
__global__ __launch_bounds__(256, 1) void gemm_wgmma_kernel(
    const typename gp_elem<DT>::type *__restrict__ x,
    const typename gp_elem<DT>::type *__restrict__ w,
    const typename gp_elem<DT>::type *__restrict__ bias, typename gp_elem<DT>::type *__restrict__ y,
    int M, int N, int K, int flags, int vec16) {
    typedef typename gp_elem<DT>::type S;
    typedef gemm_wg_cfg<DT, BN> cfg;
    typedef gp_wgmma<DT, BN> wg;
    constexpr int stages = cfg::stages, P = stages - 2;
    unsigned char *const base =
        reinterpret_cast<unsigned char *>(((uintptr_t)gemm_smem + 1023) & ~(uintptr_t)1023);
    S *const smem = reinterpret_cast<S *>(base);
    const int tid = threadIdx.x;
    const int g = tid / 128; /* warpgroup: rows 64g .. 64g + 63 of the tile */
    const int m0 = blockIdx.x * cfg::bm;
    const int n0 = blockIdx.y * cfg::bn;
    const bool vec = vec16 != 0;

    typename wg::acc_t acc;
    wg::zero(acc);
    const int kt_count = (K + cfg::bk - 1) / cfg::bk;
    const gemm_loader<DT, cfg> loader(x, w, M, N, K, m0, n0);
#pragma unroll
    for (int s = 0; s < P; s++) {
        if (s < kt_count) {
            S *st = smem + s * cfg::stage_elems;
            loader.load(st, st + cfg::bm * cfg::bk, s * cfg::bk, vec);
        }
        gp_async_commit();
    }
    for (int kt = 0; kt < kt_count; kt++) {
        gp_async_wait<P - 1>(); /* tile kt has landed (one commit per tile slot) */
        gp_wg_fence_smem();
        __syncthreads();
        const int next = kt + P;
        if (next < kt_count) {
            S *st = smem + (next % stages) * cfg::stage_elems;
            loader.load(st, st + cfg::bm * cfg::bk, next * cfg::bk, vec);
        }
        gp_async_commit();
        const S *As = smem + (kt % stages) * cfg::stage_elems + 64 * g * cfg::bk;
        const S *Bs = smem + (kt % stages) * cfg::stage_elems + cfg::bm * cfg::bk;
        wg::hold(acc);
        wg::fence();
#pragma unroll
        for (int ks = 0; ks < cfg::bk; ks += 16) { /* slices in increasing K */
            wg::mac(acc, As + ks, Bs + ks);
        }
        wg::commit();
        wg::template wait<1>();
        wg::hold(acc);
    }
    wg::template wait<0>();
    wg::hold(acc);
    gp_async_wait<0>();
    __syncthreads();

    /* Epilogue as gemm_tile_kernel's: one warpgroup's 64 rows at a time
     * through shared memory, v = acc + bias in f32, one rounding. */
    float *const Cs = reinterpret_cast<float *>(base);
    const bool use_bias = bias != nullptr && !(flags & GP_LIN_SKIP_BIAS);
    const bool rz = (flags & GP_LIN_ROUND_TRUNC) != 0;
#pragma unroll 1
    for (int h = 0; h < 2; h++) {
        if (g == h) {
            wg::store(acc, Cs, cfg::ldc);
        }
        __syncthreads();
        for (int e = tid; e < 64 * cfg::bn; e += cfg::threads) {
            const int r = e / cfg::bn, c = e % cfg::bn;
            const int gm = m0 + h * 64 + r, gn = n0 + c;
            if (gm < M && gn < N) {
                float v = Cs[r * cfg::ldc + c];
                if (use_bias) {
                    v = v + gp_to_f32<DT>(bias[gn]);
                }
                y[(size_t)gm * N + gn] = gp_from_f32<DT>(v, rz);
            }
        }
        __syncthreads();
    }
}

/* Opts the kernel in to cfg::smem_bytes of dynamic shared memory and
 * launches it over (M tiles, N tiles). */
template <int DT, typename Cfg>
static int gemm_launch_cfg(void (*kernel)(const typename gp_elem<DT>::type *,
                                          const typename gp_elem<DT>::type *,
                                          const typename gp_elem<DT>::type *,
                                          typename gp_elem<DT>::type *, int, int, int, int, int),
                           const void *x, const void *w, const void *bias, void *y, int M, int N,
                           int K, int flags) {
    typedef typename gp_elem<DT>::type S;
    const dim3 grid((unsigned)((M + Cfg::bm - 1) / Cfg::bm),
                    (unsigned)((N + Cfg::bn - 1) / Cfg::bn));
    if (Cfg::smem_bytes > GEMM_SMEM_STATIC) {
        /* Idempotent; cheap next to the GEMM, and per device without caching. */
        const hipError_t err = hipFuncSetAttribute(
            (const void *)kernel, hipFuncAttributeMaxDynamicSharedMemorySize, Cfg::smem_bytes);
        if (err != hipSuccess) {
            return gp_hip_fail("gp_linear", "gemm shared memory", err);
        }
    }
    /* 16-byte chunks need whole chunks per row and aligned bases; the choice
     * never changes the staged values (see the header). */
    const int vec16 = K % Cfg::vec == 0 && (((uintptr_t)x | (uintptr_t)w) & 15u) == 0 ? 1 : 0;
    hipLaunchKernelGGL(kernel, grid, dim3(Cfg::threads), Cfg::smem_bytes, 0, (const S *)x,
                       (const S *)w, (const S *)bias, (S *)y, M, N, K, flags, vec16);
    return GP_OK;
}

/* GP_WGMMA builds (sm_90a) take the warpgroup tile for f16 and bf16,
 * whatever M, N and K: the kernel is a build-time choice like the tile. */
#if defined(GP_WGMMA)
static constexpr bool gemm_wg_build = true;
#else
static constexpr bool gemm_wg_build = false;
#endif /* GP_WGMMA */

template <int DT>
static int gemm_launch(const void *x, const void *w, const void *bias, void *y, int M, int N, int K,
                       int flags) {
    if constexpr (gemm_wg_build && DT != GP_DTYPE_F32) {
        if (N >= GEMM_WG_WIDE_N) {
            return gemm_launch_cfg<DT, gemm_wg_cfg<DT, 256>>(gemm_wgmma_kernel<DT, 256>, x, w, bias,
                                                             y, M, N, K, flags);
        }
        return gemm_launch_cfg<DT, gemm_wg_cfg<DT, 128>>(gemm_wgmma_kernel<DT, 128>, x, w, bias, y,
                                                         M, N, K, flags);
    } else {
        return gemm_launch_cfg<DT, gemm_cfg<DT>>(gemm_tile_kernel<DT>, x, w, bias, y, M, N, K,
                                                 flags);
    }
}

/* The tile of a dtype's launch at width N (f32 on NVIDIA keeps the default
 * shape; the warpgroup tile's N follows N, gemm_launch). */
struct gemm_tile_desc {
    int bm, bn, bk, waves_m, waves_n, stages, min_blocks;
};
template <int DT, typename WC> static gemm_tile_desc gemm_wg_desc() {
    return gemm_tile_desc{WC::bm, WC::bn, WC::bk, 2, 1, WC::stages, 1};
}
template <int DT> static gemm_tile_desc gemm_desc(int N) {
    if constexpr (gemm_wg_build && DT != GP_DTYPE_F32) {
        return N >= GEMM_WG_WIDE_N ? gemm_wg_desc<DT, gemm_wg_cfg<DT, 256>>()
                                   : gemm_wg_desc<DT, gemm_wg_cfg<DT, 128>>();
    }
    typedef gemm_cfg<DT> cfg;
    return gemm_tile_desc{cfg::bm,      cfg::bn,     cfg::bk,        cfg::waves_m,
                          cfg::waves_n, cfg::stages, cfg::min_blocks};
}
static gemm_tile_desc gemm_desc_of(int dtype, int N) {
    switch (dtype) {
    case GP_DTYPE_F32:
        return gemm_desc<GP_DTYPE_F32>(N);
    case GP_DTYPE_F16:
        return gemm_desc<GP_DTYPE_F16>(N);
    default:
        return gemm_desc<GP_DTYPE_BF16>(N);
    }
}

/* The name of what ran: the matrix-core instruction shape, or the FMA tile,
 * then the build's tile: BMxBNxBK, the wave grid, the pipeline depth and,
 * where not 1, the __launch_bounds__ blocks (e.g.
 * gemm_mma_sync_f16_16x8x16_128x128x32_w2x4_s3). */
static void gemm_kernel_name(int dtype, int N, char *name, size_t cap) {
    const char *dt = gp_dtype_name(dtype);
    const gemm_tile_desc d = gemm_desc_of(dtype, N);
    char inst[40];
    if (!gp_hip_matrix_cores(dtype)) {
        snprintf(inst, sizeof inst, "gemm_fma_%s", dt);
    } else {
#if defined(GP_AMD)
        snprintf(inst, sizeof inst, "gemm_mfma_%s_16x16x%d", dt, dtype == GP_DTYPE_F32 ? 4 : 16);
#elif defined(GP_WGMMA)
        snprintf(inst, sizeof inst, "gemm_wgmma_%s_64x%dx16", dt, d.bn);
#elif defined(GP_MMA_USE_WMMA)
        snprintf(inst, sizeof inst, "gemm_wmma_%s_16x16x16", dt);
#else
        snprintf(inst, sizeof inst, "gemm_mma_sync_%s_16x8x16", dt);
#endif /* GP_AMD */
    }
    char blocks[8] = "";
    if (d.min_blocks != 1) {
        snprintf(blocks, sizeof blocks, "_b%d", d.min_blocks);
    }
    snprintf(name, cap, "%s_%dx%dx%d_w%dx%d_s%d%s", inst, d.bm, d.bn, d.bk, d.waves_m, d.waves_n,
             d.stages, blocks);
}

int gp_hip_gemm(int dtype, const void *x, const void *w, const void *bias, void *y, int M, int N,
                int K, int flags) {
    int rc;
    switch (dtype) {
    case GP_DTYPE_F32:
        rc = gemm_launch<GP_DTYPE_F32>(x, w, bias, y, M, N, K, flags);
        break;
    case GP_DTYPE_F16:
        rc = gemm_launch<GP_DTYPE_F16>(x, w, bias, y, M, N, K, flags);
        break;
    default:
        rc = gemm_launch<GP_DTYPE_BF16>(x, w, bias, y, M, N, K, flags);
        break;
    }
    if (rc != GP_OK) {
        return rc;
    }
    char name[GP_KERNEL_NAME_CAP];
    gemm_kernel_name(dtype, N, name, sizeof name);
    rc = gp_hip_check_launch("gp_linear", name);
    if (rc != GP_OK) {
        return rc;
    }
    const gemm_tile_desc d = gemm_desc_of(dtype, N);
    gp_attest(GP_ROUTE_MFMA, d.bm, d.bn, d.bk, 1, name);
    return GP_OK;
}
