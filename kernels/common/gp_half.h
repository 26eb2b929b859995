/*
 * gp_half.h: bit-exact f16 / bf16 <-> f32 conversions, the one home of the
 * rounding rules: host code (the CPU backend, the self-test) and device code
 * (kernels/hip, through GP_HALF_FN = __host__ __device__ under hipcc/nvcc)
 * call the same functions, which match __float2half_rn / __float2bfloat16_rn.
 *
 * Everything is static inline and compiles as C11 and as C++ (bit casts go
 * through memcpy, no designated initializers, no implicit void * casts).
 *
 *  - *_rn: round to nearest, ties to even (the GPU store). Overflow -> Inf,
 *    results below half the smallest subnormal -> signed zero, subnormals are
 *    produced exactly. Inf stays Inf; NaN stays NaN (quietened, sign kept).
 *  - *_rz: round toward zero (the round_truncate fault). A finite input never
 *    becomes Inf: it saturates to the largest finite value.
 */
#ifndef GP_HALF_H
#define GP_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "greta_parity.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Host and device under a GPU compiler, plain static inline in C. */
#if defined(__HIPCC__) || defined(__CUDACC__)
#define GP_HALF_FN static inline __host__ __device__
#else
#define GP_HALF_FN static inline
#endif /* __HIPCC__ || __CUDACC__ */

GP_HALF_FN uint32_t gp_f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

GP_HALF_FN float gp_bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* 1 if f is neither Inf nor NaN (no <math.h> dependency, C and C++ alike). */
GP_HALF_FN int gp_is_finite_f32(float f) { return (gp_f32_bits(f) & 0x7f800000u) != 0x7f800000u; }

GP_HALF_FN int gp_is_nan_f32(float f) { return (gp_f32_bits(f) & 0x7fffffffu) > 0x7f800000u; }

/* ---- f16 ------------------------------------------------------------- */

GP_HALF_FN float gp_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in f32 */
        float mag = (float)mant * 5.9604644775390625e-8f;
        return gp_bits_f32(gp_f32_bits(mag) | sign);
    }
    if (exp == 31) {
        return gp_bits_f32(sign | 0x7f800000u | (mant << 13));
    }
    return gp_bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

/* Shared f32 -> f16 conversion; rz != 0 rounds toward zero. */
GP_HALF_FN uint16_t gp_f32_to_f16_mode(float f, int rz) {
    uint32_t x = gp_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        if (ax > 0x7f800000u) { /* NaN: quiet, keep the top payload bits */
            return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
        }
        return (uint16_t)(sign | 0x7c00u); /* Inf */
    }
    if (rz) {
        if (ax >= 0x47800000u) { /* >= 65536: saturate at 65504 */
            return (uint16_t)(sign | 0x7bffu);
        }
    } else if (ax >= 0x477ff000u) { /* >= 65520 rounds to Inf */
        return (uint16_t)(sign | 0x7c00u);
    }
    if (ax >= 0x38800000u) { /* normal f16 (>= 2^-14) */
        if (!rz) {
            ax += 0xfffu + ((ax >> 13) & 1u);
        }
        return (uint16_t)(sign | ((ax - 0x38000000u) >> 13));
    }
    /* f16 subnormal or zero: count units of 2^-24 */
    {
        uint32_t e = ax >> 23; /* biased f32 exponent, <= 112 here */
        uint32_t m, shift, r, rem, half;
        if (e < 102u) { /* < 2^-25: rounds to zero either way */
            return sign;
        }
        m = (ax & 0x7fffffu) | 0x800000u;
        shift = 126u - e; /* 14 .. 24 */
        r = m >> shift;
        if (!rz) {
            rem = m & ((1u << shift) - 1u);
            half = 1u << (shift - 1u);
            if (rem > half || (rem == half && (r & 1u))) {
                r++; /* may carry into the smallest normal, 0x0400: correct */
            }
        }
        return (uint16_t)(sign | r);
    }
}

GP_HALF_FN uint16_t gp_f32_to_f16_rn(float f) { return gp_f32_to_f16_mode(f, 0); }
GP_HALF_FN uint16_t gp_f32_to_f16_rz(float f) { return gp_f32_to_f16_mode(f, 1); }

/* ---- bf16 ------------------------------------------------------------ */

GP_HALF_FN float gp_bf16_to_f32(uint16_t b) { return gp_bits_f32((uint32_t)b << 16); }

GP_HALF_FN uint16_t gp_f32_to_bf16_rn(float f) {
    uint32_t x = gp_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((x >> 16) | 0x0040u); /* NaN stays NaN (quiet) */
    }
    x += 0x7fffu + ((x >> 16) & 1u); /* overflow carries into Inf: correct */
    return (uint16_t)(x >> 16);
}

GP_HALF_FN uint16_t gp_f32_to_bf16_rz(float f) {
    uint32_t x = gp_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) {
        return (uint16_t)((x >> 16) | 0x0040u);
    }
    return (uint16_t)(x >> 16);
}

/* ---- dtype-generic element access ------------------------------------ */

/* Bytes per element of a gp_dtype; 0 for an unknown dtype. */
static inline size_t gp_dtype_size(int dtype) {
    switch (dtype) {
    case GP_DTYPE_F32:
        return 4;
    case GP_DTYPE_F16:
    case GP_DTYPE_BF16:
        return 2;
    default:
        return 0;
    }
}

/* Element i of a dtype tensor, as f32. */
static inline float gp_load(int dtype, const void *p, size_t i) {
    if (dtype == GP_DTYPE_F32) {
        return ((const float *)p)[i];
    }
    if (dtype == GP_DTYPE_F16) {
        return gp_f16_to_f32(((const uint16_t *)p)[i]);
    }
    return gp_bf16_to_f32(((const uint16_t *)p)[i]);
}

/* Stores v into element i, rounded to the dtype (toward zero if rz). */
static inline void gp_store(int dtype, void *p, size_t i, float v, int rz) {
    if (dtype == GP_DTYPE_F32) {
        ((float *)p)[i] = v;
    } else if (dtype == GP_DTYPE_F16) {
        ((uint16_t *)p)[i] = rz ? gp_f32_to_f16_rz(v) : gp_f32_to_f16_rn(v);
    } else {
        ((uint16_t *)p)[i] = rz ? gp_f32_to_bf16_rz(v) : gp_f32_to_bf16_rn(v);
    }
}

/* v rounded (RNE) to the dtype and back to f32. */
static inline float gp_round_to(int dtype, float v) {
    if (dtype == GP_DTYPE_F16) {
        return gp_f16_to_f32(gp_f32_to_f16_rn(v));
    }
    if (dtype == GP_DTYPE_BF16) {
        return gp_bf16_to_f32(gp_f32_to_bf16_rn(v));
    }
    return v;
}

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GP_HALF_H */
