/*
 * greta_parity.h: the kernel C ABI that the decode-vs-prefill parity harness
 * drives. One header for every backend: the CPU reference implementation
 * (kernels/cpu), the HIP kernels built for ROCm (hipcc) and for CUDA (nvcc),
 * and any engine library that wants to be checked by the harness.
 *
 * Conventions (every entry point):
 *  - Returns an int status: GP_OK (0) or one of gp_status. Never aborts, never
 *    crashes on bad arguments: sizes are validated first, and a failing call
 *    leaves a message naming the offending argument in gp_last_error(), e.g.
 *    "gp_linear: K=0 must be > 0".
 *  - Device pointers are opaque (void *) values returned by gp_malloc. Host
 *    pointers appear only in gp_memcpy_* and in the out-parameters of query
 *    functions. A NULL pointer where data is required is GP_ERR_NULL_POINTER.
 *  - Launches are asynchronous where the backend is; gp_synchronize() waits
 *    and reports any asynchronous failure.
 *  - Tensors are dense and row-major. "dtype" is the storage type of every
 *    activation, weight and bias tensor of a call; arithmetic accumulates in
 *    f32. Results are rounded to the storage dtype with round-to-nearest-even,
 *    exactly as a GPU store (__float2half_rn / __float2bfloat16_rn) does.
 *  - Attention scores and probabilities are always f32.
 *  - Layouts:
 *      activations   [rows, width]                       dtype
 *      weight W      [N, K]   (y = x * W^T)              dtype
 *      bias          [N]                                 dtype
 *      positions     [rows]                              int32
 *      KV cache      [capacity, n_kv_heads * head_dim]   dtype (token-major)
 *      scores/probs  [n_heads, n_q, n_kv]                f32
 *      attention out [n_q, n_heads * head_dim]           dtype
 *  - Faults (gp_set_fault) apply only to calls whose row count (M, rows, or
 *    n_q) is 1, that is to the single-token decode shape, whatever the route.
 *    They exist so the harness can prove it catches real bugs.
 */
#ifndef GRETA_PARITY_H
#define GRETA_PARITY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change of a signature, layout or enum value below.
 * Version 2 (additive over 1): gp_memcpy_d2d and GP_ROUTE_BLAS. */
#define GP_ABI_VERSION 2

/* Limits every backend enforces (GP_ERR_INVALID_ARG beyond them). */
#define GP_MAX_SEQ 65536    /* rows, n_q, n_kv, capacity, positions */
#define GP_MAX_DIM 65536    /* M excluded: K, N, dim, widths */
#define GP_MAX_HEAD_DIM 256 /* attention and RoPE head_dim */
#define GP_KERNEL_NAME_CAP 64

typedef enum gp_status {
    GP_OK = 0,
    GP_ERR_INVALID_ARG = 1,   /* a size, enum or combination is invalid */
    GP_ERR_NULL_POINTER = 2,  /* a required pointer is NULL */
    GP_ERR_UNSUPPORTED = 3,   /* valid, but this backend cannot do it */
    GP_ERR_DEVICE = 4,        /* the runtime reported an error */
    GP_ERR_OUT_OF_MEMORY = 5, /* allocation failed */
    GP_ERR_UNKNOWN_FAULT = 6  /* gp_set_fault: no such fault name */
} gp_status;

typedef enum gp_dtype { GP_DTYPE_F32 = 0, GP_DTYPE_F16 = 1, GP_DTYPE_BF16 = 2 } gp_dtype;

/* Projection routes. AUTO picks MFMA for M > 1 and VALU for M == 1; it never
 * picks BLAS. */
typedef enum gp_route {
    GP_ROUTE_AUTO = 0,
    GP_ROUTE_MFMA = 1, /* matrix-core tiled GEMM (MFMA on AMD, MMA on NVIDIA);
                          reduction over fixed K tiles, f32 partials summed
                          tile by tile */
    GP_ROUTE_VALU = 2, /* per-row GEMV: lane-strided f32 partial sums over a
                          64-lane (AMD, CPU) / 32-lane (NVIDIA) group,
                          reduced as a butterfly tree, optional split-K */
    GP_ROUTE_BLAS = 3  /* the vendor library's GEMM (cuBLAS on CUDA, hipBLASLt
                          or rocBLAS on ROCm) with f32 accumulation: a speed
                          and accuracy anchor for benchmarks, NOT batch
                          invariant (the library picks its kernel, split-K
                          and reduction order by M), so never a parity
                          route. Attested as route 3 with the library's name
                          as the kernel name. A backend without a vendor
                          library returns GP_ERR_UNSUPPORTED; so does an
                          active fault the library cannot reproduce
                          (round_truncate at M == 1). */
} gp_route;

/* Split-K policy of the VALU route, the same on every backend so that a
 * split-K fault is visible at the same shapes: split_k = GP_VALU_SPLIT_K when
 * N <= GP_VALU_SPLIT_MAX_N and K >= GP_VALU_SPLIT_K, else 1. Split s covers
 * K elements [s*(K/split_k), (s+1)*(K/split_k)), the last split also takes
 * the K % split_k tail; the split partials are summed in order s = 0, 1, ... */
#define GP_VALU_SPLIT_K 4
#define GP_VALU_SPLIT_MAX_N 256

/* RoPE layouts: which element pairs rotate together within a head. */
typedef enum gp_rope_layout {
    GP_ROPE_NEOX = 0,       /* rotate-half: pairs (i, i + d/2), i < d/2 */
    GP_ROPE_INTERLEAVED = 1 /* GPT-J: pairs (2i, 2i + 1), i < d/2 */
} gp_rope_layout;

/* ---- identity and errors --------------------------------------------- */

/* Returns GP_ABI_VERSION of the library; callers check it before anything. */
int gp_abi_version(void);
/* Static string naming the backend and target, e.g. "cpu", "cuda sm_90". */
const char *gp_backend_name(void);
/* Static string for a status code, e.g. "invalid argument". */
const char *gp_status_string(int status);
/* Message of the last failing call ("" if none). Process-wide, like the
 * attestation below: the harness calls from one thread at a time. */
const char *gp_last_error(void);

/* ---- device and memory ----------------------------------------------- */

int gp_device_count(int *count);
/* Allocates bytes (> 0) of device memory, aligned to at least 256 bytes. */
int gp_malloc(void **ptr, size_t bytes);
int gp_free(void *ptr); /* gp_free(NULL) is a no-op returning GP_OK */
int gp_memcpy_h2d(void *dst_device, const void *src_host, size_t bytes);
int gp_memcpy_d2h(void *dst_host, const void *src_device, size_t bytes);
/* Device-to-device copy (ABI 2): asynchronous where the backend is, in order
 * with the launches; bytes == 0 is a no-op. The regions must not overlap.
 * Benchmarks use it as the bandwidth ceiling (bytes read + written). */
int gp_memcpy_d2d(void *dst_device, const void *src_device, size_t bytes);
int gp_synchronize(void);

/* ---- sub-stages ------------------------------------------------------ */

/* x_norm: y[r,:] = x[r,:] * w / sqrt(mean(x[r,:]^2) + eps), r < rows. */
int gp_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim, float eps);

/* q_proj, k_proj, v_proj, attn_out: y[M,N] = x[M,K] * W[N,K]^T (+ bias[N]).
 * bias may be NULL. route is a gp_route; AUTO resolves by M (never to BLAS). */
int gp_linear(int dtype, int route, const void *x, const void *w, const void *bias, void *y, int M,
              int N, int K);

/* q_rope, k_rope: y = RoPE(x) for rows tokens of n_heads heads of head_dim
 * (even, <= GP_MAX_HEAD_DIM), token r at position pos[r] (0 <= pos <
 * GP_MAX_SEQ). Angle of pair i: pos * theta^(-2i/head_dim), computed in f32
 * with precise (not fast-math) sin/cos. x and y are [rows, n_heads*head_dim]
 * and may alias. */
int gp_rope(int dtype, int layout, const void *x, void *y, const int32_t *pos, int rows,
            int n_heads, int head_dim, float theta);

/* kv_cache: copies k[rows, kv_width] and v[rows, kv_width] into rows
 * slot..slot+rows-1 of k_cache and v_cache ([capacity, kv_width]).
 * Requires 0 <= slot and slot + rows <= capacity. Copies are exact. */
int gp_kv_append(int dtype, const void *k, const void *v, void *k_cache, void *v_cache, int rows,
                 int kv_width, int slot, int capacity);

/* qk: scores[h, i, j] = scale * dot(q[i, h], k_cache[j, h / (n_heads /
 * n_kv_heads)]) for query i < n_q at position q_pos0 + i and key j < n_kv.
 * With causal != 0, keys j > q_pos0 + i get -INFINITY. Requires n_heads %
 * n_kv_heads == 0, q_pos0 + n_q <= n_kv, head_dim % 8 == 0. Every element of
 * scores is written. */
int gp_attn_scores(int dtype, const void *q, const void *k_cache, float *scores, int n_q, int n_kv,
                   int n_heads, int n_kv_heads, int head_dim, int q_pos0, float scale, int causal);

/* softmax: probs[h, i, :] = softmax(scores[h, i, :]) with the row maximum
 * subtracted first; -INFINITY maps to 0. A row of only -INFINITY is
 * GP_ERR_INVALID_ARG in spirit but cannot be detected cheaply: it yields NaN. */
int gp_softmax(const float *scores, float *probs, int n_heads, int n_q, int n_kv);

/* pv: out[i, h*head_dim + c] = sum_j probs[h, i, j] * v_cache[j, g*head_dim
 * + c] with g = h / (n_heads / n_kv_heads); f32 accumulation over j in
 * increasing order, rounded once to dtype. */
int gp_attn_pv(int dtype, const float *probs, const void *v_cache, void *out, int n_q, int n_kv,
               int n_heads, int n_kv_heads, int head_dim);

/* ---- route attestation ----------------------------------------------- */

/* Describes the kernel variant that ran for the last successful sub-stage
 * call (process-wide): route (gp_route, never AUTO; 0 for non-projection
 * ops), tile sizes (0 where not tiled), split-K factor (1 = none), and the
 * kernel's name (NUL-terminated, truncated to kernel_cap bytes). Any
 * out-pointer may be NULL. GP_ERR_INVALID_ARG if no call has run yet. */
int gp_last_launch(int *route, int *tile_m, int *tile_n, int *tile_k, int *split_k, char *kernel,
                   int kernel_cap);

/* ---- fault injection (decode shape only, see the top of this file) -- */

/* Selects a fault by name; "" or "none" clears it. GP_ERR_UNKNOWN_FAULT if
 * the backend does not implement the name. Process-wide. */
int gp_set_fault(const char *name);
/* Static string: the active fault's name, "none" if none. */
const char *gp_active_fault(void);
/* Number of faults this backend implements, and the i-th name. */
int gp_fault_count(void);
const char *gp_fault_name(int i);

/* Fault names every backend implements (each active only at row count 1):
 *  gemv_f16_acc       VALU GEMV accumulates in f16 (partials rounded to f16)
 *  rope_wrong_layout  RoPE uses the other layout (neox <-> interleaved)
 *  rope_pos_prev      RoPE uses position pos - 1 (floored at 0)
 *  rope_pos_zero      RoPE uses position 0
 *  gqa_modulo         attention maps head h to kv head h % n_kv_heads
 *                     (both qk and pv)
 *  kv_slot_off        KV append writes to slot + 1 (if < capacity, else
 *                     nothing): the intended slot stays unwritten
 *  scale_missing      qk omits scale
 *  scale_twice        qk applies scale twice
 *  mask_off_by_one    causal mask hides key q_pos0 + i itself
 *  splitk_drop_tail   split-K GEMV drops the last K % split_k elements
 *                     (visible only when split_k > 1 and K % split_k != 0)
 *  softmax_no_max     softmax without max subtraction (inf/NaN at large
 *                     scores)
 *  bias_skipped       linear ignores bias
 *  round_truncate     linear rounds its output toward zero instead of
 *                     nearest-even (one ulp; f16/bf16 only)
 */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GRETA_PARITY_H */
