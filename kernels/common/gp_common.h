/*
 * gp_common.h: the layer every backend of greta_parity.h shares (the CPU
 * library built by gcc, the HIP library built by nvcc -x cu and by hipcc):
 * process-wide error / attestation / fault state, the split-K and route
 * policies, and one argument check per entry point so that every backend
 * rejects the same calls with the same status and the same message.
 *
 * gp_common.c compiles as C11 and as C++. The check functions only look at
 * scalars and pointer values, never dereference device pointers.
 */
#ifndef GP_COMMON_H
#define GP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "greta_parity.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define GP_PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define GP_PRINTF_LIKE(f, a)
#endif

/* Capacity of the gp_last_error() message, NUL included. */
#define GP_ERROR_CAP 512

/* ---- errors and attestation ------------------------------------------ */

/* Formats the message (it should start with the entry point's name, e.g.
 * "gp_linear: K=0 must be > 0"), stores it for gp_last_error() and returns
 * status. Use as `return gp_fail(GP_ERR_INVALID_ARG, "...", ...);`. */
int gp_fail(int status, const char *fmt, ...) GP_PRINTF_LIKE(2, 3);
/* Returns GP_OK (the last error message stays: it is the last *failing* call). */
int gp_ok(void);
/* Records the kernel variant of the call that just succeeded, for
 * gp_last_launch(). kernel is truncated to GP_KERNEL_NAME_CAP - 1 bytes. */
void gp_attest(int route, int tile_m, int tile_n, int tile_k, int split_k, const char *kernel);

/* ---- faults ----------------------------------------------------------- */

/* The fault names of greta_parity.h, in the header's order; gp_fault_name(i)
 * is the name of enum value i. */
enum gp_fault {
    GP_FAULT_NONE = -1,
    GP_FAULT_GEMV_F16_ACC = 0,
    GP_FAULT_ROPE_WRONG_LAYOUT,
    GP_FAULT_ROPE_POS_PREV,
    GP_FAULT_ROPE_POS_ZERO,
    GP_FAULT_GQA_MODULO,
    GP_FAULT_KV_SLOT_OFF,
    GP_FAULT_SCALE_MISSING,
    GP_FAULT_SCALE_TWICE,
    GP_FAULT_MASK_OFF_BY_ONE,
    GP_FAULT_SPLITK_DROP_TAIL,
    GP_FAULT_SOFTMAX_NO_MAX,
    GP_FAULT_BIAS_SKIPPED,
    GP_FAULT_ROUND_TRUNCATE,
    GP_FAULT_ATTN_NO_RESCALE, /* ABI 3: gp_attention */
    GP_FAULT_ATTN_LSE_OFF_BY_ONE,
    GP_FAULT_ATTN_CAUSAL_PREV,
    GP_FAULT_ATTN_GQA_MODULO,
    GP_FAULT_CHUNK_POS_OFF,      /* q_pos0 > 0 and n_q > 1: gp_fault_chunk_on */
    GP_FAULT_BATCH_KV_START_OFF, /* B > 1: gp_fault_batch_on */
    GP_FAULT_ACT_WRONG_HALF,     /* "mlp": gp_gated_act */
    GP_FAULT_RESIDUAL_TWICE,     /* "mlp": gp_residual_add */
    GP_FAULT_GEMV_SKIP_LAST_K_TILE,
    GP_FAULT_POST_NORM_NO_OFFSET, /* "mlp": gp_rmsnorm_offset */
    GP_FAULT_COUNT
};

/* 1 if fault (a gp_fault) is the active fault, whatever the shape. */
int gp_fault_is(int fault);
/* 1 if fault is active AND rows == 1: faults apply to the decode shape only.
 * rows is the call's row count (M, rows or n_q). */
int gp_fault_on(int fault, int rows);
/* 1 if fault is active AND the call is a chunk of a chunked prefill after
 * the first (q_pos0 > 0 and n_q > 1): the chunk_* faults. */
int gp_fault_chunk_on(int fault, int q_pos0, int n_q);
/* 1 if fault is active AND the batched call has B > 1 sequences: the
 * batch_* faults. */
int gp_fault_batch_on(int fault, int B);

/* The K tile gemv_skip_last_k_tile drops: the VALU GEMV reduces only k <
 * gp_fault_k_keep(K), which is K - ((K - 1) % 256 + 1) for K > 256 (the
 * last, possibly partial, tile of 256 elements left out) and K otherwise. */
#define GP_FAULT_K_TILE 256
int gp_fault_k_keep(int K);

/* ---- policies --------------------------------------------------------- */

/* The header's VALU split-K policy: GP_VALU_SPLIT_K if N <=
 * GP_VALU_SPLIT_MAX_N and K >= GP_VALU_SPLIT_K, else 1. */
int gp_valu_split_k(int N, int K);
/* Resolves GP_ROUTE_AUTO: MFMA for M > 1, VALU for M == 1 (never BLAS). Other
 * routes, GP_ROUTE_BLAS included, are returned unchanged. */
int gp_resolve_route(int route, int M);

/* Short names for messages: "f32", "mfma", "blas", "neox", ... ("?" if unknown). */
const char *gp_dtype_name(int dtype);
const char *gp_route_name(int route);
const char *gp_layout_name(int layout);

/* ---- argument checks (GP_OK or the gp_fail() status) ------------------ */

int gp_check_device_count(const int *count);
int gp_check_malloc(void **ptr, size_t bytes);
/* fn is "gp_memcpy_h2d", "gp_memcpy_d2h" or "gp_memcpy_d2d"; bytes == 0 is a
 * valid no-op. */
int gp_check_memcpy(const char *fn, void *dst, const void *src, size_t bytes);

int gp_check_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim,
                     float eps);
/* bias may be NULL, so it is not an argument here. */
int gp_check_linear(int dtype, int route, const void *x, const void *w, void *y, int M, int N,
                    int K);
int gp_check_rope(int dtype, int layout, const void *x, void *y, const int32_t *pos, int rows,
                  int n_heads, int head_dim, float theta);
/* For backends that can read the positions on the host (the CPU backend):
 * every pos[r] must lie in [0, GP_MAX_SEQ). */
int gp_check_rope_positions(const int32_t *pos_host, int rows);
int gp_check_kv_append(int dtype, const void *k, const void *v, void *k_cache, void *v_cache,
                       int rows, int kv_width, int slot, int capacity);
int gp_check_attn_scores(int dtype, const void *q, const void *k_cache, const float *scores,
                         int n_q, int n_kv, int n_heads, int n_kv_heads, int head_dim, int q_pos0,
                         float scale);
int gp_check_softmax(const float *scores, const float *probs, int n_heads, int n_q, int n_kv);
int gp_check_attn_pv(int dtype, const float *probs, const void *v_cache, const void *out, int n_q,
                     int n_kv, int n_heads, int n_kv_heads, int head_dim);
/* lse may be NULL, so it is not an argument here. */
int gp_check_attention(int dtype, const void *q, const void *k_cache, const void *v_cache,
                       const void *out, int n_q, int n_kv, int n_heads, int n_kv_heads,
                       int head_dim, int q_pos0, float scale);
/* "mlp" */
int gp_check_residual_add(int dtype, const void *a, const void *b, void *y, int rows, int width);
int gp_check_rmsnorm_offset(int dtype, const void *x, const void *w, void *y, int rows, int dim,
                            float eps, float w_offset);
int gp_check_gated_act(int dtype, int kind, const void *gate, const void *up, void *y, int rows,
                       int width);
/* "batched": the scalar and pointer arguments (the int32 arrays are device
 * pointers: only checked for NULL here). */
int gp_check_kv_append_batched(int dtype, const void *k, const void *v, void *k_cache,
                               void *v_cache, int B, int kv_width, const int32_t *slot,
                               int capacity);
int gp_check_attention_batched(int dtype, const void *q, const void *k_cache, const void *v_cache,
                               const void *out, int B, const int32_t *kv_start,
                               const int32_t *kv_len, int capacity, int n_heads, int n_kv_heads,
                               int head_dim, float scale);
/* For backends that can read the arrays on the host (the CPU backend):
 * every slot[b] in [0, capacity); every kv_len[b] >= 1, kv_start[b] >= 0
 * and kv_start[b] + kv_len[b] <= capacity. */
int gp_check_batched_slots(const int32_t *slot_host, int B, int capacity);
int gp_check_batched_spans(const int32_t *kv_start_host, const int32_t *kv_len_host, int B,
                           int capacity);
/* The first cache row gp_attention_batched reads for a sequence: kv_start,
 * or kv_start + 1 under batch_kv_start_off (start_off != 0) when that span
 * still ends within capacity. Host and device (the HIP kernels call it). */
#if defined(__HIP__) || defined(__HIPCC__) || defined(__CUDACC__)
#define GP_COMMON_FN static inline __host__ __device__
#else
#define GP_COMMON_FN static inline
#endif
GP_COMMON_FN int gp_batched_first_row(int kv_start, int kv_len, int capacity, int start_off) {
    if (start_off && (long long)kv_start + 1 + kv_len <= capacity) {
        return kv_start + 1;
    }
    return kv_start;
}

/* ---- gp_attention's split policy (GP_ATTN_SPLIT_KEYS) ------------------ */

/* Visible keys of query i (0-based within the call) of gp_attention: keys
 * 0 .. n_vis-1, n_vis = q_pos0 + i + 1 when causal (q_pos0 + i with
 * causal_prev, the attn_causal_prev fault), else n_kv. May be 0 only with
 * causal_prev. */
int gp_attn_visible(int i, int n_kv, int q_pos0, int causal, int causal_prev);
/* Splits of GP_ATTN_SPLIT_KEYS keys covering n_vis visible keys. */
int gp_attn_splits(int n_vis);

/* The static list returned by gp_batch_invariant_stages() on our backends. */
#define GP_BATCH_INVARIANT_STAGES                                                                  \
    "x_norm,q_proj,k_proj,v_proj,q_rope,k_rope,kv_cache,qk,softmax,pv,attn,attn_out,attn_res,"     \
    "post_norm,gate_proj,up_proj,act,down_proj,mlp_res"

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GP_COMMON_H */
