/*
 * gp_mma.h: the one tile abstraction of the MFMA route. gp_mma<DT> holds one
 * wave's 16x16 f32 accumulator tile and advances it by one 16-deep K slice:
 *
 *     acc[16x16] += A[16x16] * B[16x16]
 *
 * with A row-major in shared memory (a[r * lda + k]) and B given as rows of W
 * (b[n * ldb + k], so B(k, n) = W[n][k]). store() writes the accumulator
 * row-major to shared memory (c[r * ldc + n]).
 *
 *   AMD gfx90a / gfx94x  MFMA: v_mfma_f32_16x16x16f16, _16x16x16bf16_1k,
 *                        and 4 x v_mfma_f32_16x16x4f32 for f32
 *   NVIDIA sm_80+        tensor cores through nvcuda::wmma for f16 and bf16;
 *                        f32 is not put on tensor cores (TF32 would round the
 *                        inputs), it takes the FMA tile like every other target
 *
 * gp_mma<DT>::core says whether a matrix-core tile exists for this device
 * pass. Where it does not, the GEMM kernel runs its plain FMA tile instead,
 * and the host names the kernel after what ran (gp_hip_matrix_cores()).
 *
 * Every output element is a function of its own A row and B column only, and
 * K is consumed slice by slice in increasing order, so a row's result does
 * not depend on how many rows the call has.
 */
#ifndef GP_MMA_H
#define GP_MMA_H

#include "gp_hip.h"

/* Device passes with matrix cores (host passes and other targets: none). */
#if defined(GP_AMD) && defined(__HIP_DEVICE_COMPILE__) &&                                          \
    (defined(__gfx90a__) || defined(__gfx940__) || defined(__gfx941__) || defined(__gfx942__))
#define GP_MMA_MFMA 1
#endif /* AMD device pass for gfx90a / gfx94x */
#if defined(GP_NVIDIA) && defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#define GP_MMA_WMMA 1
#endif /* NVIDIA device pass for sm_80+ */

#define GP_MMA_M 16
#define GP_MMA_N 16
#define GP_MMA_K 16

/* No matrix-core tile: the GEMM kernel takes its FMA path. */
template <int DT> struct gp_mma {
    static constexpr bool core = false;
    struct acc_t {};
    __device__ static void zero(acc_t &) {}
    __device__ static void step(acc_t &, const typename gp_elem<DT>::type *, int,
                                const typename gp_elem<DT>::type *, int) {}
    __device__ static void store(const acc_t &, float *, int) {}
};

#if defined(GP_MMA_MFMA)
typedef _Float16 gp_half4_t __attribute__((ext_vector_type(4)));
typedef short gp_short4_t __attribute__((ext_vector_type(4)));
typedef float gp_float4_t __attribute__((ext_vector_type(4)));

/* Lane l of the wavefront holds A[l % 16][4 * (l / 16) + i] and
 * B[4 * (l / 16) + i][l % 16], i < 4, and accumulates D[4 * (l / 16) + i][l % 16]
 * (16x16x4 f32: A[l % 16][l / 16] and B[l / 16][l % 16], same D). */
struct gp_mfma_base {
    typedef gp_float4_t acc_t;
    __device__ static void zero(acc_t &acc) { acc = gp_float4_t{0.0f, 0.0f, 0.0f, 0.0f}; }
    __device__ static void store(const acc_t &acc, float *c, int ldc) {
        const int lane = threadIdx.x % GP_WAVE;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            c[(4 * (lane / 16) + i) * ldc + lane % 16] = acc[i];
        }
    }
};

template <> struct gp_mma<GP_DTYPE_F16> : gp_mfma_base {
    static constexpr bool core = true;
    __device__ static void step(acc_t &acc, const uint16_t *a, int lda, const uint16_t *b,
                                int ldb) {
        const int lane = threadIdx.x % GP_WAVE;
        const int r = lane % 16, k = 4 * (lane / 16);
        gp_half4_t av, bv;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            av[i] = __builtin_bit_cast(_Float16, a[r * lda + k + i]);
            bv[i] = __builtin_bit_cast(_Float16, b[r * ldb + k + i]);
        }
        acc = __builtin_amdgcn_mfma_f32_16x16x16f16(av, bv, acc, 0, 0, 0);
    }
};

template <> struct gp_mma<GP_DTYPE_BF16> : gp_mfma_base {
    static constexpr bool core = true;
    __device__ static void step(acc_t &acc, const uint16_t *a, int lda, const uint16_t *b,
                                int ldb) {
        const int lane = threadIdx.x % GP_WAVE;
        const int r = lane % 16, k = 4 * (lane / 16);
        gp_short4_t av, bv;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            av[i] = (short)a[r * lda + k + i];
            bv[i] = (short)b[r * ldb + k + i];
        }
        acc = __builtin_amdgcn_mfma_f32_16x16x16bf16_1k(av, bv, acc, 0, 0, 0);
    }
};

template <> struct gp_mma<GP_DTYPE_F32> : gp_mfma_base {
    static constexpr bool core = true;
    __device__ static void step(acc_t &acc, const float *a, int lda, const float *b, int ldb) {
        const int lane = threadIdx.x % GP_WAVE;
        const int r = lane % 16, k = lane / 16;
#pragma unroll
        for (int s = 0; s < 4; s++) { /* K slices 0-3, 4-7, 8-11, 12-15 in order */
            acc = __builtin_amdgcn_mfma_f32_16x16x4f32(a[r * lda + 4 * s + k],
                                                       b[r * ldb + 4 * s + k], acc, 0, 0, 0);
        }
    }
};
#endif /* GP_MMA_MFMA */

#if defined(GP_MMA_WMMA)
/* nvcuda::wmma fragments; pointers 32-byte aligned, ld a multiple of 8
 * elements (16-bit) or 4 (f32): the GEMM's shared-memory layout ensures both. */
template <typename T> struct gp_wmma_base {
    typedef nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> acc_t;
    static constexpr bool core = true;
    __device__ static void zero(acc_t &acc) { nvcuda::wmma::fill_fragment(acc, 0.0f); }
    __device__ static void step(acc_t &acc, const uint16_t *a, int lda, const uint16_t *b,
                                int ldb) {
        nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, T, nvcuda::wmma::row_major> af;
        nvcuda::wmma::fragment<nvcuda::wmma::matrix_b, 16, 16, 16, T, nvcuda::wmma::col_major> bf;
        nvcuda::wmma::load_matrix_sync(af, reinterpret_cast<const T *>(a), lda);
        nvcuda::wmma::load_matrix_sync(bf, reinterpret_cast<const T *>(b), ldb);
        nvcuda::wmma::mma_sync(acc, af, bf, acc);
    }
    __device__ static void store(const acc_t &acc, float *c, int ldc) {
        nvcuda::wmma::store_matrix_sync(c, acc, ldc, nvcuda::wmma::mem_row_major);
    }
};
template <> struct gp_mma<GP_DTYPE_F16> : gp_wmma_base<__half> {};
template <> struct gp_mma<GP_DTYPE_BF16> : gp_wmma_base<__nv_bfloat16> {};
#endif /* GP_MMA_WMMA */

#endif /* GP_MMA_H */
