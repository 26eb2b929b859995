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

/* ---- warpgroup tiles (NVIDIA sm_90a: wgmma) ----------------------------- */

/* GP_WGMMA (a build flag: hip.mk sets it with CUDA_ARCH=sm_90a, so that host
 * and device passes agree on the kernel and its shared memory) puts the
 * MFMA route's f16 and bf16 GEMM on Hopper's warpgroup instructions: four
 * warps (128 threads) issue wgmma.mma_async.m64nNk16 together, reading both
 * operands from shared memory through descriptors.
 *
 * Shared layout (gp_wg_off): K-major tiles of 64 elements (128 bytes) per
 * row, the 128-byte swizzle of the descriptors: 16-byte chunk c of row r
 * sits at chunk c ^ (r % 8) of its row, rows 128 bytes apart, each 8-row
 * group (1024 bytes, the stride-dimension offset) 1024-byte aligned. The
 * k-th 16-deep slice starts 32 * k bytes into the rows.
 *
 * gp_wgmma<DT, N>::mac adds A[64 x 16] * B[16 x N] to the accumulator, A's
 * 64 rows and B's N rows (of W) at a, b (row 0 of a swizzle group, slice
 * offset added); it is asynchronous: fence() before the first instruction
 * of a batch, commit() after it, wait<G>() until at most G batches are in
 * flight. The accumulator: thread t of the warpgroup, warp w = t / 32, lane
 * l, holds d[4j + q] = D[16w + l/4 + 8(q/2)][8j + 2(l%4) + q%2], j < N/8.
 *
 * Every output element is a function of its own A row and B column only (as
 * for gp_mma): the warpgroup instruction and the slice order are fixed at
 * build time, so a row's result does not depend on how many rows the call
 * has. */
/* (A device pass without sm_90a's features fails in ptxas: wgmma needs it.) */
#if defined(GP_WGMMA) && defined(__CUDA_ARCH__)
#define GP_MMA_WG 1
#endif /* GP_WGMMA, device pass */

/* Element offset of (row r, k c) in a swizzled 64-element-wide tile. */
__host__ __device__ constexpr int gp_wg_off(int r, int c) {
    return r * 64 + ((((c >> 3) ^ (r & 7)) << 3) | (c & 7));
}

/* No warpgroup tile on this pass. */
template <int DT, int N> struct gp_wgmma {
    static constexpr bool core = false;
    typedef typename gp_elem<DT>::type S;
    struct acc_t {};
    __device__ static void zero(acc_t &) {}
    __device__ static void fence() {}
    __device__ static void hold(acc_t &) {}
    __device__ static void commit() {}
    template <int G> __device__ static void wait() {}
    __device__ static void mac(acc_t &, const S *, const S *) {}
    __device__ static void store(const acc_t &, float *, int) {}
};

#if defined(GP_MMA_WG)
/* Operand lists of the m64nNk16 instructions (generated: 8 per line). */
#define GP_WG_D8_0                                                                                 \
    "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
#define GP_WG_D8_8                                                                                 \
    "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]),       \
        "+f"(d[15])
#define GP_WG_D8_16                                                                                \
    "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]),     \
        "+f"(d[23])
#define GP_WG_D8_24                                                                                \
    "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]),     \
        "+f"(d[31])
#define GP_WG_D8_32                                                                                \
    "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]),     \
        "+f"(d[39])
#define GP_WG_D8_40                                                                                \
    "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]),     \
        "+f"(d[47])
#define GP_WG_D8_48                                                                                \
    "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]),     \
        "+f"(d[55])
#define GP_WG_D8_56                                                                                \
    "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),     \
        "+f"(d[63])
#define GP_WG_D8_64                                                                                \
    "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]),     \
        "+f"(d[71])
#define GP_WG_D8_72                                                                                \
    "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]),     \
        "+f"(d[79])
#define GP_WG_D8_80                                                                                \
    "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]),     \
        "+f"(d[87])
#define GP_WG_D8_88                                                                                \
    "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]),     \
        "+f"(d[95])
#define GP_WG_D8_96                                                                                \
    "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]),  \
        "+f"(d[103])
#define GP_WG_D8_104                                                                               \
    "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]),            \
        "+f"(d[110]), "+f"(d[111])
#define GP_WG_D8_112                                                                               \
    "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]),            \
        "+f"(d[118]), "+f"(d[119])
#define GP_WG_D8_120                                                                               \
    "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]),            \
        "+f"(d[126]), "+f"(d[127])
#define GP_WG_D64                                                                                  \
    GP_WG_D8_0, GP_WG_D8_8, GP_WG_D8_16, GP_WG_D8_24, GP_WG_D8_32, GP_WG_D8_40, GP_WG_D8_48,       \
        GP_WG_D8_56
#define GP_WG_D128                                                                                 \
    GP_WG_D64, GP_WG_D8_64, GP_WG_D8_72, GP_WG_D8_80, GP_WG_D8_88, GP_WG_D8_96, GP_WG_D8_104,      \
        GP_WG_D8_112, GP_WG_D8_120
#define GP_WG_REGS64                                                                               \
    "{"                                                                                            \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                       \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "             \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "             \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"               \
    "}"
#define GP_WG_REGS128                                                                              \
    "{"                                                                                            \
    "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                       \
    "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "             \
    "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "             \
    "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "             \
    "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "             \
    "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "             \
    "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
    "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, "   \
    "%127"                                                                                         \
    "}"

/* Shared-memory matrix descriptor: start address, leading-dimension offset
 * 16 bytes (unused by K-major swizzled layouts), stride-dimension offset
 * 1024 bytes (8 rows of 128 bytes), 128-byte swizzle (mode 1, bits 62-63). */
__device__ __forceinline__ uint64_t gp_wg_desc(const void *p) {
    const uint64_t a = (uint64_t)__cvta_generic_to_shared(p);
    return ((a & 0x3FFFF) >> 4) | ((uint64_t)(16 >> 4) << 16) | ((uint64_t)(1024 >> 4) << 32) |
           (1ull << 62);
}

template <int N> struct gp_wgmma_base {
    static constexpr bool core = true;
    struct acc_t {
        float d[N / 2];
    };
    __device__ static void zero(acc_t &acc) {
#pragma unroll
        for (int i = 0; i < N / 2; i++) {
            acc.d[i] = 0.0f;
        }
    }
    __device__ static void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
    /* Pins the accumulator registers here: the compiler may not move their
     * reads or writes across this point (around the asynchronous batches). */
    __device__ static void hold(acc_t &acc) {
#pragma unroll
        for (int i = 0; i < N / 2; i++) {
            asm volatile("" : "+f"(acc.d[i])::"memory");
        }
    }
    __device__ static void commit() {
        asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
    }
    template <int G> __device__ static void wait() {
        asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(G) : "memory");
    }
    __device__ static void store(const acc_t &acc, float *c, int ldc) {
        const int t = threadIdx.x % 128;
        const int row = 16 * (t / 32) + (t % 32) / 4, col = 2 * (t % 4);
#pragma unroll
        for (int j = 0; j < N / 8; j++) {
#pragma unroll
            for (int q = 0; q < 4; q++) {
                c[(row + 8 * (q / 2)) * ldc + 8 * j + col + q % 2] = acc.d[4 * j + q];
            }
        }
    }
};

/* The instruction of (dtype, N): D += A * B, scale-d 1, no negation, both
 * operands K-major (no transpose). */
#define GP_WG_MAC(NAME, SHAPE, TYPES, REGS, OPS, DESC)                                             \
    __device__ static void NAME(float *d, uint64_t da, uint64_t db) {                              \
        asm volatile("wgmma.mma_async.sync.aligned." SHAPE "." TYPES " " REGS ", " DESC            \
                     ", 1, 1, 1, 0, 0;\n"                                                          \
                     : OPS                                                                         \
                     : "l"(da), "l"(db));                                                          \
    }
struct gp_wg_inst {
    GP_WG_MAC(f16_128, "m64n128k16", "f32.f16.f16", GP_WG_REGS64, GP_WG_D64, "%64, %65")
    GP_WG_MAC(bf16_128, "m64n128k16", "f32.bf16.bf16", GP_WG_REGS64, GP_WG_D64, "%64, %65")
    GP_WG_MAC(f16_256, "m64n256k16", "f32.f16.f16", GP_WG_REGS128, GP_WG_D128, "%128, %129")
    GP_WG_MAC(bf16_256, "m64n256k16", "f32.bf16.bf16", GP_WG_REGS128, GP_WG_D128, "%128, %129")
};
#undef GP_WG_MAC

template <int N> struct gp_wgmma<GP_DTYPE_F16, N> : gp_wgmma_base<N> {
    static_assert(N == 128 || N == 256, "gp_wgmma: N of 128 or 256");
    typedef typename gp_wgmma_base<N>::acc_t acc_t;
    __device__ static void mac(acc_t &acc, const uint16_t *a, const uint16_t *b) {
        if constexpr (N == 128) {
            gp_wg_inst::f16_128(acc.d, gp_wg_desc(a), gp_wg_desc(b));
        } else {
            gp_wg_inst::f16_256(acc.d, gp_wg_desc(a), gp_wg_desc(b));
        }
    }
};
template <int N> struct gp_wgmma<GP_DTYPE_BF16, N> : gp_wgmma_base<N> {
    static_assert(N == 128 || N == 256, "gp_wgmma: N of 128 or 256");
    typedef typename gp_wgmma_base<N>::acc_t acc_t;
    __device__ static void mac(acc_t &acc, const uint16_t *a, const uint16_t *b) {
        if constexpr (N == 128) {
            gp_wg_inst::bf16_128(acc.d, gp_wg_desc(a), gp_wg_desc(b));
        } else {
            gp_wg_inst::bf16_256(acc.d, gp_wg_desc(a), gp_wg_desc(b));
        }
    }
};

/* Makes this thread's generic-proxy writes to shared memory (cp.async, st)
 * visible to the warpgroup instructions' async proxy; a barrier must follow
 * before another thread's wgmma reads them. */
__device__ __forceinline__ void gp_wg_fence_smem() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
#else
__device__ __forceinline__ void gp_wg_fence_smem() {}
#endif /* GP_MMA_WG */

#endif /* GP_MMA_H */
