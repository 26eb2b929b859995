/*
 * gp_common.c: process-wide state and argument checks shared by every backend.
 * Compiles as C11 (gcc) and as C++ (nvcc -x cu, hipcc -x hip). The harness
 * calls from one thread at a time (see greta_parity.h), so no locking.
 */
#include "gp_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gp_half.h"

/* ---- process-wide state ---------------------------------------------- */

static char g_error[GP_ERROR_CAP];

static int g_launch_valid;
static int g_launch_route;
static int g_launch_tile_m;
static int g_launch_tile_n;
static int g_launch_tile_k;
static int g_launch_split_k;
static char g_launch_kernel[GP_KERNEL_NAME_CAP];

static int g_fault = GP_FAULT_NONE;

static const char *const g_fault_names[GP_FAULT_COUNT] = {
    "gemv_f16_acc",    "rope_wrong_layout",     "rope_pos_prev",       "rope_pos_zero",
    "gqa_modulo",      "kv_slot_off",           "scale_missing",       "scale_twice",
    "mask_off_by_one", "splitk_drop_tail",      "softmax_no_max",      "bias_skipped",
    "round_truncate",  "attn_no_rescale",       "attn_lse_off_by_one", "attn_causal_prev",
    "attn_gqa_modulo", "chunk_pos_off",         "batch_kv_start_off",  "act_wrong_half",
    "residual_twice",  "gemv_skip_last_k_tile", "post_norm_no_offset",
};

/* ---- identity and errors --------------------------------------------- */

int gp_abi_version(void) { return GP_ABI_VERSION; }

const char *gp_status_string(int status) {
    switch (status) {
    case GP_OK:
        return "ok";
    case GP_ERR_INVALID_ARG:
        return "invalid argument";
    case GP_ERR_NULL_POINTER:
        return "null pointer";
    case GP_ERR_UNSUPPORTED:
        return "unsupported";
    case GP_ERR_DEVICE:
        return "device error";
    case GP_ERR_OUT_OF_MEMORY:
        return "out of memory";
    case GP_ERR_UNKNOWN_FAULT:
        return "unknown fault";
    default:
        return "unknown status";
    }
}

const char *gp_last_error(void) { return g_error; }

int gp_fail(int status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error, sizeof g_error, fmt, ap);
    va_end(ap);
    return status;
}

int gp_ok(void) { return GP_OK; }

void gp_attest(int route, int tile_m, int tile_n, int tile_k, int split_k, const char *kernel) {
    size_t n = 0;
    g_launch_route = route;
    g_launch_tile_m = tile_m;
    g_launch_tile_n = tile_n;
    g_launch_tile_k = tile_k;
    g_launch_split_k = split_k;
    if (kernel != NULL) {
        n = strlen(kernel);
        if (n > GP_KERNEL_NAME_CAP - 1) {
            n = GP_KERNEL_NAME_CAP - 1;
        }
        memcpy(g_launch_kernel, kernel, n);
    }
    g_launch_kernel[n] = '\0';
    g_launch_valid = 1;
}

int gp_last_launch(int *route, int *tile_m, int *tile_n, int *tile_k, int *split_k, char *kernel,
                   int kernel_cap) {
    if (!g_launch_valid) {
        return gp_fail(GP_ERR_INVALID_ARG, "gp_last_launch: no sub-stage call has succeeded yet");
    }
    if (kernel != NULL && kernel_cap <= 0) {
        return gp_fail(GP_ERR_INVALID_ARG, "gp_last_launch: kernel_cap=%d must be > 0", kernel_cap);
    }
    if (route != NULL) {
        *route = g_launch_route;
    }
    if (tile_m != NULL) {
        *tile_m = g_launch_tile_m;
    }
    if (tile_n != NULL) {
        *tile_n = g_launch_tile_n;
    }
    if (tile_k != NULL) {
        *tile_k = g_launch_tile_k;
    }
    if (split_k != NULL) {
        *split_k = g_launch_split_k;
    }
    if (kernel != NULL) {
        size_t n = strlen(g_launch_kernel);
        if (n > (size_t)kernel_cap - 1) {
            n = (size_t)kernel_cap - 1;
        }
        memcpy(kernel, g_launch_kernel, n);
        kernel[n] = '\0';
    }
    return GP_OK;
}

/* ---- faults ----------------------------------------------------------- */

int gp_set_fault(const char *name) {
    int i;
    if (name == NULL) {
        return gp_fail(GP_ERR_NULL_POINTER, "gp_set_fault: name is NULL");
    }
    if (name[0] == '\0' || strcmp(name, "none") == 0) {
        g_fault = GP_FAULT_NONE;
        return GP_OK;
    }
    for (i = 0; i < GP_FAULT_COUNT; i++) {
        if (strcmp(name, g_fault_names[i]) == 0) {
            g_fault = i;
            return GP_OK;
        }
    }
    return gp_fail(GP_ERR_UNKNOWN_FAULT, "gp_set_fault: name=\"%.64s\" is not a known fault", name);
}

const char *gp_active_fault(void) {
    if (g_fault < 0 || g_fault >= GP_FAULT_COUNT) {
        return "none";
    }
    return g_fault_names[g_fault];
}

int gp_fault_count(void) { return GP_FAULT_COUNT; }

const char *gp_fault_name(int i) {
    if (i < 0 || i >= GP_FAULT_COUNT) {
        return NULL;
    }
    return g_fault_names[i];
}

int gp_fault_is(int fault) { return fault != GP_FAULT_NONE && g_fault == fault; }

int gp_fault_on(int fault, int rows) { return rows == 1 && gp_fault_is(fault); }

int gp_fault_chunk_on(int fault, int q_pos0, int n_q) {
    return q_pos0 > 0 && n_q > 1 && gp_fault_is(fault);
}

int gp_fault_batch_on(int fault, int B) { return B > 1 && gp_fault_is(fault); }

int gp_fault_k_keep(int K) {
    if (K <= GP_FAULT_K_TILE) {
        return K;
    }
    return K - ((K - 1) % GP_FAULT_K_TILE + 1);
}

/* ---- policies --------------------------------------------------------- */

int gp_valu_split_k(int N, int K) {
    if (N <= GP_VALU_SPLIT_MAX_N && K >= GP_VALU_SPLIT_K) {
        return GP_VALU_SPLIT_K;
    }
    return 1;
}

int gp_resolve_route(int route, int M) {
    /* AUTO never resolves to BLAS: the vendor GEMM is not batch invariant. */
    if (route == GP_ROUTE_AUTO) {
        return M > 1 ? GP_ROUTE_MFMA : GP_ROUTE_VALU;
    }
    return route;
}

const char *gp_dtype_name(int dtype) {
    switch (dtype) {
    case GP_DTYPE_F32:
        return "f32";
    case GP_DTYPE_F16:
        return "f16";
    case GP_DTYPE_BF16:
        return "bf16";
    default:
        return "?";
    }
}

const char *gp_route_name(int route) {
    switch (route) {
    case GP_ROUTE_AUTO:
        return "auto";
    case GP_ROUTE_MFMA:
        return "mfma";
    case GP_ROUTE_VALU:
        return "valu";
    case GP_ROUTE_BLAS:
        return "blas";
    default:
        return "?";
    }
}

const char *gp_layout_name(int layout) {
    switch (layout) {
    case GP_ROPE_NEOX:
        return "neox";
    case GP_ROPE_INTERLEAVED:
        return "interleaved";
    default:
        return "?";
    }
}

/* ---- check helpers ----------------------------------------------------- */

/* Each returns GP_OK or the gp_fail() status; callers chain them with
 * `if ((rc = ...) != GP_OK) return rc;`. fn names the entry point. */

static int check_dtype(const char *fn, int dtype) {
    if (dtype != GP_DTYPE_F32 && dtype != GP_DTYPE_F16 && dtype != GP_DTYPE_BF16) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: dtype=%d is not a gp_dtype (0=f32, 1=f16, 2=bf16)",
                       fn, dtype);
    }
    return GP_OK;
}

/* 1 <= value <= max */
static int check_range(const char *fn, const char *arg, int value, int max) {
    if (value <= 0) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: %s=%d must be > 0", fn, arg, value);
    }
    if (value > max) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: %s=%d must be <= %d", fn, arg, value, max);
    }
    return GP_OK;
}

/* a * b <= max for a width made of two factors, e.g. n_heads * head_dim */
static int check_product(const char *fn, const char *a_name, int a, const char *b_name, int b,
                         int max) {
    long long p = (long long)a * (long long)b;
    if (p > max) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: %s*%s=%d*%d=%lld must be <= %d", fn, a_name, b_name,
                       a, b, p, max);
    }
    return GP_OK;
}

static int check_ptr(const char *fn, const char *arg, const void *p) {
    if (p == NULL) {
        return gp_fail(GP_ERR_NULL_POINTER, "%s: %s is NULL", fn, arg);
    }
    return GP_OK;
}

static int check_heads(const char *fn, int n_heads, int n_kv_heads, int head_dim) {
    int rc;
    if ((rc = check_range(fn, "n_heads", n_heads, GP_MAX_DIM)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "n_kv_heads", n_kv_heads, GP_MAX_DIM)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "head_dim", head_dim, GP_MAX_HEAD_DIM)) != GP_OK) {
        return rc;
    }
    if (head_dim % 8 != 0) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: head_dim=%d must be a multiple of 8", fn, head_dim);
    }
    if (n_heads % n_kv_heads != 0) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: n_heads=%d must be a multiple of n_kv_heads=%d", fn,
                       n_heads, n_kv_heads);
    }
    return check_product(fn, "n_heads", n_heads, "head_dim", head_dim, GP_MAX_DIM);
}

/* ---- argument checks --------------------------------------------------- */

int gp_check_device_count(const int *count) { return check_ptr("gp_device_count", "count", count); }

int gp_check_malloc(void **ptr, size_t bytes) {
    int rc;
    if ((rc = check_ptr("gp_malloc", "ptr", (const void *)ptr)) != GP_OK) {
        return rc;
    }
    if (bytes == 0) {
        return gp_fail(GP_ERR_INVALID_ARG, "gp_malloc: bytes=0 must be > 0");
    }
    return GP_OK;
}

int gp_check_memcpy(const char *fn, void *dst, const void *src, size_t bytes) {
    int rc;
    if (bytes == 0) {
        return GP_OK;
    }
    if ((rc = check_ptr(fn, "dst", dst)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "src", src);
}

int gp_check_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim,
                     float eps) {
    static const char fn[] = "gp_rmsnorm";
    int rc;
    if ((rc = check_dtype(fn, dtype)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "rows", rows, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "dim", dim, GP_MAX_DIM)) != GP_OK) {
        return rc;
    }
    if (!gp_is_finite_f32(eps) || eps < 0.0f) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: eps=%g must be finite and >= 0", fn, (double)eps);
    }
    if ((rc = check_ptr(fn, "x", x)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "w", w)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "y", y);
}

int gp_check_linear(int dtype, int route, const void *x, const void *w, void *y, int M, int N,
                    int K) {
    static const char fn[] = "gp_linear";
    int rc;
    if ((rc = check_dtype(fn, dtype)) != GP_OK) {
        return rc;
    }
    if (route != GP_ROUTE_AUTO && route != GP_ROUTE_MFMA && route != GP_ROUTE_VALU &&
        route != GP_ROUTE_BLAS) {
        return gp_fail(GP_ERR_INVALID_ARG,
                       "%s: route=%d is not a gp_route (0=auto, 1=mfma, 2=valu, 3=blas)", fn,
                       route);
    }
    /* M is a row count: bounded by GP_MAX_SEQ (GP_MAX_DIM excludes it). */
    if ((rc = check_range(fn, "M", M, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "N", N, GP_MAX_LINEAR_N)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "K", K, GP_MAX_DIM)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "x", x)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "w", w)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "y", y);
}

int gp_check_rope(int dtype, int layout, const void *x, void *y, const int32_t *pos, int rows,
                  int n_heads, int head_dim, float theta) {
    static const char fn[] = "gp_rope";
    int rc;
    if ((rc = check_dtype(fn, dtype)) != GP_OK) {
        return rc;
    }
    if (layout != GP_ROPE_NEOX && layout != GP_ROPE_INTERLEAVED) {
        return gp_fail(GP_ERR_INVALID_ARG,
                       "%s: layout=%d is not a gp_rope_layout (0=neox, 1=interleaved)", fn, layout);
    }
    if ((rc = check_range(fn, "rows", rows, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "n_heads", n_heads, GP_MAX_DIM)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "head_dim", head_dim, GP_MAX_HEAD_DIM)) != GP_OK) {
        return rc;
    }
    if (head_dim % 2 != 0) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: head_dim=%d must be even", fn, head_dim);
    }
    if ((rc = check_product(fn, "n_heads", n_heads, "head_dim", head_dim, GP_MAX_DIM)) != GP_OK) {
        return rc;
    }
    if (!gp_is_finite_f32(theta) || !(theta > 0.0f)) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: theta=%g must be finite and > 0", fn,
                       (double)theta);
    }
    if ((rc = check_ptr(fn, "x", x)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "y", y)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "pos", pos);
}

int gp_check_rope_positions(const int32_t *pos_host, int rows) {
    int r;
    for (r = 0; r < rows; r++) {
        if (pos_host[r] < 0 || pos_host[r] >= GP_MAX_SEQ) {
            return gp_fail(GP_ERR_INVALID_ARG, "gp_rope: pos[%d]=%d must be in [0, %d)", r,
                           (int)pos_host[r], GP_MAX_SEQ);
        }
    }
    return GP_OK;
}

int gp_check_kv_append(int dtype, const void *k, const void *v, void *k_cache, void *v_cache,
                       int rows, int kv_width, int slot, int capacity) {
    static const char fn[] = "gp_kv_append";
    int rc;
    if ((rc = check_dtype(fn, dtype)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "rows", rows, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "kv_width", kv_width, GP_MAX_DIM)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "capacity", capacity, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if (slot < 0) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: slot=%d must be >= 0", fn, slot);
    }
    if ((long long)slot + rows > capacity) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: slot+rows=%d+%d=%lld must be <= capacity=%d", fn,
                       slot, rows, (long long)slot + rows, capacity);
    }
    if ((rc = check_ptr(fn, "k", k)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "v", v)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "k_cache", k_cache)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "v_cache", v_cache);
}

int gp_check_attn_scores(int dtype, const void *q, const void *k_cache, const float *scores,
                         int n_q, int n_kv, int n_heads, int n_kv_heads, int head_dim, int q_pos0,
                         float scale) {
    static const char fn[] = "gp_attn_scores";
    int rc;
    if ((rc = check_dtype(fn, dtype)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "n_q", n_q, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "n_kv", n_kv, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_heads(fn, n_heads, n_kv_heads, head_dim)) != GP_OK) {
        return rc;
    }
    if (q_pos0 < 0) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: q_pos0=%d must be >= 0", fn, q_pos0);
    }
    if ((long long)q_pos0 + n_q > n_kv) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: q_pos0+n_q=%d+%d=%lld must be <= n_kv=%d", fn,
                       q_pos0, n_q, (long long)q_pos0 + n_q, n_kv);
    }
    if (!gp_is_finite_f32(scale)) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: scale=%g must be finite", fn, (double)scale);
    }
    if ((rc = check_ptr(fn, "q", q)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "k_cache", k_cache)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "scores", scores);
}

int gp_check_softmax(const float *scores, const float *probs, int n_heads, int n_q, int n_kv) {
    static const char fn[] = "gp_softmax";
    int rc;
    if ((rc = check_range(fn, "n_heads", n_heads, GP_MAX_DIM)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "n_q", n_q, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "n_kv", n_kv, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "scores", scores)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "probs", probs);
}

int gp_check_attn_pv(int dtype, const float *probs, const void *v_cache, const void *out, int n_q,
                     int n_kv, int n_heads, int n_kv_heads, int head_dim) {
    static const char fn[] = "gp_attn_pv";
    int rc;
    if ((rc = check_dtype(fn, dtype)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "n_q", n_q, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "n_kv", n_kv, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_heads(fn, n_heads, n_kv_heads, head_dim)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "probs", probs)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "v_cache", v_cache)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "out", out);
}

int gp_check_attention(int dtype, const void *q, const void *k_cache, const void *v_cache,
                       const void *out, int n_q, int n_kv, int n_heads, int n_kv_heads,
                       int head_dim, int q_pos0, float scale) {
    static const char fn[] = "gp_attention";
    int rc;
    if ((rc = check_dtype(fn, dtype)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "n_q", n_q, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "n_kv", n_kv, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_heads(fn, n_heads, n_kv_heads, head_dim)) != GP_OK) {
        return rc;
    }
    if (q_pos0 < 0) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: q_pos0=%d must be >= 0", fn, q_pos0);
    }
    if ((long long)q_pos0 + n_q > n_kv) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: q_pos0+n_q=%d+%d=%lld must be <= n_kv=%d", fn,
                       q_pos0, n_q, (long long)q_pos0 + n_q, n_kv);
    }
    if (!gp_is_finite_f32(scale)) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: scale=%g must be finite", fn, (double)scale);
    }
    if ((rc = check_ptr(fn, "q", q)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "k_cache", k_cache)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "v_cache", v_cache)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "out", out);
}

/* ---- "batched" ---------------------------------------------------------- */

int gp_check_kv_append_batched(int dtype, const void *k, const void *v, void *k_cache,
                               void *v_cache, int B, int kv_width, const int32_t *slot,
                               int capacity) {
    static const char fn[] = "gp_kv_append_batched";
    int rc;
    if ((rc = check_dtype(fn, dtype)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "B", B, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "kv_width", kv_width, GP_MAX_DIM)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "capacity", capacity, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "k", k)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "v", v)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "k_cache", k_cache)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "v_cache", v_cache)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "slot", slot);
}

int gp_check_attention_batched(int dtype, const void *q, const void *k_cache, const void *v_cache,
                               const void *out, int B, const int32_t *kv_start,
                               const int32_t *kv_len, int capacity, int n_heads, int n_kv_heads,
                               int head_dim, float scale) {
    static const char fn[] = "gp_attention_batched";
    int rc;
    if ((rc = check_dtype(fn, dtype)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "B", B, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_range(fn, "capacity", capacity, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    if ((rc = check_heads(fn, n_heads, n_kv_heads, head_dim)) != GP_OK) {
        return rc;
    }
    if (!gp_is_finite_f32(scale)) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: scale=%g must be finite", fn, (double)scale);
    }
    if ((rc = check_ptr(fn, "q", q)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "k_cache", k_cache)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "v_cache", v_cache)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "out", out)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "kv_start", kv_start)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "kv_len", kv_len);
}

int gp_check_batched_slots(const int32_t *slot_host, int B, int capacity) {
    int b;
    for (b = 0; b < B; b++) {
        if (slot_host[b] < 0) {
            return gp_fail(GP_ERR_INVALID_ARG, "gp_kv_append_batched: slot[%d]=%d must be >= 0", b,
                           (int)slot_host[b]);
        }
        if (slot_host[b] >= capacity) {
            return gp_fail(GP_ERR_INVALID_ARG,
                           "gp_kv_append_batched: slot[%d]=%d must be < capacity=%d", b,
                           (int)slot_host[b], capacity);
        }
    }
    return GP_OK;
}

int gp_check_batched_spans(const int32_t *kv_start_host, const int32_t *kv_len_host, int B,
                           int capacity) {
    static const char fn[] = "gp_attention_batched";
    int b;
    for (b = 0; b < B; b++) {
        if (kv_len_host[b] < 1) {
            return gp_fail(GP_ERR_INVALID_ARG, "%s: kv_len[%d]=%d must be >= 1", fn, b,
                           (int)kv_len_host[b]);
        }
        if (kv_start_host[b] < 0) {
            return gp_fail(GP_ERR_INVALID_ARG, "%s: kv_start[%d]=%d must be >= 0", fn, b,
                           (int)kv_start_host[b]);
        }
        if ((long long)kv_start_host[b] + kv_len_host[b] > capacity) {
            return gp_fail(GP_ERR_INVALID_ARG,
                           "%s: kv_start[%d]+kv_len[%d]=%d+%d=%lld must be <= capacity=%d", fn, b,
                           b, (int)kv_start_host[b], (int)kv_len_host[b],
                           (long long)kv_start_host[b] + kv_len_host[b], capacity);
        }
    }
    return GP_OK;
}

/* ---- "mlp" ------------------------------------------------------------- */

/* rows and width of an elementwise "mlp" entry point. */
static int check_rows_width(const char *fn, const char *width_name, int rows, int width) {
    int rc;
    if ((rc = check_range(fn, "rows", rows, GP_MAX_SEQ)) != GP_OK) {
        return rc;
    }
    return check_range(fn, width_name, width, GP_MAX_DIM);
}

int gp_check_residual_add(int dtype, const void *a, const void *b, void *y, int rows, int width) {
    static const char fn[] = "gp_residual_add";
    int rc;
    if ((rc = check_dtype(fn, dtype)) != GP_OK) {
        return rc;
    }
    if ((rc = check_rows_width(fn, "width", rows, width)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "a", a)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "b", b)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "y", y);
}

int gp_check_rmsnorm_offset(int dtype, const void *x, const void *w, void *y, int rows, int dim,
                            float eps, float w_offset) {
    static const char fn[] = "gp_rmsnorm_offset";
    int rc;
    if ((rc = check_dtype(fn, dtype)) != GP_OK) {
        return rc;
    }
    if ((rc = check_rows_width(fn, "dim", rows, dim)) != GP_OK) {
        return rc;
    }
    if (!gp_is_finite_f32(eps) || eps < 0.0f) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: eps=%g must be finite and >= 0", fn, (double)eps);
    }
    if (!gp_is_finite_f32(w_offset)) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: w_offset=%g must be finite", fn, (double)w_offset);
    }
    if ((rc = check_ptr(fn, "x", x)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "w", w)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "y", y);
}

int gp_check_gated_act(int dtype, int kind, const void *gate, const void *up, void *y, int rows,
                       int width) {
    static const char fn[] = "gp_gated_act";
    int rc;
    if ((rc = check_dtype(fn, dtype)) != GP_OK) {
        return rc;
    }
    if (kind != GP_ACT_SWIGLU && kind != GP_ACT_GELU_TANH) {
        return gp_fail(GP_ERR_INVALID_ARG, "%s: kind=%d is not a gp_act (0=swiglu, 1=gelu_tanh)",
                       fn, kind);
    }
    if ((rc = check_rows_width(fn, "width", rows, width)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "gate", gate)) != GP_OK) {
        return rc;
    }
    if ((rc = check_ptr(fn, "up", up)) != GP_OK) {
        return rc;
    }
    return check_ptr(fn, "y", y);
}

/* ---- gp_attention's split policy --------------------------------------- */

int gp_attn_visible(int i, int n_kv, int q_pos0, int causal, int causal_prev) {
    if (!causal) {
        return n_kv;
    }
    /* q_pos0 + i < n_kv <= GP_MAX_SEQ: no overflow */
    return causal_prev ? q_pos0 + i : q_pos0 + i + 1;
}

int gp_attn_splits(int n_vis) {
    return n_vis <= 0 ? 0 : (n_vis + GP_ATTN_SPLIT_KEYS - 1) / GP_ATTN_SPLIT_KEYS;
}
