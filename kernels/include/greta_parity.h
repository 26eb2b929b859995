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
 *    They exist so the harness can prove it catches real bugs. Exceptions,
 *    each named in the fault list: the chunk_* faults act on a chunk of a
 *    chunked prefill (q_pos0 > 0 and n_q > 1), which neither decode nor a
 *    one-shot prefill ever calls; the batch_* faults act on a batched call
 *    of B > 1 sequences ("batched").
 *
 * Structure (ABI 3): the CORE entry points are required; every library
 * exports all of them. The CAPABILITIES are optional groups of entry points:
 * a library implements a capability by exporting ALL of its symbols, and the
 * harness looks each one up with dlsym and uses the capability only when
 * every symbol of it is there. A library must implement at least one of the
 * two attention capabilities, "unfused" and "fused".
 *
 *   CORE          gp_abi_version gp_backend_name gp_status_string
 *                 gp_last_error gp_device_count gp_malloc gp_free
 *                 gp_memcpy_h2d gp_memcpy_d2h gp_synchronize gp_rmsnorm
 *                 gp_linear gp_rope gp_kv_append
 *   "batched"     gp_kv_append_batched gp_attention_batched
 *   "faults"      gp_set_fault gp_active_fault gp_fault_count gp_fault_name
 *   "attestation" gp_last_launch
 *   "d2d"         gp_memcpy_d2d
 *   "routes"      gp_forced_routes
 *   "unfused"     gp_attn_scores gp_softmax gp_attn_pv
 *   "fused"       gp_attention
 *   "invariance"  gp_batch_invariant_stages
 *   "mlp"         gp_residual_add gp_rmsnorm_offset gp_gated_act
 *
 * Batch invariance: a stage is batch invariant when its output for one row
 * (token) is bit-identical whatever the row count (M, rows, n_q) of the call,
 * given the same inputs for that row (for the projections: on a forced
 * route; AUTO may pick another kernel by M). A library declares such stages
 * with gp_batch_invariant_stages(); the harness requires decode == prefill
 * bit for bit only for the declared stages and holds the others to the
 * tolerance model. Without the "invariance" capability no stage is declared.
 */
#ifndef GRETA_PARITY_H
#define GRETA_PARITY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change of a signature, layout or enum value below.
 * Version 2 (additive over 1): gp_memcpy_d2d and GP_ROUTE_BLAS.
 * Version 3: real engines do not export the whole surface of version 2, and
 * most fuse attention. So the ABI is split into a required CORE and optional
 * CAPABILITIES found by symbol lookup (faults, attestation, d2d, routes,
 * unfused, fused, invariance; see above); new: gp_attention (the fused
 * attention stage "attn", split-KV flash decoding on our backends, with an
 * optional log-sum-exp output), gp_forced_routes (which routes gp_linear
 * accepts besides AUTO) and gp_batch_invariant_stages (a per-library
 * declaration of which stages are bit-identical whatever the row count),
 * and four decode faults of gp_attention. The signatures of version 2 are
 * unchanged. Still version 3, optional and additive: the "batched"
 * capability (gp_kv_append_batched, gp_attention_batched: decode of B
 * sequences in one call over a shared KV cache) and the faults
 * chunk_pos_off and batch_kv_start_off; no existing signature, layout or
 * enum value changed, and a library without them loads as before. Also
 * optional and additive, so also version 3: the "mlp" capability (the rest
 * of the layer after attn_out: gp_residual_add, gp_rmsnorm_offset,
 * gp_gated_act and the gp_act enum; the MLP projections are gp_linear) and
 * its four decode faults. */
#define GP_ABI_VERSION 3

/* Limits every backend enforces (GP_ERR_INVALID_ARG beyond them). */
#define GP_MAX_SEQ 65536 /* rows, n_q, n_kv, capacity, positions */
#define GP_MAX_DIM 65536 /* M excluded: K, dim, widths (and N but for gp_linear) */
/* gp_linear's N: up to a vocabulary (the LM head; Gemma's 256000). Wider
 * than GP_MAX_DIM since the head stages; a library that accepted the old
 * limit only loads as before (the head cases then fail with its error). */
#define GP_MAX_LINEAR_N 262144
#define GP_MAX_HEAD_DIM 256 /* attention and RoPE head_dim */
#define GP_KERNEL_NAME_CAP 64

/* Keys per split of gp_attention on our backends (CPU, HIP): split s covers
 * keys [s * GP_ATTN_SPLIT_KEYS, (s + 1) * GP_ATTN_SPLIT_KEYS). Fixed, so the
 * split boundaries depend on the key index alone, never on n_q. */
#define GP_ATTN_SPLIT_KEYS 64

/* Keys per chunk of gp_attn_pv's accumulation (every backend; the ABI's
 * summation order): chunk t covers keys [t * GP_ATTN_PV_CHUNK_KEYS, (t + 1)
 * * GP_ATTN_PV_CHUNK_KEYS). Fixed, independent of n_q, so that a decode
 * call can split the keys over parallel chains (at n_q = 1 one chain per
 * output element leaves too few to fill a GPU) and still equal the prefill
 * row bit for bit. */
#define GP_ATTN_PV_CHUNK_KEYS 256

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
                          and reduction order by M), so never a bitwise
                          parity route; the harness compares it in
                          tolerance mode (GRETA_GEMM_FORCE=BLAS, with the
                          engine contract: a bias added after the rounded
                          product is an extra rounding). Attested as route 3 with the library's name
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

/* ==== CORE (required) ================================================== */

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
int gp_synchronize(void);

/* ---- sub-stages ------------------------------------------------------ */

/* x_norm: y[r,:] = x[r,:] * w / sqrt(mean(x[r,:]^2) + eps), r < rows. */
int gp_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim, float eps);

/* q_proj, k_proj, v_proj, attn_out: y[M,N] = x[M,K] * W[N,K]^T (+ bias[N]).
 * bias may be NULL. route is a gp_route; AUTO resolves by M (never to BLAS).
 * A library without the "routes" capability need only accept AUTO; with it,
 * gp_forced_routes() says which other routes it accepts. */
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

/* ==== CAPABILITIES (optional; all symbols of a capability, or none) ===== */

/* ---- "faults": fault injection (decode shape only, see the top) ------- */

/* Selects a fault by name; "" or "none" clears it. GP_ERR_UNKNOWN_FAULT if
 * the backend does not implement the name. Process-wide. */
int gp_set_fault(const char *name);
/* Static string: the active fault's name, "none" if none. */
const char *gp_active_fault(void);
/* Number of faults this backend implements, and the i-th name. */
int gp_fault_count(void);
const char *gp_fault_name(int i);

/* Fault names of our backends (each active only at row count 1). A library
 * with the capability implements those of the stages it has (the attn_*
 * faults with "fused", the qk/softmax/pv faults with "unfused"):
 *  gemv_f16_acc       VALU GEMV accumulates in f16 (partials rounded to f16)
 *  rope_wrong_layout  RoPE uses the other layout (neox <-> interleaved)
 *  rope_pos_prev      RoPE uses position pos - 1 (floored at 0)
 *  rope_pos_zero      RoPE uses position 0
 *  gqa_modulo         attention maps head h to kv head h % n_kv_heads
 *                     (both qk and pv; not gp_attention)
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
 *  attn_no_rescale    gp_attention combines its splits without rescaling
 *                     by the running max: exp(m_s - m) replaced by 1, so
 *                     o = sum_s acc_s / sum_s l_s and lse = m +
 *                     log(sum_s l_s) (visible with >= 2 splits whose
 *                     maxima differ)
 *  attn_lse_off_by_one gp_attention's out is right, but its LSE combine
 *                     stops one split early: the last split is left out
 *                     of lse only (visible with >= 2 splits and lse given)
 *  attn_causal_prev   gp_attention's causal limit is q_pos0 + i - 1: the
 *                     query's own key is dropped (causal only; a row left
 *                     with no visible key gives out 0 and lse -INFINITY)
 *  attn_gqa_modulo    gp_attention maps head h to kv head h % n_kv_heads
 *                     (visible with n_kv_heads > 1 and n_heads > n_kv_heads)
 *  act_wrong_half     gp_gated_act applies the activation to the up half:
 *                     y = act(up) * gate
 *  residual_twice     gp_residual_add adds the branch twice: y = a + b + b
 *                     (first seen at attn_res)
 *  gemv_skip_last_k_tile  the VALU GEMV drops its last K tile of 256
 *                     elements (GP_FAULT_K_TILE, gp_common.h), k >= 256 *
 *                     floor((K - 1) / 256), when K > 256: every projection
 *                     with K > 256 (first seen at the first such stage;
 *                     on the debug shapes, hidden < 256 < intermediate,
 *                     at down_proj). Armed by the harness for the head's
 *                     calls only (-parity.fault-layer=head), it is the LM
 *                     head skipping its last K tile (K = hidden)
 *  post_norm_no_offset gp_rmsnorm_offset ignores w_offset (Gemma's 1 + w
 *                     becomes w; visible only where w_offset != 0)
 *  chunk_pos_off      NOT a decode fault: active when q_pos0 > 0 AND n_q > 1
 *                     (a chunk of a chunked prefill after the first).
 *                     gp_attn_scores and gp_attention take query i of the
 *                     chunk at position q_pos0 - 1 + i: every causal limit
 *                     is one key short (gp_attn_scores masks the query's
 *                     own key, gp_attention drops it)
 *  batch_kv_start_off NOT a decode fault: active when B > 1.
 *                     gp_attention_batched reads sequence b's keys and
 *                     values from cache row kv_start[b] + 1 on (kv_start[b]
 *                     itself where that would pass capacity)
 */

/* ---- "attestation": route attestation ------------------------------- */

/* Describes the kernel variant that ran for the last successful sub-stage
 * call (process-wide): route (gp_route, never AUTO; 0 for non-projection
 * ops), tile sizes (0 where not tiled), split-K factor (1 = none), and the
 * kernel's name (NUL-terminated, truncated to kernel_cap bytes). Any
 * out-pointer may be NULL. GP_ERR_INVALID_ARG if no call has run yet.
 * gp_attention attests route 0, tile_m 0, tile_n = keys per split (our
 * backends: GP_ATTN_SPLIT_KEYS), tile_k 0, split_k = number of splits of
 * the call's longest row (at least 1). */
int gp_last_launch(int *route, int *tile_m, int *tile_n, int *tile_k, int *split_k, char *kernel,
                   int kernel_cap);

/* ---- "d2d": device-to-device copy ------------------------------------ */

/* Asynchronous where the backend is, in order with the launches; bytes == 0
 * is a no-op. The regions must not overlap. Benchmarks use it as the
 * bandwidth ceiling (bytes read + written). */
int gp_memcpy_d2d(void *dst_device, const void *src_device, size_t bytes);

/* ---- "routes": forced projection routes ------------------------------ */

/* Bitmask of the gp_route values gp_linear accepts besides AUTO: bit
 * (1 << GP_ROUTE_MFMA), (1 << GP_ROUTE_VALU), (1 << GP_ROUTE_BLAS). Ours:
 * CPU MFMA|VALU, CUDA MFMA|VALU|BLAS, ROCm MFMA|VALU. Without this symbol
 * the harness uses AUTO only. */
int gp_forced_routes(void);

/* ---- "unfused": attention in three stages ---------------------------- */

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
 * + c] with g = h / (n_heads / n_kv_heads), in f32 in this order (ABI 3):
 *   chunk t = keys [256t, 256t + 256) clipped to n_kv (256 =
 *     GP_ATTN_PV_CHUNK_KEYS), t = 0 .. ceil(n_kv / 256) - 1;
 *   part_t[c] = an fmaf chain over the chunk's keys in increasing j,
 *     starting from 0.0f: part = fmaf(p_j, v_j[c], part);
 *   acc = part_0, then acc = acc + part_t for t = 1, 2, ... (f32 adds in
 *     chunk order); out = acc rounded once to dtype.
 * The chunk boundaries depend on the key index alone, never on n_q, so a
 * row's result does not depend on n_q. In a causal prefill row the keys
 * past the query have p = +0 (softmax of -INFINITY): fmaf(+0, v, x) = x
 * for every x but -0.0f, a chunk of only such keys has the partial +0.0f
 * exactly (+0 plus a signed zero is +0), and acc + (+0.0f) = acc for every
 * acc but -0.0f; so the decode call (n_kv = q_pos0 + 1) equals the
 * matching prefill row bit for bit. (A chain reaches -0.0f only when every
 * product so far is negative and underflows, |p * v| < 2^-150: then an
 * all-zero result may differ in the sign of zero, as with one chain.)
 * gp_last_launch attests
 * route 0, tile_m 0, tile_n = GP_ATTN_PV_CHUNK_KEYS, tile_k 0, split_k =
 * the number of chunks, ceil(n_kv / GP_ATTN_PV_CHUNK_KEYS). */
int gp_attn_pv(int dtype, const float *probs, const void *v_cache, void *out, int n_q, int n_kv,
               int n_heads, int n_kv_heads, int head_dim);

/* ---- "fused": attention in one stage ("attn") ------------------------ */

/* attn: for query i < n_q at position q_pos0 + i and head h < n_heads,
 *   out[i, h*head_dim + c] = sum_j softmax_j(scale * dot(q[i, h], k_j)) *
 *                            v_cache[j, g*head_dim + c],
 *   k_j = k_cache[j, g*head_dim ..], g = h / (n_heads / n_kv_heads),
 * over the visible keys j < n_kv (with causal != 0: j <= q_pos0 + i), and
 *   lse[h * n_q + i] = log(sum_j exp(scale * dot(q[i, h], k_j))),
 * natural log over the same keys (the maximum m included: m + log(l)).
 * q and out are [n_q, n_heads*head_dim] dtype, the caches [capacity >= n_kv,
 * n_kv_heads*head_dim] dtype (token-major), lse is f32 [n_heads, n_q] and
 * may be NULL (not written then). Argument rules as gp_attn_scores:
 * n_heads % n_kv_heads == 0, q_pos0 + n_q <= n_kv, head_dim % 8 == 0 and
 * <= GP_MAX_HEAD_DIM, the limits above, a finite scale. Every element of
 * out (and of lse) is written.
 *
 * Our backends (CPU, HIP; an engine may split differently) run split-KV
 * flash decoding with a fixed key split of GP_ATTN_SPLIT_KEYS: split s
 * covers keys [64s, 64s + 64) clipped to the visible keys; splits with no
 * visible key are skipped. Per (query i, head h, split s), in f32:
 *   s_j   = scale * d_j, d_j an fmaf chain over c = 0 .. head_dim-1;
 *   m_s   = max_j s_j;  p_j = exp(s_j - m_s) (rounded once to f32);
 *   l_s   = sum_j p_j,  acc_s[c] = sum_j p_j * v[j, c] (fmaf), keys in
 *           increasing order.
 * Combine, splits in increasing order: m = max_s m_s, w_s = exp(m_s - m),
 *   l = sum_s l_s * w_s, o[c] = sum_s acc_s[c] * w_s (fmaf),
 *   out = o / l rounded once to dtype, lse = m + log(l).
 * The split boundaries depend on the key index alone, never on n_q, so a
 * row's result is bit-identical whatever n_q is: decode (n_q = 1) equals
 * the matching prefill row bit for bit on the same backend. */
int gp_attention(int dtype, const void *q, const void *k_cache, const void *v_cache, void *out,
                 float *lse, int n_q, int n_kv, int n_heads, int n_kv_heads, int head_dim,
                 int q_pos0, float scale, int causal);

/* ---- "batched": decode of B sequences in one call -------------------- */

/* Batched decode: B sequences of different lengths, one new token each, in
 * one call per stage (row b of every activation is sequence b's token). The
 * row-wise stages need no new entry point: gp_rmsnorm, gp_linear (M = B)
 * and gp_rope (pos[b] = sequence b's position) already take B rows. The
 * two stateful stages take per-sequence arrays instead of one slot/q_pos0.
 *
 * Cache layout: ONE shared K cache and ONE shared V cache, [capacity,
 * kv_width] dtype, token-major as gp_kv_append's; sequence b owns a span of
 * rows that starts at a per-sequence offset (kv_start[b]) and holds its
 * keys in position order (key j of sequence b at row kv_start[b] + j). The
 * spans are the caller's business (a paged cache's block table flattened to
 * one offset per sequence); they must not overlap for the results to be
 * meaningful, but the functions do not require it.
 *
 * The int32 arrays (slot, kv_start, kv_len) are device pointers (gp_malloc,
 * like gp_rope's pos), B elements each. A backend that can read them where
 * it checks arguments (the CPU backend) rejects an out-of-range element
 * with GP_ERR_INVALID_ARG naming it ("gp_kv_append_batched: slot[1]=9 must
 * be < capacity=9"); a GPU backend skips such a row instead (nothing of it
 * written, so the harness sees poison).
 *
 * kv_cache: copies row b of k and v ([B, kv_width]) to row slot[b] of
 * k_cache and v_cache; 0 <= slot[b] < capacity. Copies are exact: row b is
 * bit-identical to gp_kv_append(rows = 1, slot = slot[b]). */
int gp_kv_append_batched(int dtype, const void *k, const void *v, void *k_cache, void *v_cache,
                         int B, int kv_width, const int32_t *slot, int capacity);

/* attn: row b of q ([B, n_heads*head_dim]) is sequence b's query at
 * position kv_len[b] - 1; it attends causally to the sequence's keys
 * 0 .. kv_len[b]-1, that is cache rows kv_start[b] .. kv_start[b] +
 * kv_len[b] - 1; 1 <= kv_len[b], 0 <= kv_start[b], kv_start[b] + kv_len[b]
 * <= capacity. out is [B, n_heads*head_dim] dtype, lse f32 [n_heads, B]
 * (lse[h * B + b]; may be NULL). Other arguments as gp_attention.
 *
 * Row b is bit-identical to gp_attention(n_q = 1, n_kv = kv_len[b], q_pos0
 * = kv_len[b] - 1, causal = 1) on the caches offset by kv_start[b] rows:
 * our backends run the same split-KV flash decoding with the same fixed
 * key split (GP_ATTN_SPLIT_KEYS, counted from the sequence's key 0, never
 * from the cache row) and the same combine, so a sequence's result does not
 * depend on B, on the other sequences or on where its span lies. Attested
 * like gp_attention: tile_n = keys per split, split_k = the splits the call
 * provisions per sequence (the CPU backend: those of the longest sequence;
 * the HIP backends, which never read the arrays on the host: those of
 * capacity keys). */
int gp_attention_batched(int dtype, const void *q, const void *k_cache, const void *v_cache,
                         void *out, float *lse, int B, const int32_t *kv_start,
                         const int32_t *kv_len, int capacity, int n_heads, int n_kv_heads,
                         int head_dim, float scale);

/* ---- "mlp": the rest of the layer ------------------------------------ */

/* After attn_out the layer is: attn_res (h = x + attn_out), post_norm
 * (gp_rmsnorm_offset of h), gate_proj and up_proj (gp_linear, [intermediate,
 * hidden]), act (gp_gated_act), down_proj (gp_linear, [hidden,
 * intermediate]) and mlp_res (out = h + down_proj). Each computes in f32
 * and rounds its output once to dtype; rows are independent, so every one
 * is batch invariant on our backends. */

/* Gated activations of gp_gated_act. */
typedef enum gp_act {
    GP_ACT_SWIGLU = 0,   /* silu(g) * u, silu(g) = g / (1 + expf(-g)): Llama,
                            Mistral, Qwen2, Phi-3 */
    GP_ACT_GELU_TANH = 1 /* gelu_tanh(g) * u = 0.5 g (1 + tanhf(sqrt(2/pi) (g +
                            0.044715 g^3))) * u: Gemma (gelu_pytorch_tanh) */
} gp_act;

/* attn_res, mlp_res: y[r, c] = a[r, c] + b[r, c] for rows x width elements,
 * the sum in f32 rounded once to dtype. a is the residual stream (the layer
 * input x, or h), b the branch (attn_out, down_proj). y may alias a or b. */
int gp_residual_add(int dtype, const void *a, const void *b, void *y, int rows, int width);

/* post_norm: gp_rmsnorm with the weight shifted by w_offset, w_offset + w[c]
 * computed in f32: y = (x * inv) * (w_offset + w). w_offset is 0 (Llama's
 * LlamaRMSNorm) or 1 (Gemma's GemmaRMSNorm, output * (1.0 +
 * weight.float())); any finite value is accepted. */
int gp_rmsnorm_offset(int dtype, const void *x, const void *w, void *y, int rows, int dim,
                      float eps, float w_offset);

/* act: y[r, c] = act(gate[r, c]) * up[r, c], kind a gp_act, in f32 with
 * precise (not fast-math) expf/tanhf, rounded once to dtype. gate, up and y
 * are [rows, width]; y may alias gate or up. */
int gp_gated_act(int dtype, int kind, const void *gate, const void *up, void *y, int rows,
                 int width);

/* ---- "invariance": batch-invariance declaration ---------------------- */

/* Static comma-separated list (no spaces) of the stage names whose output
 * for one row is bit-identical whatever the row count of the call, given the
 * same inputs (projections: on a forced route); see "Batch invariance" at
 * the top. Stage names: x_norm q_proj k_proj v_proj q_rope k_rope kv_cache
 * qk softmax pv attn attn_out, and with "mlp" attn_res post_norm gate_proj
 * up_proj act down_proj mlp_res. Ours (CPU, HIP) declare all nineteen. */
const char *gp_batch_invariant_stages(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* GRETA_PARITY_H */
