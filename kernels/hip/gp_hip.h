/*
 * gp_hip.h: what every kernels/hip source shares. The sources are written in
 * the HIP dialect and build two ways:
 *   - hipcc / clang -x hip for AMD GPUs (ROCm): GP_AMD, 64-lane wavefronts;
 *   - nvcc -x cu for NVIDIA GPUs: GP_NVIDIA, 32-lane warps, through the flat
 *     alias header hip_to_cuda.h.
 * Vendor differences live here, in hip_to_cuda.h and in gp_mma.h; the kernel
 * files themselves carry no vendor #if.
 *
 * Numerics: every source is built without FMA contraction (-fmad=false,
 * -ffp-contract=off), so an expression rounds where it is written and fmaf()
 * appears where a fused multiply-add is meant. f16/bf16 conversions are done
 * in integer arithmetic, bit for bit those of gp_half.h, on both vendors
 * (f16 -> f32 on NVIDIA: the hardware conversion, which is exact too).
 */
#ifndef GP_HIP_H
#define GP_HIP_H

#include <stddef.h>
#include <stdint.h>

/* Vendor selection: clang defines __HIP__ for -x hip (hipcc); nvcc defines
 * __CUDACC__ and is never __HIP__. */
#if defined(__HIP__)
#include <hip/hip_runtime.h>
#define GP_AMD 1
#define GP_WAVE 64 /* CDNA (gfx9) wavefront; RDNA wave32 is not targeted */
#define GP_VENDOR "hip"
#define GP_WAVE_NAME "wave64"
#elif defined(__CUDACC__)
#include "hip_to_cuda.h"
#define GP_NVIDIA 1
#define GP_WAVE 32
#define GP_VENDOR "cuda"
#define GP_WAVE_NAME "warp32"
#else
#error "gp_hip.h: build with hipcc/clang -x hip (ROCm) or nvcc -x cu (CUDA)"
#endif /* __HIP__ / __CUDACC__ */

#include "gp_common.h"
#include "gp_half.h"
#include "greta_parity.h"

/* Build target for gp_backend_name(), e.g. "gfx942" or "sm_90" (hip.mk). */
#ifndef GP_TARGET_NAME
#define GP_TARGET_NAME "unknown"
#endif /* GP_TARGET_NAME */

/* Threads per block of the row-wise kernels (rmsnorm, softmax, attention). */
#define GP_BLOCK 256
/* Upper bound on blocks per launch; kernels loop over the rest, so a grid
 * never exceeds a vendor limit whatever the shape. */
#define GP_MAX_BLOCKS 65535

#define GP_INF __int_as_float(0x7f800000)

/* ---- storage types ---------------------------------------------------- */

/* Storage element of a gp_dtype: float, or the raw 16 bits of f16 / bf16. */
template <int DT> struct gp_elem {
    typedef uint16_t type;
};
template <> struct gp_elem<GP_DTYPE_F32> {
    typedef float type;
};

__device__ __forceinline__ float gp_dev_bits_f32(uint32_t u) { return __uint_as_float(u); }

/* f16 bits -> f32, exact (gp_half.h gp_f16_to_f32). Every f16 value is an
 * f32 value, so the conversion has one right answer for every finite and
 * infinite input: NVIDIA does it in one hardware instruction (the integer
 * path costs a dozen ALU operations per element, which made f16 GEMV and
 * attention ALU-bound); only a signalling NaN's quiet bit can differ, and a
 * NaN input fails every comparison anyway. */
__device__ __forceinline__ float gp_dev_f16_to_f32(uint16_t h) {
#if defined(GP_NVIDIA)
    return __half2float(__ushort_as_half((unsigned short)h));
#else
    return gp_f16_to_f32(h);
#endif /* GP_NVIDIA */
}

/* The stores round exactly as the host does: gp_half.h is the one home of
 * the rounding rules (nearest-even, or toward zero for round_truncate). */
__device__ __forceinline__ uint16_t gp_dev_f32_to_f16(float f, bool rz) {
    return gp_f32_to_f16_mode(f, rz ? 1 : 0);
}

__device__ __forceinline__ float gp_dev_bf16_to_f32(uint16_t b) { return gp_bf16_to_f32(b); }

__device__ __forceinline__ uint16_t gp_dev_f32_to_bf16(float f, bool rz) {
    return rz ? gp_f32_to_bf16_rz(f) : gp_f32_to_bf16_rn(f);
}

/* Storage -> f32. */
template <int DT> __device__ __forceinline__ float gp_to_f32(typename gp_elem<DT>::type v);
template <> __device__ __forceinline__ float gp_to_f32<GP_DTYPE_F32>(float v) { return v; }
template <> __device__ __forceinline__ float gp_to_f32<GP_DTYPE_F16>(uint16_t v) {
    return gp_dev_f16_to_f32(v);
}
template <> __device__ __forceinline__ float gp_to_f32<GP_DTYPE_BF16>(uint16_t v) {
    return gp_dev_bf16_to_f32(v);
}

/* f32 -> storage, rounded nearest-even (rz: toward zero; f32 is unchanged). */
template <int DT>
__device__ __forceinline__ typename gp_elem<DT>::type gp_from_f32(float v, bool rz = false);
template <> __device__ __forceinline__ float gp_from_f32<GP_DTYPE_F32>(float v, bool) { return v; }
template <> __device__ __forceinline__ uint16_t gp_from_f32<GP_DTYPE_F16>(float v, bool rz) {
    return gp_dev_f32_to_f16(v, rz);
}
template <> __device__ __forceinline__ uint16_t gp_from_f32<GP_DTYPE_BF16>(float v, bool rz) {
    return gp_dev_f32_to_bf16(v, rz);
}

/* v rounded to f16 and back: the gemv_f16_acc fault's accumulator. */
__device__ __forceinline__ float gp_round_f16(float v) {
    return gp_dev_f16_to_f32(gp_dev_f32_to_f16(v, false));
}

/* Elements per 16-byte vector of a dtype. */
template <int DT> struct gp_vec {
    static constexpr int n = 16 / (int)sizeof(typename gp_elem<DT>::type);
};

/* Loads gp_vec<DT>::n elements at p (16-byte aligned) as f32. */
template <int DT>
__device__ __forceinline__ void gp_load_vec16(const typename gp_elem<DT>::type *p, float *out) {
    const uint4 v = *reinterpret_cast<const uint4 *>(p);
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    if constexpr (DT == GP_DTYPE_F32) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            out[i] = gp_dev_bits_f32(w[i]);
        }
    } else {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            out[2 * i] = gp_to_f32<DT>((uint16_t)(w[i] & 0xffffu));
            out[2 * i + 1] = gp_to_f32<DT>((uint16_t)(w[i] >> 16));
        }
    }
}

__device__ __forceinline__ bool gp_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

/* The 16 raw bytes (gp_vec<DT>::n elements) at p: one vector load where
 * vec_ok (p 16-byte aligned), element by element otherwise; for staging
 * through registers into shared memory. */
template <int DT>
__device__ __forceinline__ uint4 gp_load_raw16(const typename gp_elem<DT>::type *p, int vec_ok) {
    if (vec_ok) {
        return *reinterpret_cast<const uint4 *>(p);
    }
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
        if constexpr (DT == GP_DTYPE_F32) {
            w[k] = __float_as_uint(p[k]);
        } else {
            w[k] = (uint32_t)p[2 * k] | ((uint32_t)p[2 * k + 1] << 16);
        }
    }
    return make_uint4(w[0], w[1], w[2], w[3]);
}

/* ---- reductions in a fixed order ---------------------------------------- */

/* Butterfly (xor) sum over the wave: every lane ends with the same value, and
 * the tree is the same for every call. */
__device__ __forceinline__ float gp_wave_sum(float v) {
#pragma unroll
    for (int off = GP_WAVE / 2; off > 0; off >>= 1) {
        v += __shfl_xor(v, off);
    }
    return v;
}

__device__ __forceinline__ float gp_wave_max(float v) {
#pragma unroll
    for (int off = GP_WAVE / 2; off > 0; off >>= 1) {
        v = fmaxf(v, __shfl_xor(v, off));
    }
    return v;
}

/* Block-wide sum (blockDim.x == GP_BLOCK): butterfly per wave, then the wave
 * sums added in wave order. Returned to every thread. scratch holds
 * GP_BLOCK / GP_WAVE floats. Ends with a barrier, so it may be called again. */
__device__ __forceinline__ float gp_block_sum(float v, float *scratch) {
    const int lane = threadIdx.x % GP_WAVE;
    const int wave = threadIdx.x / GP_WAVE;
    v = gp_wave_sum(v);
    if (lane == 0) {
        scratch[wave] = v;
    }
    __syncthreads();
    float s = scratch[0];
    for (int w = 1; w < GP_BLOCK / GP_WAVE; w++) {
        s += scratch[w];
    }
    __syncthreads();
    return s;
}

__device__ __forceinline__ float gp_block_max(float v, float *scratch) {
    const int lane = threadIdx.x % GP_WAVE;
    const int wave = threadIdx.x / GP_WAVE;
    v = gp_wave_max(v);
    if (lane == 0) {
        scratch[wave] = v;
    }
    __syncthreads();
    float s = scratch[0];
    for (int w = 1; w < GP_BLOCK / GP_WAVE; w++) {
        s = fmaxf(s, scratch[w]);
    }
    __syncthreads();
    return s;
}

/* ---- host side -------------------------------------------------------- */

/* Turns a runtime error into GP_ERR_DEVICE (or GP_ERR_OUT_OF_MEMORY) with the
 * runtime's message: "<fn>: <what>: <runtime message> (<error name>)". */
int gp_hip_fail(const char *fn, const char *what, hipError_t err);

/* After a launch: GP_OK, or the launch error as gp_hip_fail() reports it. */
int gp_hip_check_launch(const char *fn, const char *kernel);

/* 1 if the current device runs the matrix-core tiles of gp_mma.h for dtype
 * (MFMA on gfx90a / gfx94x, MMA on NVIDIA sm_80+ for f16 and bf16); the
 * GEMM names itself accordingly. Mirrors the device-side GP_MMA_* macros. */
int gp_hip_matrix_cores(int dtype);

/* The two routes of gp_linear (linear.hip): fault flags below, already
 * resolved for the call's M by the caller (gp_fault_on). */
enum {
    GP_LIN_SKIP_BIAS = 1,   /* bias_skipped */
    GP_LIN_ROUND_TRUNC = 2, /* round_truncate */
    GP_LIN_F16_ACC = 4,     /* gemv_f16_acc (VALU only) */
    GP_LIN_DROP_TAIL = 8,   /* splitk_drop_tail (VALU only) */
    GP_LIN_SKIP_K_TILE = 16 /* gemv_skip_last_k_tile (VALU only) */
};
/* MFMA route: tiled GEMM (gemm_mfma.hip). */
int gp_hip_gemm(int dtype, const void *x, const void *w, const void *bias, void *y, int M, int N,
                int K, int flags);
/* VALU route: split-K GEMV (gemv_valu.hip). */
int gp_hip_gemv(int dtype, const void *x, const void *w, const void *bias, void *y, int M, int N,
                int K, int flags);

/* 1 where the build links a vendor BLAS for GP_ROUTE_BLAS (blas.hip): CUDA
 * builds with GP_BLAS_CUBLAS (hip.mk); ROCm builds have none yet. */
#if defined(GP_BLAS_CUBLAS) && defined(GP_NVIDIA)
#define GP_HIP_HAS_BLAS 1
#else
#define GP_HIP_HAS_BLAS 0
#endif /* GP_BLAS_CUBLAS && GP_NVIDIA */

/* BLAS route: the vendor library's GEMM (blas.hip), or GP_ERR_UNSUPPORTED
 * where the build links none. Only GP_LIN_SKIP_BIAS applies; an active
 * GP_LIN_ROUND_TRUNC is GP_ERR_UNSUPPORTED. */
int gp_hip_blas(int dtype, const void *x, const void *w, const void *bias, void *y, int M, int N,
                int K, int flags);

/* A device scratch buffer between two kernels of one entry point: grown on
 * demand, never shrunk, kept for the life of the process (the ABI has no
 * unload hook). One static instance per user. */
struct gp_hip_workspace {
    void *ptr;
    size_t bytes;
};

/* Grows ws to at least bytes; fn names the entry point in messages. */
static inline int gp_hip_workspace_grow(gp_hip_workspace *ws, const char *fn, size_t bytes) {
    if (bytes <= ws->bytes) {
        return GP_OK;
    }
    if (ws->ptr != NULL) {
        const hipError_t err = hipFree(ws->ptr);
        ws->ptr = NULL;
        ws->bytes = 0;
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
    ws->ptr = p;
    ws->bytes = bytes;
    return GP_OK;
}

/* Blocks for a launch over n independent work items (>= 1, <= GP_MAX_BLOCKS). */
static inline unsigned gp_grid(long long n) {
    if (n < 1) {
        return 1;
    }
    return n > GP_MAX_BLOCKS ? (unsigned)GP_MAX_BLOCKS : (unsigned)n;
}

#endif /* GP_HIP_H */
