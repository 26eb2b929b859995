/*
 * gp_mma.h: the vendor primitives of the MFMA route, kept out of the GEMM
 * kernel (gemm_mfma.hip), which stays vendor-free.
 *
 * 1. gp_mma<DT>: one wave's 16x16 f32 accumulator tile, advanced by one
 *    16-deep K slice,
 *
 *        acc[16x16] += A[16x16] * B[16x16]
 *
 *    with A row-major in shared memory (a[r * lda + k]) and B given as rows of
 *    W (b[n * ldb + k], so B(k, n) = W[n][k]). The slice is split into
 *    load_a / load_b (fragments in registers, so that a wave reuses one A
 *    fragment across its B fragments and vice versa) and mac (the
 *    multiply-accumulate). store() writes the accumulator row-major to shared memory
 *    (c[r * ldc + n]).
 *
 *      AMD gfx90a / gfx94x  MFMA: v_mfma_f32_16x16x16f16, _16x16x16bf16_1k,
 *                           and 4 x v_mfma_f32_16x16x4f32 for f32
 *      NVIDIA sm_80+        f16 and bf16: ldmatrix.x4 + 2 x
 *                           mma.sync.m16n8k16 (f32 accumulate) per slice;
 *                           -DGP_MMA_USE_WMMA=1 takes nvcuda::wmma 16x16x16
 *                           instead (same HMMA instruction, same numerics).
 *                           f32 is not put on tensor cores (TF32 would round
 *                           the inputs), it takes the FMA tile
 *
 *    gp_mma<DT>::core says whether a matrix-core tile exists for this device
 *    pass. Where it does not, the GEMM kernel runs its plain FMA tile instead,
 *    and the host names the kernel after what ran (gp_hip_matrix_cores()).
 *
 *    Every output element is a function of its own A row and B column only:
 *    the instruction's internal order is the same for every element position,
 *    and the kernel feeds K slice by slice in increasing order, so a row's
 *    result does not depend on how many rows the call has.
 *
 * 2. gp_async_copy16 / gp_async_commit / gp_async_wait<N>: 16-byte global ->
 *    shared copies for a multi-stage pipeline. NVIDIA sm_80+: cp.async.cg
 *    (zero-filled when the chunk is out of range); elsewhere a plain
 *    synchronous 16-byte copy, so the pipeline degenerates to double-buffered
 *    shared memory. GP_PIPE_STAGES is the number of stages worth keeping in
 *    flight on the vendor (the same in host and device passes: it sizes the
 *    launch's shared memory).
 */
#ifndef GP_MMA_H
#define GP_MMA_H

#include "gp_hip.h"

/* Device passes with matrix cores (host passes and other targets: none). */
#if defined(GP_AMD) && defined(__HIP_DEVICE_COMPILE__) &&                                          \
    (defined(__gfx90a__) || defined(__gfx940__) || defined(__gfx941__) || defined(__gfx942__))
#define GP_MMA_MFMA 1
#endif /* AMD device pass for gfx90a / gfx94x */
/* NVIDIA device pass for sm_80+ (tensor cores through mma.sync or wmma). */
#if defined(GP_NVIDIA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define GP_MMA_WMMA 1
#define GP_ASYNC_CP 1 /* cp.async exists from sm_80 */
#endif                /* NVIDIA device pass for sm_80+ */

#define GP_MMA_M 16
#define GP_MMA_N 16
#define GP_MMA_K 16

/* Pipeline depth: cp.async overlaps four stages on NVIDIA (-DGP_PIPE_STAGES=N
 * overrides it at build time, N >= 2; 4 with 128-byte K rows measured best on
 * an H200); with synchronous copies a third stage buys nothing and would cost
 * LDS occupancy, so AMD stays at 2. */
#if defined(GP_NVIDIA)
#ifndef GP_PIPE_STAGES
#define GP_PIPE_STAGES 4
#endif /* GP_PIPE_STAGES */
#else
#undef GP_PIPE_STAGES
#define GP_PIPE_STAGES 2
#endif /* GP_NVIDIA */

/* ---- asynchronous 16-byte copies ---------------------------------------- */

/* Copies 16 bytes from src (global, 16-byte aligned) to dst (shared, 16-byte
 * aligned), or writes 16 zero bytes when !valid (src is then not read, but
 * must still be a mapped address: pass the tensor's base). */
__device__ __forceinline__ void gp_async_copy16(void *dst, const void *src, bool valid) {
#if defined(GP_ASYNC_CP)
    const unsigned dst_s = (unsigned)__cvta_generic_to_shared(dst);
    const int src_bytes = valid ? 16 : 0; /* src-size 0: cp.async fills the 16 bytes with 0 */
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst_s), "l"(src),
                 "r"(src_bytes)
                 : "memory");
#else
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (valid) {
        v = *reinterpret_cast<const uint4 *>(src);
    }
    *reinterpret_cast<uint4 *>(dst) = v;
#endif /* GP_ASYNC_CP */
}

/* Closes the group of copies issued since the last commit. */
__device__ __forceinline__ void gp_async_commit() {
#if defined(GP_ASYNC_CP)
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif /* GP_ASYNC_CP */
}

/* Waits until at most N committed groups are still in flight. The copies are
 * then visible to the issuing thread only: a barrier must follow before other
 * threads read them. */
template <int N> __device__ __forceinline__ void gp_async_wait() {
#if defined(GP_ASYNC_CP)
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif /* GP_ASYNC_CP */
}

/* ---- matrix-core tiles --------------------------------------------------- */

/* No matrix-core tile: the GEMM kernel takes its FMA path. */
template <int DT> struct gp_mma {
    typedef typename gp_elem<DT>::type S;
    static constexpr bool core = false;
    struct acc_t {};
    struct a_frag_t {};
    struct b_frag_t {};
    __device__ static void zero(acc_t &) {}
    __device__ static void load_a(a_frag_t &, const S *, int) {}
    __device__ static void load_b(b_frag_t &, const S *, int) {}
    __device__ static void mac(acc_t &, const a_frag_t &, const b_frag_t &) {}
    __device__ static void store(const acc_t &, float *, int) {}
};

#if defined(GP_MMA_MFMA)
typedef _Float16 gp_half4_t __attribute__((ext_vector_type(4)));
typedef short gp_short4_t __attribute__((ext_vector_type(4)));
typedef float gp_float4_t __attribute__((ext_vector_type(4)));

/* Lane l of the wavefront holds A[l % 16][4 * (l / 16) + i] and
 * B[4 * (l / 16) + i][l % 16], i < 4, and accumulates D[4 * (l / 16) + i][l % 16]
 * (16x16x4 f32: A[l % 16][l / 16] and B[l / 16][l % 16], same D). */
template <typename Frag> struct gp_mfma_base {
    typedef gp_float4_t acc_t;
    typedef Frag a_frag_t;
    typedef Frag b_frag_t;
    static constexpr bool core = true;
    __device__ static void zero(acc_t &acc) { acc = gp_float4_t{0.0f, 0.0f, 0.0f, 0.0f}; }
    __device__ static void store(const acc_t &acc, float *c, int ldc) {
        const int lane = threadIdx.x % GP_WAVE;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            c[(4 * (lane / 16) + i) * ldc + lane % 16] = acc[i];
        }
    }
};

template <> struct gp_mma<GP_DTYPE_F16> : gp_mfma_base<gp_half4_t> {
    __device__ static void load_a(a_frag_t &f, const uint16_t *a, int lda) {
        const int lane = threadIdx.x % GP_WAVE;
        const int r = lane % 16, k = 4 * (lane / 16);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            f[i] = __builtin_bit_cast(_Float16, a[r * lda + k + i]);
        }
    }
    /* B's lane layout mirrors A's with n in place of r: same load. */
    __device__ static void load_b(b_frag_t &f, const uint16_t *b, int ldb) { load_a(f, b, ldb); }
    __device__ static void mac(acc_t &acc, const a_frag_t &af, const b_frag_t &bf) {
        acc = __builtin_amdgcn_mfma_f32_16x16x16f16(af, bf, acc, 0, 0, 0);
    }
};

template <> struct gp_mma<GP_DTYPE_BF16> : gp_mfma_base<gp_short4_t> {
    __device__ static void load_a(a_frag_t &f, const uint16_t *a, int lda) {
        const int lane = threadIdx.x % GP_WAVE;
        const int r = lane % 16, k = 4 * (lane / 16);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            f[i] = (short)a[r * lda + k + i];
        }
    }
    __device__ static void load_b(b_frag_t &f, const uint16_t *b, int ldb) { load_a(f, b, ldb); }
    __device__ static void mac(acc_t &acc, const a_frag_t &af, const b_frag_t &bf) {
        acc = __builtin_amdgcn_mfma_f32_16x16x16bf16_1k(af, bf, acc, 0, 0, 0);
    }
};

/* f32: the 16-deep slice is four 16x16x4 instructions, K 0-3, 4-7, 8-11,
 * 12-15 in that order; fragment element s feeds instruction s. */
template <> struct gp_mma<GP_DTYPE_F32> : gp_mfma_base<gp_float4_t> {
    __device__ static void load_a(a_frag_t &f, const float *a, int lda) {
        const int lane = threadIdx.x % GP_WAVE;
        const int r = lane % 16, k = lane / 16;
#pragma unroll
        for (int s = 0; s < 4; s++) {
            f[s] = a[r * lda + 4 * s + k];
        }
    }
    __device__ static void load_b(b_frag_t &f, const float *b, int ldb) { load_a(f, b, ldb); }
    __device__ static void mac(acc_t &acc, const a_frag_t &af, const b_frag_t &bf) {
#pragma unroll
        for (int s = 0; s < 4; s++) {
            acc = __builtin_amdgcn_mfma_f32_16x16x4f32(af[s], bf[s], acc, 0, 0, 0);
        }
    }
};
#endif /* GP_MMA_MFMA */

#if defined(GP_MMA_WMMA) && defined(GP_MMA_USE_WMMA)
/* nvcuda::wmma fragments; pointers 32-byte aligned, ld a multiple of 8
 * elements (16-bit) or 4 (f32 store): the GEMM's shared-memory layout ensures
 * both. */
template <typename T> struct gp_wmma_base {
    typedef nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc_t;
    typedef nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, T, nvcuda::wmma::row_major>
        a_frag_t;
    typedef nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, T, nvcuda::wmma::col_major>
        b_frag_t;
    static constexpr bool core = true;
    __device__ static void zero(acc_t &acc) { nvcuda::wmma::fill_fragment(acc, 0.0f); }
    __device__ static void load_a(a_frag_t &f, const uint16_t *a, int lda) {
        nvcuda::wmma::load_matrix_sync(f, reinterpret_cast<const T *>(a), lda);
    }
    __device__ static void load_b(b_frag_t &f, const uint16_t *b, int ldb) {
        nvcuda::wmma::load_matrix_sync(f, reinterpret_cast<const T *>(b), ldb);
    }
    __device__ static void mac(acc_t &acc, const a_frag_t &af, const b_frag_t &bf) {
        nvcuda::wmma::mma_sync(acc, af, bf, acc);
    }
    __device__ static void store(const acc_t &acc, float *c, int ldc) {
        nvcuda::wmma::store_matrix_sync(c, acc, ldc, nvcuda::wmma::mem_row_major);
    }
};
template <> struct gp_mma<GP_DTYPE_F16> : gp_wmma_base<__half> {};
template <> struct gp_mma<GP_DTYPE_BF16> : gp_wmma_base<__nv_bfloat16> {};
#elif defined(GP_MMA_WMMA)
/* ldmatrix + mma.sync.m16n8k16. A 16x16 slice of A is four 8x8 matrices
 * (rows 0-7 / 8-15 x k 0-7 / 8-15) and one ldmatrix.x4 hands lane l exactly
 * the a0..a3 registers mma.sync wants (row l/4 (+8), k 2(l%4) (+8), two
 * elements per register, the lower k in the low half). B's 16 rows of W
 * (n 0-15, k contiguous: the col-major operand) are the b0, b1 pairs of the
 * two n8 halves. Rows must start 16-byte aligned: the GEMM pads its shared
 * rows by 16 bytes (80 or 144 bytes), which also keeps the eight row
 * addresses of each 8x8 matrix on distinct bank groups. Accumulator: c[4j + i] of n8 half j is
 * D[l/4 + 8(i/2)][8j + 2(l%4) + i%2]. */
struct gp_mma_sync_acc {
    float c[8];
};
struct gp_mma_sync_frag {
    uint32_t r[4];
};

__device__ __forceinline__ void gp_ldmatrix_x4(gp_mma_sync_frag &f, const uint16_t *p) {
    const unsigned s = (unsigned)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(f.r[0]), "=r"(f.r[1]), "=r"(f.r[2]), "=r"(f.r[3])
                 : "r"(s)
                 : "memory");
}

template <bool BF16> struct gp_mma_sync_base {
    typedef gp_mma_sync_acc acc_t;
    typedef gp_mma_sync_frag a_frag_t;
    typedef gp_mma_sync_frag b_frag_t;
    static constexpr bool core = true;
    __device__ static void zero(acc_t &acc) {
#pragma unroll
        for (int i = 0; i < 8; i++) {
            acc.c[i] = 0.0f;
        }
    }
    /* Lanes 0-15 address rows 0-15 at k 0, lanes 16-31 rows 0-15 at k 8:
     * matrices (rows 0-7, k 0), (8-15, k 0), (0-7, k 8), (8-15, k 8) = a0..a3. */
    __device__ static void load_a(a_frag_t &f, const uint16_t *a, int lda) {
        const int lane = threadIdx.x % GP_WAVE;
        gp_ldmatrix_x4(f, a + (lane & 15) * lda + (lane >> 4) * 8);
    }
    /* Matrices (n 0-7, k 0), (n 0-7, k 8), (n 8-15, k 0), (n 8-15, k 8):
     * r0, r1 = b0, b1 of n half 0; r2, r3 = b0, b1 of n half 1. */
    __device__ static void load_b(b_frag_t &f, const uint16_t *b, int ldb) {
        const int lane = threadIdx.x % GP_WAVE;
        gp_ldmatrix_x4(f, b + ((lane >> 4) * 8 + (lane & 7)) * ldb + ((lane >> 3) & 1) * 8);
    }
    __device__ static void mac(acc_t &acc, const a_frag_t &af, const b_frag_t &bf) {
#pragma unroll
        for (int j = 0; j < 2; j++) {
            float *c = acc.c + 4 * j;
            if constexpr (BF16) {
                asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                             "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                             "{%0, %1, %2, %3};\n"
                             : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                             : "r"(af.r[0]), "r"(af.r[1]), "r"(af.r[2]), "r"(af.r[3]),
                               "r"(bf.r[2 * j]), "r"(bf.r[2 * j + 1]));
            } else {
                asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                             "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                             "{%0, %1, %2, %3};\n"
                             : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                             : "r"(af.r[0]), "r"(af.r[1]), "r"(af.r[2]), "r"(af.r[3]),
                               "r"(bf.r[2 * j]), "r"(bf.r[2 * j + 1]));
            }
        }
    }
    __device__ static void store(const acc_t &acc, float *c, int ldc) {
        const int lane = threadIdx.x % GP_WAVE;
        const int g = lane >> 2, t = lane & 3;
#pragma unroll
        for (int j = 0; j < 2; j++) {
#pragma unroll
            for (int i = 0; i < 4; i++) {
                c[(g + 8 * (i / 2)) * ldc + 8 * j + 2 * t + i % 2] = acc.c[4 * j + i];
            }
        }
    }
};
template <> struct gp_mma<GP_DTYPE_F16> : gp_mma_sync_base<false> {};
template <> struct gp_mma<GP_DTYPE_BF16> : gp_mma_sync_base<true> {};
#endif /* GP_MMA_WMMA: mma.sync (default) or nvcuda::wmma */

#endif /* GP_MMA_H */
