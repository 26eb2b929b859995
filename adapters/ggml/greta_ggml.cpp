/*
 * greta_ggml.cpp: the kernel ABI of kernels/include/greta_parity.h (version 3)
 * on ggml's public API (ggml-backend), so that the parity harness checks the
 * kernels llama.cpp runs (ggml's CUDA backend built for sm_90, or ggml's CPU
 * backend for development without a GPU) rather than kernels written for the
 * harness.
 *
 * Each stage is the ggml graph llama.cpp builds for it (llama-graph.cpp,
 * llama-kv-cache.cpp), with activations in f32 as llama.cpp keeps them and
 * one ggml_cpy into the caller's output region in the ABI's dtype:
 *   x_norm    ggml_rms_norm(x) then ggml_mul by the weight, in f32.
 *   q/k/v_proj, attn_out
 *             ggml_mul_mat(W, x) (W as stored: f32, f16 or bf16; x f32), then
 *             ggml_add of the bias in f32. Precision: llama.cpp's default
 *             (GGML_PREC_DEFAULT: ggml-cuda's f16 mat-vec accumulates in
 *             half2, its cuBLAS path computes f16 in CUBLAS_COMPUTE_16F);
 *             GRETA_GGML_PREC=f32 sets GGML_PREC_F32 on the projections and
 *             on pv (llama.cpp's own knob, ggml_mul_mat_set_prec), the A/B
 *             of those findings (docs/ENGINES.md).
 *   q/k_rope  ggml_rope_ext in f32, mode NORM (0: interleaved pairs 2i, 2i+1)
 *             or GGML_ROPE_TYPE_NEOX (rotate-half), freq_base = theta, no
 *             scaling (freq_scale 1, ext_factor 0, attn_factor 1), positions
 *             the caller's int32 array.
 *   kv_cache  ggml_cpy of k and v into views of the caches (rows slot..).
 *   qk        ggml_mul_mat(K view, q) with GGML_PREC_F32 (as llama.cpp sets
 *             it on kq), GQA by ggml's broadcasting (q head h reads KV head
 *             h / (n_heads / n_kv_heads)), ggml_scale, then an added f32
 *             mask of 0 / -INF (llama.cpp's kq_mask; GRETA_GGML_DIAG_MASK=1:
 *             the legacy ggml_diag_mask_inf instead, which ggml-cuda
 *             implements as x - FLT_MAX, not -INF: a finding).
 *   softmax   ggml_soft_max_ext(scores, no mask, scale 1).
 *   pv        ggml_mul_mat(ggml_cont(V^T), probs), as llama.cpp does with a
 *             non-transposed V cache (default precision, or GRETA_GGML_PREC).
 *   attn      ggml_flash_attn_ext(q, K, V, mask f16 0/-INF, scale) with
 *             GGML_PREC_F32 (llama.cpp's setting); K/V in the ABI dtype. The
 *             keys are padded with zero rows to a multiple of 256, as
 *             llama.cpp's KV cache is with flash attention (the padding
 *             masked), so ggml picks the kernels llama.cpp gets
 *             (GRETA_GGML_FA_PAD=0: no padding). ggml returns no LSE: the
 *             adapter computes it in a second ggml graph in f32 on ggml's
 *             CPU backend (scale * K q, masked, row max by ggml_pool_2d,
 *             then m + log(sum(exp(s - m)))); the LSE is not ggml's
 *             kernel's own.
 *
 * Capabilities: core, "unfused", "fused", "mlp" (ggml_mlp.cpp), "faults" (decode-only faults in
 * this glue around ggml's unchanged ops), "attestation" (kernel names
 * inferred from ggml's dispatch rules, see ggml_dispatch.cpp) and "d2d".
 * Not "routes" (ggml picks the kernel) nor "invariance".
 */
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "ggml_glue.h"

extern "C" {
#include "gp_common.h"
#include "gp_half.h"
/* gp_common.c is compiled with its four fault functions renamed (ggml.mk)
 * so that this library exports only the faults it implements. */
int gp_common_set_fault(const char *name);
const char *gp_common_active_fault(void);
}

using gp_ggml::Graph;
using gp_ggml::to_f32;
using gp_ggml::type_of;

namespace {

/* The faults this adapter implements, in the header's order: each is a
 * change of the glue around an unchanged ggml op (the positions or mode
 * given to ggml_rope_ext, the KV head mapping, the cache view, the scale,
 * the mask, the bias, the MLP's GLU halves, residual and norm offset
 * (ggml_mlp.cpp)), active only at row count 1. Faults inside a kernel
 * (an f16 GEMV accumulator, split-K, softmax without max, a flash-decoding
 * combine) have no glue form here. */
const char *const g_faults[] = {
    "rope_wrong_layout", "rope_pos_prev",       "rope_pos_zero",   "gqa_modulo",
    "kv_slot_off",       "scale_missing",       "scale_twice",     "mask_off_by_one",
    "bias_skipped",      "attn_causal_prev",    "attn_gqa_modulo", "act_wrong_half",
    "residual_twice",    "post_norm_no_offset",
};
constexpr int g_fault_count = sizeof g_faults / sizeof g_faults[0];

size_t esize(int dtype) { return dtype == GP_DTYPE_F32 ? 4 : 2; }

/* kv [hd, n, n_kv_heads] repeated to n_heads heads with head h reading KV
 * head h % n_kv_heads (ggml_repeat tiles): the gqa_modulo faults. REPEAT
 * takes f32/f16 on CUDA, so bf16 goes through f32 and back (exact). */
ggml_tensor *repeat_modulo(ggml_context *ctx, ggml_tensor *kv, int n_heads) {
    ggml_tensor *c =
        kv->type == GGML_TYPE_BF16 ? ggml_cast(ctx, kv, GGML_TYPE_F32) : ggml_cont(ctx, kv);
    ggml_tensor *r = ggml_repeat_4d(ctx, c, kv->ne[0], kv->ne[1], n_heads, 1);
    return kv->type == GGML_TYPE_BF16 ? ggml_cast(ctx, r, GGML_TYPE_BF16) : r;
}

/* Host mask of n_cols keys by n_rows queries: 0 where key j < n_vis_keys and
 * (not causal, or j <= limit + i), -INF elsewhere; f16 or f32 bytes. */
std::vector<uint8_t> mask_bytes(bool f16, int n_cols, int n_rows, int n_vis_keys, bool causal,
                                long long limit) {
    const size_t es = f16 ? 2 : 4;
    std::vector<uint8_t> m(static_cast<size_t>(n_cols) * n_rows * es);
    const float ninf = -std::numeric_limits<float>::infinity();
    for (int i = 0; i < n_rows; i++) {
        for (int j = 0; j < n_cols; j++) {
            const bool vis = j < n_vis_keys && (!causal || j <= limit + i);
            const size_t at = (static_cast<size_t>(i) * n_cols + j) * es;
            if (f16) {
                const uint16_t h = vis ? 0 : 0xFC00; /* -INF */
                std::memcpy(&m[at], &h, 2);
            } else {
                const float f = vis ? 0.0f : ninf;
                std::memcpy(&m[at], &f, 4);
            }
        }
    }
    return m;
}

/* GRETA_GGML_DIAG_MASK=1: the causal mask of qk by ggml_diag_mask_inf. */
bool diag_mask() {
    const char *e = std::getenv("GRETA_GGML_DIAG_MASK");
    return e != nullptr && std::strcmp(e, "1") == 0;
}

/* s [n_kv, n_rows, heads] with keys j > n_past + i set to -INF: an added f32
 * host mask of 0 / -INF, as llama.cpp masks its scores (kq_mask, broadcast
 * over the heads). GRETA_GGML_DIAG_MASK=1 uses ggml_diag_mask_inf where
 * n_past >= 0 (it asserts that) instead: on CUDA it subtracts FLT_MAX
 * (diagmask.cu) and leaves -3.4e38 where the ABI says -INF, which the
 * harness's integrity check reports (docs/ENGINES.md, ggml findings). */
ggml_tensor *causal_mask(Graph &g, ggml_tensor *s, long long n_past) {
    if (n_past >= 0 && diag_mask()) {
        return ggml_diag_mask_inf(g.ctx(), s, static_cast<int>(n_past));
    }
    const int nk = static_cast<int>(s->ne[0]), nr = static_cast<int>(s->ne[1]);
    ggml_tensor *m = g.input(GGML_TYPE_F32, {nk, nr}, mask_bytes(false, nk, nr, nk, true, n_past));
    return ggml_add(g.ctx(), s, m);
}

/* GRETA_GGML_PREC=f32: GGML_PREC_F32 on the projections and pv (llama.cpp's
 * ggml_mul_mat_set_prec); unset or "default": llama.cpp's default. */
bool prec_f32() {
    const char *e = std::getenv("GRETA_GGML_PREC");
    return e != nullptr && std::strcmp(e, "f32") == 0;
}

} // namespace

/* ==== CORE ================================================================ */

extern "C" const char *gp_backend_name(void) { return gp_ggml::backend().name.c_str(); }

extern "C" int gp_device_count(int *count) {
    int rc = gp_check_device_count(count);
    if (rc != GP_OK) {
        return rc;
    }
    gp_ggml::Backend &b = gp_ggml::backend();
    if (b.backend == nullptr) {
        *count = 0;
        return gp_fail(GP_ERR_DEVICE, "gp_device_count: %s", b.init_error.c_str());
    }
    *count = 1;
    return GP_OK;
}

extern "C" int gp_malloc(void **ptr, size_t bytes) {
    int rc = gp_check_malloc(ptr, bytes);
    if (rc != GP_OK) {
        return rc;
    }
    *ptr = nullptr;
    return gp_ggml::mem_alloc(ptr, bytes);
}

extern "C" int gp_free(void *ptr) { return ptr == nullptr ? GP_OK : gp_ggml::mem_free(ptr); }

static int copy_bytes(const char *fn, void *dst, const void *src, size_t bytes, int kind) {
    int rc = gp_check_memcpy(fn, dst, src, bytes);
    if (rc != GP_OK || bytes == 0) {
        return rc;
    }
    return gp_ggml::mem_copy(fn, dst, src, bytes, kind);
}

extern "C" int gp_memcpy_h2d(void *dst_device, const void *src_host, size_t bytes) {
    return copy_bytes("gp_memcpy_h2d", dst_device, src_host, bytes, 0);
}

extern "C" int gp_memcpy_d2h(void *dst_host, const void *src_device, size_t bytes) {
    return copy_bytes("gp_memcpy_d2h", dst_host, src_device, bytes, 1);
}

/* "d2d" */
extern "C" int gp_memcpy_d2d(void *dst_device, const void *src_device, size_t bytes) {
    return copy_bytes("gp_memcpy_d2d", dst_device, src_device, bytes, 2);
}

extern "C" int gp_synchronize(void) {
    gp_ggml::Backend &b = gp_ggml::backend();
    if (b.backend == nullptr) {
        return gp_fail(GP_ERR_DEVICE, "gp_synchronize: %s", b.init_error.c_str());
    }
    ggml_backend_synchronize(b.backend);
    return GP_OK;
}

/* x_norm: llm_graph_context::build_norm(LLM_NORM_RMS). */
extern "C" int gp_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim,
                          float eps) {
    int rc = gp_check_rmsnorm(dtype, x, w, y, rows, dim, eps);
    if (rc != GP_OK) {
        return rc;
    }
    Graph g("gp_rmsnorm");
    ggml_context *c = g.ctx();
    const ggml_type t = type_of(dtype);
    ggml_tensor *X = g.user(t, {dim, rows}, x, "x");
    ggml_tensor *W = g.user(t, {dim}, w, "w");
    ggml_tensor *Y = g.user(t, {dim, rows}, y, "y");
    ggml_tensor *n = ggml_rms_norm(c, to_f32(c, X), eps);
    g.expand(ggml_cpy(c, ggml_mul(c, n, to_f32(c, W)), Y));
    if ((rc = g.run()) != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1,
              g.on_cpu(n) ? "ggml-cpu rms_norm+mul (f32)" : "ggml-cuda rms_norm+mul (f32)");
    return GP_OK;
}

/* q_proj, k_proj, v_proj, attn_out: build_lora_mm + the bias add. */
extern "C" int gp_linear(int dtype, int route, const void *x, const void *w, const void *bias,
                         void *y, int M, int N, int K) {
    int rc = gp_check_linear(dtype, route, x, w, y, M, N, K);
    if (rc != GP_OK) {
        return rc;
    }
    if (route != GP_ROUTE_AUTO) {
        return gp_fail(GP_ERR_UNSUPPORTED,
                       "gp_linear: route=%s: the ggml adapter has one projection path, "
                       "ggml_mul_mat (ggml picks the kernel); only route=auto",
                       gp_route_name(route));
    }
    Graph g("gp_linear");
    ggml_context *c = g.ctx();
    const ggml_type t = type_of(dtype);
    ggml_tensor *X = g.user(t, {K, M}, x, "x");
    ggml_tensor *W = g.user(t, {K, N}, w, "w");
    ggml_tensor *Y = g.user(t, {N, M}, y, "y");
    ggml_tensor *mm = ggml_mul_mat(c, W, to_f32(c, X)), *r = mm;
    if (prec_f32()) {
        ggml_mul_mat_set_prec(mm, GGML_PREC_F32);
    }
    const bool with_bias = bias != nullptr && !gp_fault_on(GP_FAULT_BIAS_SKIPPED, M);
    if (with_bias) {
        r = ggml_add(c, r, to_f32(c, g.user(t, {N}, bias, "bias")));
    }
    g.expand(ggml_cpy(c, r, Y));
    if ((rc = g.run()) != GP_OK) {
        return rc;
    }
    std::string k =
        gp_ggml::mul_mat_kernel(!g.on_cpu(mm), t, K, N, 1, W->nb[1], W->nb[2], M, prec_f32());
    gp_attest(GP_ROUTE_AUTO, 0, 0, 0, 1, (with_bias ? k + " +bias" : k).c_str());
    return GP_OK;
}

/* q_rope, k_rope: ggml_rope_ext as llama.cpp calls it without RoPE scaling. */
extern "C" int gp_rope(int dtype, int layout, const void *x, void *y, const int32_t *pos, int rows,
                       int n_heads, int head_dim, float theta) {
    int rc = gp_check_rope(dtype, layout, x, y, pos, rows, n_heads, head_dim, theta);
    if (rc != GP_OK) {
        return rc;
    }
    /* The positions are read back once to hold them to the header's range
     * (ggml takes any int32) and, under the position faults, to change
     * the single decode position. */
    std::vector<int32_t> p(static_cast<size_t>(rows));
    if ((rc = gp_ggml::mem_copy("gp_rope", p.data(), pos, p.size() * 4, 1)) != GP_OK) {
        return rc;
    }
    if ((rc = gp_check_rope_positions(p.data(), rows)) != GP_OK) {
        return rc;
    }
    int lay = layout;
    if (gp_fault_on(GP_FAULT_ROPE_WRONG_LAYOUT, rows)) {
        lay = lay == GP_ROPE_NEOX ? GP_ROPE_INTERLEAVED : GP_ROPE_NEOX;
    }
    const bool pos_fault =
        gp_fault_on(GP_FAULT_ROPE_POS_PREV, rows) || gp_fault_on(GP_FAULT_ROPE_POS_ZERO, rows);
    Graph g("gp_rope");
    ggml_context *c = g.ctx();
    const ggml_type t = type_of(dtype);
    ggml_tensor *X = g.user(t, {head_dim, n_heads, rows}, x, "x");
    ggml_tensor *Y = g.user(t, {head_dim, n_heads, rows}, y, "y");
    ggml_tensor *P;
    if (pos_fault) {
        int32_t q = gp_fault_is(GP_FAULT_ROPE_POS_ZERO) ? 0 : (p[0] > 0 ? p[0] - 1 : 0);
        std::vector<uint8_t> b(4);
        std::memcpy(b.data(), &q, 4);
        P = g.input(GGML_TYPE_I32, {1}, b);
    } else {
        P = g.user(GGML_TYPE_I32, {rows}, pos, "pos");
    }
    const int mode = lay == GP_ROPE_NEOX ? GGML_ROPE_TYPE_NEOX : GGML_ROPE_TYPE_NORMAL;
    ggml_tensor *r = ggml_rope_ext(c, to_f32(c, X), P, nullptr, head_dim, mode, 0, theta, 1.0f,
                                   0.0f, 1.0f, 0.0f, 0.0f);
    g.expand(ggml_cpy(c, r, Y));
    if ((rc = g.run()) != GP_OK) {
        return rc;
    }
    std::string kn = std::string(g.on_cpu(r) ? "ggml-cpu" : "ggml-cuda") + " rope_ext " +
                     (lay == GP_ROPE_NEOX ? "neox" : "norm") + " (f32)";
    gp_attest(0, 0, 0, 0, 1, kn.c_str());
    return GP_OK;
}

/* kv_cache: llama_kv_cache::cpy_k / cpy_v (ggml_cpy into cache views). */
extern "C" int gp_kv_append(int dtype, const void *k, const void *v, void *k_cache, void *v_cache,
                            int rows, int kv_width, int slot, int capacity) {
    int rc = gp_check_kv_append(dtype, k, v, k_cache, v_cache, rows, kv_width, slot, capacity);
    if (rc != GP_OK) {
        return rc;
    }
    int s = slot;
    if (gp_fault_on(GP_FAULT_KV_SLOT_OFF, rows)) {
        s = slot + 1;
    }
    if (s + rows <= capacity) {
        Graph g("gp_kv_append");
        ggml_context *c = g.ctx();
        const ggml_type t = type_of(dtype);
        ggml_tensor *Kc = g.user(t, {kv_width, capacity}, k_cache, "k_cache");
        ggml_tensor *Vc = g.user(t, {kv_width, capacity}, v_cache, "v_cache");
        ggml_tensor *Kin = g.user(t, {kv_width, rows}, k, "k");
        ggml_tensor *Vin = g.user(t, {kv_width, rows}, v, "v");
        g.expand(ggml_cpy(c, Kin, ggml_view_2d(c, Kc, kv_width, rows, Kc->nb[1], s * Kc->nb[1])));
        g.expand(ggml_cpy(c, Vin, ggml_view_2d(c, Vc, kv_width, rows, Vc->nb[1], s * Vc->nb[1])));
        if ((rc = g.run()) != GP_OK) {
            return rc;
        }
    }
    gp_attest(0, 0, 0, 0, 1, "ggml cpy into cache views");
    return GP_OK;
}

/* ==== "unfused": build_attn_mha without flash attention ================== */

/* K or V of the first n_kv cache rows as [head_dim, n_kv, n_kv_heads]. */
static ggml_tensor *cache_heads(ggml_context *c, ggml_tensor *cache, int head_dim, int n_kv,
                                int n_kv_heads) {
    return ggml_view_3d(c, cache, head_dim, n_kv, n_kv_heads, cache->nb[1],
                        static_cast<size_t>(head_dim) * ggml_element_size(cache), 0);
}

extern "C" int gp_attn_scores(int dtype, const void *q, const void *k_cache, float *scores, int n_q,
                              int n_kv, int n_heads, int n_kv_heads, int head_dim, int q_pos0,
                              float scale, int causal) {
    int rc = gp_check_attn_scores(dtype, q, k_cache, scores, n_q, n_kv, n_heads, n_kv_heads,
                                  head_dim, q_pos0, scale);
    if (rc != GP_OK) {
        return rc;
    }
    Graph g("gp_attn_scores");
    ggml_context *c = g.ctx();
    const ggml_type t = type_of(dtype);
    const int kvw = n_kv_heads * head_dim;
    ggml_tensor *Q = g.user(t, {head_dim, n_heads, n_q}, q, "q");
    ggml_tensor *Kc = g.user(t, {kvw, n_kv}, k_cache, "k_cache");
    ggml_tensor *S = g.user(GGML_TYPE_F32, {n_kv, n_q, n_heads}, scores, "scores");
    ggml_tensor *k = cache_heads(c, Kc, head_dim, n_kv, n_kv_heads);
    const bool modulo = gp_fault_on(GP_FAULT_GQA_MODULO, n_q);
    if (modulo) {
        k = repeat_modulo(c, k, n_heads);
    }
    ggml_tensor *qf = to_f32(c, ggml_permute(c, Q, 0, 2, 1, 3)); /* [hd, n_q, n_heads] */
    ggml_tensor *kq = ggml_mul_mat(c, k, qf), *s = kq;           /* [n_kv, n_q, n_heads] */
    ggml_mul_mat_set_prec(kq, GGML_PREC_F32);
    if (!gp_fault_on(GP_FAULT_SCALE_MISSING, n_q)) {
        s = ggml_scale(c, s, scale);
    }
    if (gp_fault_on(GP_FAULT_SCALE_TWICE, n_q)) {
        s = ggml_scale(c, s, scale);
    }
    if (causal) {
        const long long lim = gp_fault_on(GP_FAULT_MASK_OFF_BY_ONE, n_q) ? q_pos0 - 1LL : q_pos0;
        s = causal_mask(g, s, lim);
    }
    g.expand(ggml_cpy(c, s, S));
    if ((rc = g.run()) != GP_OK) {
        return rc;
    }
    std::string kn =
        gp_ggml::mul_mat_kernel(!g.on_cpu(kq), k->type, head_dim, n_kv,
                                modulo ? n_heads : n_kv_heads, k->nb[1], k->nb[2], n_q, true);
    gp_attest(0, 0, 0, 0, 1, ("kq " + kn).c_str());
    return GP_OK;
}

extern "C" int gp_softmax(const float *scores, float *probs, int n_heads, int n_q, int n_kv) {
    int rc = gp_check_softmax(scores, probs, n_heads, n_q, n_kv);
    if (rc != GP_OK) {
        return rc;
    }
    Graph g("gp_softmax");
    ggml_context *c = g.ctx();
    ggml_tensor *S = g.user(GGML_TYPE_F32, {n_kv, n_q, n_heads}, scores, "scores");
    ggml_tensor *P = g.user(GGML_TYPE_F32, {n_kv, n_q, n_heads}, probs, "probs");
    ggml_tensor *sm = ggml_soft_max_ext(c, S, nullptr, 1.0f, 0.0f);
    g.expand(ggml_cpy(c, sm, P));
    if ((rc = g.run()) != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1, g.on_cpu(sm) ? "ggml-cpu soft_max (f32)" : "ggml-cuda soft_max (f32)");
    return GP_OK;
}

extern "C" int gp_attn_pv(int dtype, const float *probs, const void *v_cache, void *out, int n_q,
                          int n_kv, int n_heads, int n_kv_heads, int head_dim) {
    int rc = gp_check_attn_pv(dtype, probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads, head_dim);
    if (rc != GP_OK) {
        return rc;
    }
    Graph g("gp_attn_pv");
    ggml_context *c = g.ctx();
    const ggml_type t = type_of(dtype);
    const int kvw = n_kv_heads * head_dim;
    ggml_tensor *P = g.user(GGML_TYPE_F32, {n_kv, n_q, n_heads}, probs, "probs");
    ggml_tensor *Vc = g.user(t, {kvw, n_kv}, v_cache, "v_cache");
    ggml_tensor *O = g.user(t, {head_dim, n_heads, n_q}, out, "out");
    ggml_tensor *v = cache_heads(c, Vc, head_dim, n_kv, n_kv_heads);
    const bool modulo = gp_fault_on(GP_FAULT_GQA_MODULO, n_q);
    if (modulo) {
        v = repeat_modulo(c, v, n_heads);
    }
    ggml_tensor *vt = ggml_cont(c, ggml_permute(c, v, 1, 0, 2, 3)); /* [n_kv, hd, heads] */
    ggml_tensor *o = ggml_mul_mat(c, vt, P);                        /* [hd, n_q, n_heads] */
    if (prec_f32()) {
        ggml_mul_mat_set_prec(o, GGML_PREC_F32);
    }
    g.expand(ggml_cpy(c, ggml_permute(c, o, 0, 2, 1, 3), O));
    if ((rc = g.run()) != GP_OK) {
        return rc;
    }
    std::string kn = gp_ggml::mul_mat_kernel(!g.on_cpu(o), vt->type, n_kv, head_dim, vt->ne[2],
                                             vt->nb[1], vt->nb[2], n_q, prec_f32());
    gp_attest(0, 0, 0, 0, 1, ("kqv " + kn).c_str());
    return GP_OK;
}

/* ==== "fused": build_attn_mha with flash attention ======================= */

namespace {

/* GRETA_GGML_FA_PAD=0 turns off the padding of the keys to 256. */
bool fa_pad() {
    const char *e = std::getenv("GRETA_GGML_FA_PAD");
    return e == nullptr || std::strcmp(e, "0") != 0;
}

/* lse[h * n_q + i] in f32 by a ggml graph per chunk of queries. */
int attention_lse(int dtype, const void *q, const void *k_cache, float *lse, int n_q, int n_kv,
                  int n_heads, int n_kv_heads, int head_dim, int q_pos0, float scale, int causal,
                  bool prev, bool modulo) {
    const long long budget = 1LL << 26; /* f32 scores of one chunk */
    const int chunk = static_cast<int>(
        std::max(1LL, std::min<long long>(n_q, budget / (static_cast<long long>(n_kv) * n_heads))));
    const ggml_type t = type_of(dtype);
    const int kvw = n_kv_heads * head_dim;
    for (int i0 = 0; i0 < n_q; i0 += chunk) {
        const int n = std::min(chunk, n_q - i0);
        Graph g("gp_attention");
        ggml_context *c = g.ctx();
        const char *qp = static_cast<const char *>(q) +
                         static_cast<size_t>(i0) * n_heads * head_dim * esize(dtype);
        ggml_tensor *Q = g.user(t, {head_dim, n_heads, n}, qp, "q");
        ggml_tensor *Kc = g.user(t, {kvw, n_kv}, k_cache, "k_cache");
        ggml_tensor *L = g.user(GGML_TYPE_F32, {n_q, n_heads}, lse, "lse");
        ggml_tensor *k = cache_heads(c, Kc, head_dim, n_kv, n_kv_heads);
        if (modulo) {
            k = repeat_modulo(c, k, n_heads);
        }
        ggml_tensor *kq = ggml_mul_mat(c, k, to_f32(c, ggml_permute(c, Q, 0, 2, 1, 3)));
        ggml_mul_mat_set_prec(kq, GGML_PREC_F32);
        ggml_tensor *s = ggml_scale(c, kq, scale); /* [n_kv, n, n_heads] */
        if (causal) {
            s = causal_mask(g, s, static_cast<long long>(q_pos0) + i0 - (prev ? 1 : 0));
        }
        ggml_tensor *m =
            ggml_pool_2d(c, s, GGML_OP_POOL_MAX, n_kv, 1, n_kv, 1, 0, 0); /* [1, n, H] */
        ggml_tensor *d = ggml_sub(c, s, m), *e = ggml_exp(c, d), *sum = ggml_sum_rows(c, e);
        ggml_tensor *lg = ggml_log(c, sum), *l = ggml_add(c, lg, m);
        /* On ggml's CPU backend in every build: ggml-cuda would run the f32
         * product on TF32 (its cuBLAS handles' math mode) and exp/log as
         * -use_fast_math intrinsics, roundings of the adapter's statistic
         * that are no part of ggml's flash attention. */
        for (ggml_tensor *x : {kq, s, m, d, e, sum, lg, l}) {
            g.pin_cpu(x);
        }
        ggml_tensor *dst = ggml_view_2d(c, L, n, n_heads, L->nb[1], static_cast<size_t>(i0) * 4);
        g.expand(ggml_cpy(c, ggml_reshape_2d(c, l, n, n_heads), dst));
        int rc = g.run();
        if (rc != GP_OK) {
            return rc;
        }
    }
    return GP_OK;
}

} // namespace

extern "C" int gp_attention(int dtype, const void *q, const void *k_cache, const void *v_cache,
                            void *out, float *lse, int n_q, int n_kv, int n_heads, int n_kv_heads,
                            int head_dim, int q_pos0, float scale, int causal) {
    int rc = gp_check_attention(dtype, q, k_cache, v_cache, out, n_q, n_kv, n_heads, n_kv_heads,
                                head_dim, q_pos0, scale);
    if (rc != GP_OK) {
        return rc;
    }
    const bool prev = causal && gp_fault_on(GP_FAULT_ATTN_CAUSAL_PREV, n_q);
    const bool modulo = gp_fault_on(GP_FAULT_ATTN_GQA_MODULO, n_q);
    const ggml_type t = type_of(dtype);
    const int kvw = n_kv_heads * head_dim;
    if (prev && q_pos0 == 0) {
        /* attn_causal_prev at position 0: no visible key (header): out 0,
         * lse -INF. */
        Graph g("gp_attention");
        ggml_tensor *O = g.user(t, {head_dim, n_heads, n_q}, out, "out");
        g.expand(ggml_cpy(g.ctx(), g.zeros(t, {head_dim, n_heads, n_q}), O));
        if (lse != nullptr) {
            ggml_tensor *L = g.user(GGML_TYPE_F32, {n_q, n_heads}, lse, "lse");
            g.expand(ggml_cpy(g.ctx(),
                              g.input(GGML_TYPE_F32, {n_q, n_heads},
                                      mask_bytes(false, n_q * n_heads, 1, 0, false, 0)),
                              L));
        }
        if ((rc = g.run()) != GP_OK) {
            return rc;
        }
        gp_attest(0, 0, 0, 0, 1, "no visible key");
        return GP_OK;
    }
    const int n_pad = fa_pad() ? (n_kv + 255) / 256 * 256 : n_kv;
    Graph g("gp_attention");
    ggml_context *c = g.ctx();
    ggml_tensor *Q = g.user(t, {head_dim, n_heads, n_q}, q, "q");
    ggml_tensor *Kc = g.user(t, {kvw, n_kv}, k_cache, "k_cache");
    ggml_tensor *Vc = g.user(t, {kvw, n_kv}, v_cache, "v_cache");
    ggml_tensor *O = g.user(t, {head_dim, n_heads, n_q}, out, "out");
    if (n_pad != n_kv) {
        /* The cache's n_kv rows copied into zeroed [kvw, n_pad] tensors;
         * the copies come first in the graph. */
        ggml_tensor *Kp = g.zeros(t, {kvw, n_pad}), *Vp = g.zeros(t, {kvw, n_pad});
        g.expand(ggml_cpy(c, Kc, ggml_view_2d(c, Kp, kvw, n_kv, Kp->nb[1], 0)));
        g.expand(ggml_cpy(c, Vc, ggml_view_2d(c, Vp, kvw, n_kv, Vp->nb[1], 0)));
        Kc = Kp;
        Vc = Vp;
    }
    ggml_tensor *k = cache_heads(c, Kc, head_dim, n_pad, n_kv_heads);
    ggml_tensor *v = cache_heads(c, Vc, head_dim, n_pad, n_kv_heads);
    if (modulo) {
        k = repeat_modulo(c, k, n_heads);
        v = repeat_modulo(c, v, n_heads);
    }
    ggml_tensor *mask = nullptr;
    if (causal || n_pad != n_kv) {
        mask =
            g.input(GGML_TYPE_F16, {n_pad, n_q},
                    mask_bytes(true, n_pad, n_q, n_kv, causal != 0, q_pos0 - (prev ? 1LL : 0LL)));
    }
    ggml_tensor *qf = to_f32(c, ggml_permute(c, Q, 0, 2, 1, 3)); /* [hd, n_q, n_heads] */
    ggml_tensor *fa = ggml_flash_attn_ext(c, qf, k, v, mask, scale, 0.0f, 0.0f);
    ggml_flash_attn_ext_set_prec(fa, GGML_PREC_F32); /* [hd, n_heads, n_q] f32 */
    g.expand(ggml_cpy(c, fa, O));
    if ((rc = g.run()) != GP_OK) {
        return rc;
    }
    std::string kn = gp_ggml::flash_attn_kernel(!g.on_cpu(fa), head_dim, n_q, n_pad,
                                                n_heads / n_kv_heads, mask != nullptr);
    if (lse != nullptr) {
        rc = attention_lse(dtype, q, k_cache, lse, n_q, n_kv, n_heads, n_kv_heads, head_dim, q_pos0,
                           scale, causal, prev, modulo);
        if (rc != GP_OK) {
            return rc;
        }
        kn += " +lse (ggml-cpu)";
    }
    gp_attest(0, 0, 0, 0, 1, kn.c_str());
    return GP_OK;
}

/* ==== "faults" ============================================================ */

extern "C" int gp_set_fault(const char *name) {
    if (name == nullptr) {
        return gp_fail(GP_ERR_NULL_POINTER, "gp_set_fault: name is NULL");
    }
    if (name[0] != '\0' && std::strcmp(name, "none") != 0) {
        bool ours = false;
        for (const char *f : g_faults) {
            ours = ours || std::strcmp(f, name) == 0;
        }
        if (!ours) {
            return gp_fail(GP_ERR_UNKNOWN_FAULT,
                           "gp_set_fault: name=\"%.64s\" is not a fault of the ggml adapter", name);
        }
    }
    return gp_common_set_fault(name);
}

extern "C" const char *gp_active_fault(void) { return gp_common_active_fault(); }

extern "C" int gp_fault_count(void) { return g_fault_count; }

extern "C" const char *gp_fault_name(int i) {
    return i >= 0 && i < g_fault_count ? g_faults[i] : nullptr;
}
