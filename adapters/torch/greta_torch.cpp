/*
 * greta_torch.cpp: the kernel ABI of kernels/include/greta_parity.h (version 3)
 * implemented on PyTorch's ATen, so that the parity harness checks PyTorch's
 * own kernels (cuBLAS/cuBLASLt through at::linear and at::matmul, ATen's
 * elementwise and reduction kernels, scaled_dot_product_attention's
 * FlashAttention-2, memory-efficient, cuDNN and math backends) rather than
 * kernels written for the harness.
 *
 * Each stage is computed the way HuggingFace transformers' Llama code
 * (modeling_llama.py, eager and sdpa attention) computes it:
 *   x_norm    LlamaRMSNorm: upcast to f32, x * rsqrt(mean(x^2) + eps), cast
 *             back to dtype, multiply by the weight in dtype.
 *   q/k/v_proj, attn_out
 *             at::linear(x, W, b) (nn.Linear; the bias goes in as HF passes
 *             it, so cuBLAS/cuBLASLt decide how it is added).
 *   q/k_rope  LlamaRotaryEmbedding + apply_rotary_pos_emb: inv_freq =
 *             1 / theta^(arange(0, d, 2) / d) and the angles pos * inv_freq
 *             in f32, cos and sin in f32 then cast to dtype, and
 *             x * cos + rotate(x) * sin in dtype. neox = rotate_half; the
 *             interleaved layout (GPT-J pairs 2i, 2i+1) is the same
 *             arithmetic with rotate_every_two and repeat_interleaved tables.
 *   kv_cache  Tensor::copy_ into rows slot..slot+rows-1 of the caches.
 *   qk, softmax, pv ("unfused", eager_attention_forward)
 *             scores = matmul(q, repeat_kv(K)^T) in dtype, * scale in dtype,
 *             upcast to f32 (the ABI's scores are f32), masked with -inf;
 *             softmax in f32; probs cast to dtype and matmul(probs, V).
 *   attn ("fused", sdpa_attention_forward)
 *             scaled_dot_product_attention on the backend GRETA_TORCH_SDPA
 *             names: flash (default), efficient, cudnn or math.
 *
 * Device memory: gp_malloc is cudaMalloc (not PyTorch's caching allocator),
 * so each harness buffer is its own allocation with the harness's guard
 * regions around it; every entry point wraps the ABI's pointers with
 * at::from_blob for exactly the region the header gives it, computes into
 * ATen temporaries (the caching allocator) and writes the result with one
 * copy_ into that view, so nothing outside the given buffers is written.
 * The ATen kernels run on the current CUDA stream of the calling thread,
 * which is the legacy default stream (nothing here changes it);
 * gp_memcpy_h2d/d2h are synchronous cudaMemcpy on it, gp_memcpy_d2d an
 * asynchronous cudaMemcpyAsync on it.
 *
 * Capabilities: core, "unfused", "fused", "attestation" (the kernel name
 * says which ATen op or SDPA backend ran; cuBLAS does not say which GEMM
 * kernel it picked, so projections attest route 0 and "at::linear"),
 * "faults" (decode-only faults applied in this glue around the real
 * kernels; see g_faults), "mlp" (the rest of HF's decoder layer) and
 * "d2d". Not "routes" (at::linear is the only
 * projection path) nor "invariance" (PyTorch is not batch invariant).
 *
 * Testing without a GPU: built with -DGP_TORCH_CPU_ONLY (make
 * adapter-torch-cpu) or run with GRETA_TORCH_DEVICE=cpu, the same glue runs
 * on ATen's CPU kernels, with host memory as "device" memory. That checks
 * the glue (layouts, masks, GQA mapping, LSE plumbing, faults), not
 * PyTorch's GPU kernels.
 */
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>
#include <torch/version.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <limits>
#include <string>
#include <tuple>

#ifndef GP_TORCH_CPU_ONLY
#include <cuda_runtime_api.h>
#endif

extern "C" {
#include "gp_common.h"
/* gp_common.c is compiled with its four fault functions renamed (torch.mk)
 * so that this library exports only the faults it implements. */
int gp_common_set_fault(const char *name);
const char *gp_common_active_fault(void);
}

namespace {

/* ---- configuration ------------------------------------------------------ */

enum class Sdpa { Flash, Efficient, Cudnn, Math, Invalid };

const char *sdpa_name(Sdpa s) {
    switch (s) {
    case Sdpa::Flash:
        return "flash";
    case Sdpa::Efficient:
        return "efficient";
    case Sdpa::Cudnn:
        return "cudnn";
    case Sdpa::Math:
        return "math";
    default:
        return "invalid";
    }
}

struct Config {
    bool cpu = false; /* ATen CPU kernels and host memory (testing) */
    Sdpa sdpa = Sdpa::Flash;
    std::string sdpa_env; /* GRETA_TORCH_SDPA as given */
    std::string name;     /* gp_backend_name() */
};

const Config &config() {
    static const Config cfg = [] {
        Config c;
#ifdef GP_TORCH_CPU_ONLY
        c.cpu = true;
#else
        const char *dev = std::getenv("GRETA_TORCH_DEVICE");
        c.cpu = dev != nullptr && std::strcmp(dev, "cpu") == 0;
#endif
        const char *s = std::getenv("GRETA_TORCH_SDPA");
        c.sdpa_env = s != nullptr ? s : "";
        if (c.sdpa_env.empty() || c.sdpa_env == "flash") {
            c.sdpa = Sdpa::Flash;
        } else if (c.sdpa_env == "efficient") {
            c.sdpa = Sdpa::Efficient;
        } else if (c.sdpa_env == "cudnn") {
            c.sdpa = Sdpa::Cudnn;
        } else if (c.sdpa_env == "math") {
            c.sdpa = Sdpa::Math;
        } else {
            c.sdpa = Sdpa::Invalid;
        }
        c.name = std::string("torch ") + TORCH_VERSION;
        if (c.cpu) {
            c.name += " cpu";
        } else {
#ifndef GP_TORCH_CPU_ONLY
            int rt = 0;
            if (cudaRuntimeGetVersion(&rt) == cudaSuccess) {
                c.name +=
                    " cuda " + std::to_string(rt / 1000) + "." + std::to_string(rt % 1000 / 10);
            } else {
                (void)cudaGetLastError();
                c.name += " cuda";
            }
#endif
        }
        c.name +=
            std::string(" sdpa=") + (c.sdpa == Sdpa::Invalid ? c.sdpa_env : sdpa_name(c.sdpa));
        /* PyTorch lets cuBLAS reduce split-K partials in f16/bf16 by default
         * (torch.backends.cuda.matmul.allow_{fp16,bf16}_reduced_precision_
         * reduction = True). GRETA_TORCH_REDUCED_PRECISION_REDUCTION=0
         * turns that off, as those flags do, to tell such roundings apart
         * from others (docs/ENGINES.md); the name says so. */
        const char *rpr = std::getenv("GRETA_TORCH_REDUCED_PRECISION_REDUCTION");
        if (rpr != nullptr && std::strcmp(rpr, "0") == 0) {
            at::globalContext().setAllowFP16ReductionCuBLAS(false);
            at::globalContext().setAllowBF16ReductionCuBLAS(false);
            c.name += " rpr=off";
        }
        return c;
    }();
    return cfg;
}

at::Device device() { return config().cpu ? at::Device(at::kCPU) : at::Device(at::kCUDA, 0); }

at::ScalarType scalar_of(int dtype) {
    switch (dtype) {
    case GP_DTYPE_F16:
        return at::kHalf;
    case GP_DTYPE_BF16:
        return at::kBFloat16;
    default:
        return at::kFloat;
    }
}

/* A tensor over ABI memory: exactly sizes (contiguous, row-major) at p. */
at::Tensor wrap(const void *p, at::IntArrayRef sizes, at::ScalarType t) {
    return at::from_blob(const_cast<void *>(p), sizes,
                         at::TensorOptions().dtype(t).device(device()));
}

/* Runs body under inference mode and turns an exception into gp_fail. */
int guarded(const char *fn, const std::function<void()> &body) {
    try {
        c10::InferenceMode mode;
        body();
        return GP_OK;
    } catch (const c10::Error &e) {
        std::string msg = e.what_without_backtrace();
        return gp_fail(GP_ERR_DEVICE, "%s: torch: %.400s", fn, msg.c_str());
    } catch (const std::exception &e) {
        return gp_fail(GP_ERR_DEVICE, "%s: %.400s", fn, e.what());
    }
}

/* ---- faults --------------------------------------------------------------- */

/* The faults this adapter implements, in the header's order: each one is a
 * change of the glue around an unchanged PyTorch kernel (the positions, the
 * layout or the scale passed to it, the KV head mapping or mask built for
 * it, the bias or cache slot given to it), active only at row count 1. The
 * faults inside a kernel (an f16 GEMV accumulator, split-K, a softmax
 * without max, a flash-decoding combine) have no glue form here. */
const char *const g_faults[] = {
    "rope_wrong_layout", "rope_pos_prev",       "rope_pos_zero",   "gqa_modulo",
    "kv_slot_off",       "scale_missing",       "scale_twice",     "mask_off_by_one",
    "bias_skipped",      "attn_causal_prev",    "attn_gqa_modulo", "act_wrong_half",
    "residual_twice",    "post_norm_no_offset",
};
constexpr int g_fault_count = sizeof g_faults / sizeof g_faults[0];

/* ---- KV head mapping -------------------------------------------------- */

/* x is [..., n_kv_heads, n, d] (head dim at hdim): returns it with n_heads
 * heads, head h reading KV head h / (n_heads / n_kv_heads) as HF's repeat_kv
 * (expand + reshape), or h % n_kv_heads with modulo (the gqa faults). */
at::Tensor repeat_kv(const at::Tensor &x, int64_t hdim, int64_t n_heads, int64_t n_kv_heads,
                     bool modulo) {
    const int64_t g = n_heads / n_kv_heads;
    if (g == 1) {
        return x;
    }
    if (modulo) {
        std::vector<int64_t> reps(x.dim(), 1);
        reps[hdim] = g;
        return x.repeat(reps);
    }
    std::vector<int64_t> shape = x.sizes().vec();
    at::Tensor e = x.unsqueeze(hdim + 1);
    std::vector<int64_t> ex = e.sizes().vec();
    ex[hdim + 1] = g;
    shape[hdim] = n_heads;
    return e.expand(ex).reshape(shape);
}

/* ---- fused attention helpers ------------------------------------------ */

/* The log-sum-exp of each query row, computed in f32 from q and the
 * (expanded) keys: [1, H, n_q]. Used where the SDPA backend that ran does
 * not return one (math, cuDNN through the public API). Keys j > q_pos0 + i
 * are masked when causal. Chunked over queries to bound the memory. */
at::Tensor lse_f32(const at::Tensor &q, const at::Tensor &k, double scale, bool causal,
                   int64_t q_pos0) {
    const int64_t H = q.size(1), nq = q.size(2), nk = k.size(2);
    at::Tensor kf = k.to(at::kFloat).transpose(-1, -2);
    at::Tensor out = at::empty({1, H, nq}, q.options().dtype(at::kFloat));
    const int64_t budget = int64_t(1) << 28; /* elements of one chunk's scores */
    const int64_t chunk = std::max<int64_t>(1, budget / std::max<int64_t>(1, H * nk));
    for (int64_t i0 = 0; i0 < nq; i0 += chunk) {
        const int64_t n = std::min(chunk, nq - i0);
        at::Tensor s = at::matmul(q.narrow(2, i0, n).to(at::kFloat), kf) * scale;
        if (causal) {
            at::Tensor i = at::arange(i0, i0 + n, s.options().dtype(at::kLong)).unsqueeze(1);
            at::Tensor j = at::arange(nk, s.options().dtype(at::kLong)).unsqueeze(0);
            s.masked_fill_(j > i + q_pos0, -std::numeric_limits<float>::infinity());
        }
        out.narrow(2, i0, n).copy_(at::logsumexp(s, -1));
    }
    return out;
}

struct AttnResult {
    at::Tensor out; /* [1, H, n_q, d] dtype */
    at::Tensor lse; /* [1, H, >= n_q] f32 */
    std::string kernel;
};

} // namespace

/* ==== CORE ================================================================ */

extern "C" const char *gp_backend_name(void) { return config().name.c_str(); }

extern "C" int gp_device_count(int *count) {
    int rc = gp_check_device_count(count);
    if (rc != GP_OK) {
        return rc;
    }
    if (config().sdpa == Sdpa::Invalid) {
        *count = 0;
        return gp_fail(GP_ERR_INVALID_ARG,
                       "gp_device_count: GRETA_TORCH_SDPA=%.64s is not flash, efficient, cudnn "
                       "or math",
                       config().sdpa_env.c_str());
    }
    if (config().cpu) {
        *count = 1;
        return GP_OK;
    }
#ifndef GP_TORCH_CPU_ONLY
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        *count = 0;
        return gp_fail(GP_ERR_DEVICE, "gp_device_count: cudaGetDeviceCount: %s",
                       cudaGetErrorString(err));
    }
    *count = n;
#endif
    return GP_OK;
}

#ifndef GP_TORCH_CPU_ONLY
static int cuda_fail(const char *fn, const char *what, cudaError_t err) {
    (void)cudaGetLastError();
    return gp_fail(err == cudaErrorMemoryAllocation ? GP_ERR_OUT_OF_MEMORY : GP_ERR_DEVICE,
                   "%s: %s: %s (%s)", fn, what, cudaGetErrorString(err), cudaGetErrorName(err));
}
#endif

extern "C" int gp_malloc(void **ptr, size_t bytes) {
    int rc = gp_check_malloc(ptr, bytes);
    if (rc != GP_OK) {
        return rc;
    }
    *ptr = nullptr;
    if (config().cpu) {
        void *p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
        if (p == nullptr) {
            return gp_fail(GP_ERR_OUT_OF_MEMORY, "gp_malloc: %zu bytes: out of host memory", bytes);
        }
        *ptr = p;
        return GP_OK;
    }
#ifndef GP_TORCH_CPU_ONLY
    cudaError_t err = cudaMalloc(ptr, bytes);
    if (err != cudaSuccess) {
        *ptr = nullptr;
        return cuda_fail("gp_malloc", "cudaMalloc", err);
    }
#endif
    return GP_OK;
}

extern "C" int gp_free(void *ptr) {
    if (ptr == nullptr) {
        return GP_OK;
    }
    if (config().cpu) {
        std::free(ptr);
        return GP_OK;
    }
#ifndef GP_TORCH_CPU_ONLY
    cudaError_t err = cudaFree(ptr);
    if (err != cudaSuccess) {
        return cuda_fail("gp_free", "cudaFree", err);
    }
#endif
    return GP_OK;
}

static int copy_bytes(const char *fn, void *dst, const void *src, size_t bytes, int kind) {
    int rc = gp_check_memcpy(fn, dst, src, bytes);
    if (rc != GP_OK || bytes == 0) {
        return rc;
    }
    if (config().cpu) {
        std::memcpy(dst, src, bytes);
        return GP_OK;
    }
#ifndef GP_TORCH_CPU_ONLY
    cudaError_t err = kind == 2
                          ? cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0)
                          : cudaMemcpy(dst, src, bytes,
                                       kind == 0 ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost);
    if (err != cudaSuccess) {
        return cuda_fail(fn, "cudaMemcpy", err);
    }
#else
    (void)kind;
#endif
    return GP_OK;
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
    if (config().cpu) {
        return GP_OK;
    }
#ifndef GP_TORCH_CPU_ONLY
    cudaError_t err = cudaDeviceSynchronize();
    if (err == cudaSuccess) {
        err = cudaGetLastError();
    }
    if (err != cudaSuccess) {
        return cuda_fail("gp_synchronize", "cudaDeviceSynchronize", err);
    }
#endif
    return GP_OK;
}

/* x_norm: LlamaRMSNorm.forward. */
extern "C" int gp_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim,
                          float eps) {
    int rc = gp_check_rmsnorm(dtype, x, w, y, rows, dim, eps);
    if (rc != GP_OK) {
        return rc;
    }
    return guarded("gp_rmsnorm", [&] {
        const at::ScalarType t = scalar_of(dtype);
        at::Tensor X = wrap(x, {rows, dim}, t), W = wrap(w, {dim}, t), Y = wrap(y, {rows, dim}, t);
        at::Tensor h = X.to(at::kFloat);
        at::Tensor var = h.pow(2).mean(-1, /*keepdim=*/true);
        h = h * at::rsqrt(var + eps);
        Y.copy_(W * h.to(t));
        gp_attest(0, 0, 0, 0, 1, "hf_rmsnorm (f32 normalize, cast, *w in dtype)");
    });
}

/* q_proj, k_proj, v_proj, attn_out: nn.Linear.forward. */
extern "C" int gp_linear(int dtype, int route, const void *x, const void *w, const void *bias,
                         void *y, int M, int N, int K) {
    int rc = gp_check_linear(dtype, route, x, w, y, M, N, K);
    if (rc != GP_OK) {
        return rc;
    }
    if (route != GP_ROUTE_AUTO) {
        return gp_fail(GP_ERR_UNSUPPORTED,
                       "gp_linear: route=%s: the torch adapter has one projection path, "
                       "at::linear (cuBLAS picks the kernel); only route=auto",
                       gp_route_name(route));
    }
    return guarded("gp_linear", [&] {
        const at::ScalarType t = scalar_of(dtype);
        at::Tensor X = wrap(x, {M, K}, t), W = wrap(w, {N, K}, t), Y = wrap(y, {M, N}, t);
        c10::optional<at::Tensor> B;
        if (bias != nullptr && !gp_fault_on(GP_FAULT_BIAS_SKIPPED, M)) {
            B = wrap(bias, {N}, t);
        }
        Y.copy_(at::linear(X, W, B));
        gp_attest(GP_ROUTE_AUTO, 0, 0, 0, 1,
                  B ? "at::linear (+bias; cuBLAS picks)" : "at::linear (cuBLAS picks)");
    });
}

/* q_rope, k_rope: LlamaRotaryEmbedding.forward + apply_rotary_pos_emb. */
extern "C" int gp_rope(int dtype, int layout, const void *x, void *y, const int32_t *pos, int rows,
                       int n_heads, int head_dim, float theta) {
    int rc = gp_check_rope(dtype, layout, x, y, pos, rows, n_heads, head_dim, theta);
    if (rc != GP_OK) {
        return rc;
    }
    return guarded("gp_rope", [&] {
        const at::ScalarType t = scalar_of(dtype);
        int lay = layout;
        if (gp_fault_on(GP_FAULT_ROPE_WRONG_LAYOUT, rows)) {
            lay = lay == GP_ROPE_NEOX ? GP_ROPE_INTERLEAVED : GP_ROPE_NEOX;
        }
        at::Tensor X = wrap(x, {rows, n_heads, head_dim}, t);
        at::Tensor Y = wrap(y, {rows, n_heads, head_dim}, t);
        at::Tensor p = wrap(pos, {rows}, at::kInt).to(at::kLong);
        if (gp_fault_on(GP_FAULT_ROPE_POS_PREV, rows)) {
            p = (p - 1).clamp_min(0);
        } else if (gp_fault_on(GP_FAULT_ROPE_POS_ZERO, rows)) {
            p = at::zeros_like(p);
        }
        /* inv_freq = 1 / theta ** (arange(0, d, 2).float() / d), in f32 */
        at::Tensor expo = at::arange(0, head_dim, 2, X.options().dtype(at::kLong)).to(at::kFloat) /
                          static_cast<double>(head_dim);
        at::Tensor inv_freq = at::pow(at::Scalar(static_cast<double>(theta)), expo).reciprocal();
        /* freqs = pos * inv_freq (HF: inv_freq[:, None] @ pos[None, :] in f32) */
        at::Tensor freqs = p.to(at::kFloat).unsqueeze(1) * inv_freq.unsqueeze(0); /* [rows, d/2] */
        const int64_t half = head_dim / 2;
        at::Tensor emb, rot;
        if (lay == GP_ROPE_NEOX) {
            emb = at::cat({freqs, freqs}, -1);
            at::Tensor x1 = X.narrow(-1, 0, half), x2 = X.narrow(-1, half, half);
            rot = at::cat({x2.neg(), x1}, -1); /* rotate_half */
        } else {
            emb = freqs.repeat_interleave(2, -1);
            at::Tensor xv = X.unflatten(-1, {half, 2});
            at::Tensor xe = xv.select(-1, 0), xo = xv.select(-1, 1);
            rot = at::stack({xo.neg(), xe}, -1).flatten(-2); /* rotate_every_two */
        }
        at::Tensor cos = emb.cos().to(t).unsqueeze(1), sin = emb.sin().to(t).unsqueeze(1);
        Y.copy_(X * cos + rot * sin);
        gp_attest(0, 0, 0, 0, 1,
                  lay == GP_ROPE_NEOX ? "hf_rope rotate_half (cos/sin in dtype)"
                                      : "hf_rope rotate_every_two (cos/sin in dtype)");
    });
}

/* kv_cache: the cache update as tensor copies. */
extern "C" int gp_kv_append(int dtype, const void *k, const void *v, void *k_cache, void *v_cache,
                            int rows, int kv_width, int slot, int capacity) {
    int rc = gp_check_kv_append(dtype, k, v, k_cache, v_cache, rows, kv_width, slot, capacity);
    if (rc != GP_OK) {
        return rc;
    }
    return guarded("gp_kv_append", [&] {
        const at::ScalarType t = scalar_of(dtype);
        int64_t s = slot;
        if (gp_fault_on(GP_FAULT_KV_SLOT_OFF, rows)) {
            s = slot + 1;
        }
        if (s + rows <= capacity) {
            wrap(k_cache, {capacity, kv_width}, t)
                .narrow(0, s, rows)
                .copy_(wrap(k, {rows, kv_width}, t));
            wrap(v_cache, {capacity, kv_width}, t)
                .narrow(0, s, rows)
                .copy_(wrap(v, {rows, kv_width}, t));
        }
        gp_attest(0, 0, 0, 0, 1, "Tensor::copy_");
    });
}

/* ==== "unfused": eager_attention_forward ================================ */

extern "C" int gp_attn_scores(int dtype, const void *q, const void *k_cache, float *scores, int n_q,
                              int n_kv, int n_heads, int n_kv_heads, int head_dim, int q_pos0,
                              float scale, int causal) {
    int rc = gp_check_attn_scores(dtype, q, k_cache, scores, n_q, n_kv, n_heads, n_kv_heads,
                                  head_dim, q_pos0, scale);
    if (rc != GP_OK) {
        return rc;
    }
    return guarded("gp_attn_scores", [&] {
        const at::ScalarType t = scalar_of(dtype);
        at::Tensor Q = wrap(q, {n_q, n_heads, head_dim}, t).transpose(0, 1); /* [H, n_q, d] */
        at::Tensor K = wrap(k_cache, {n_kv, n_kv_heads, head_dim}, t).transpose(0, 1);
        K = repeat_kv(K, 0, n_heads, n_kv_heads, gp_fault_on(GP_FAULT_GQA_MODULO, n_q));
        at::Tensor S = at::matmul(Q, K.transpose(1, 2)); /* dtype, as HF */
        if (!gp_fault_on(GP_FAULT_SCALE_MISSING, n_q)) {
            S = S * static_cast<double>(scale);
        }
        if (gp_fault_on(GP_FAULT_SCALE_TWICE, n_q)) {
            S = S * static_cast<double>(scale);
        }
        at::Tensor Sf = S.to(at::kFloat);
        if (causal) {
            /* HF adds finfo(dtype).min; the ABI wants -inf above the limit. */
            const int64_t lim = gp_fault_on(GP_FAULT_MASK_OFF_BY_ONE, n_q) ? q_pos0 - 1 : q_pos0;
            at::Tensor i = at::arange(n_q, Sf.options().dtype(at::kLong)).unsqueeze(1);
            at::Tensor j = at::arange(n_kv, Sf.options().dtype(at::kLong)).unsqueeze(0);
            Sf.masked_fill_((j > i + lim).unsqueeze(0), -std::numeric_limits<float>::infinity());
        }
        wrap(scores, {n_heads, n_q, n_kv}, at::kFloat).copy_(Sf);
        gp_attest(0, 0, 0, 0, 1, "at::matmul(q, repeat_kv(k)^T) * scale in dtype");
    });
}

extern "C" int gp_softmax(const float *scores, float *probs, int n_heads, int n_q, int n_kv) {
    int rc = gp_check_softmax(scores, probs, n_heads, n_q, n_kv);
    if (rc != GP_OK) {
        return rc;
    }
    return guarded("gp_softmax", [&] {
        at::Tensor S = wrap(scores, {n_heads, n_q, n_kv}, at::kFloat);
        wrap(probs, {n_heads, n_q, n_kv}, at::kFloat).copy_(at::softmax(S, -1, at::kFloat));
        gp_attest(0, 0, 0, 0, 1, "at::softmax (f32)");
    });
}

extern "C" int gp_attn_pv(int dtype, const float *probs, const void *v_cache, void *out, int n_q,
                          int n_kv, int n_heads, int n_kv_heads, int head_dim) {
    int rc = gp_check_attn_pv(dtype, probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads, head_dim);
    if (rc != GP_OK) {
        return rc;
    }
    return guarded("gp_attn_pv", [&] {
        const at::ScalarType t = scalar_of(dtype);
        at::Tensor P = wrap(probs, {n_heads, n_q, n_kv}, at::kFloat);
        at::Tensor V = wrap(v_cache, {n_kv, n_kv_heads, head_dim}, t).transpose(0, 1);
        V = repeat_kv(V, 0, n_heads, n_kv_heads, gp_fault_on(GP_FAULT_GQA_MODULO, n_q));
        at::Tensor O = at::matmul(P.to(t), V); /* HF: softmax(...).to(dtype) @ V */
        wrap(out, {n_q, n_heads, head_dim}, t).copy_(O.transpose(0, 1));
        gp_attest(0, 0, 0, 0, 1, "at::matmul(probs.to(dtype), repeat_kv(v))");
    });
}

/* ==== "fused": scaled_dot_product_attention ============================= */

namespace {

/* Runs SDPA on q [1, H, n_q, d] and the caches' visible keys k, v [1, Hkv,
 * n_keys, d]. mask: 0 none (every key visible to every query), 1 causal
 * with the top-left alignment SDPA's is_causal has (used only when n_q ==
 * n_keys, where it equals the ABI's limit), 2 an explicit mask: key j
 * visible to query i iff j <= q_pos0 + i. */
AttnResult run_sdpa(const at::Tensor &q, const at::Tensor &k, const at::Tensor &v, int mask,
                    int64_t q_pos0, double scale, int64_t n_heads, int64_t n_kv_heads,
                    bool gqa_modulo) {
    AttnResult r;
    const bool cpu = config().cpu;
    Sdpa use = config().sdpa;
    std::string why;
    if (use == Sdpa::Flash && q.scalar_type() == at::kFloat) {
        use = cpu ? Sdpa::Math : Sdpa::Efficient;
        why = "flash has no f32";
    }
    if (use == Sdpa::Flash && mask == 2) {
        use = Sdpa::Math;
        why = "flash takes no mask";
    }
    if (use == Sdpa::Efficient && (cpu || mask == 2)) {
        use = Sdpa::Math;
        why = cpu ? "no efficient kernel on cpu" : "explicit mask";
    }
    const bool is_causal = mask == 1;
    /* flash takes GQA as it is (FlashAttention-2 maps head h to KV head h /
     * group); the others get repeat_kv's expanded K and V, as HF passes them
     * where it does not use enable_gqa. The gqa fault expands by h % Hkv. */
    at::Tensor ke = k, ve = v;
    if (gqa_modulo || use != Sdpa::Flash || cpu) {
        ke = repeat_kv(k, 1, n_heads, n_kv_heads, gqa_modulo);
        ve = repeat_kv(v, 1, n_heads, n_kv_heads, gqa_modulo);
    }
    at::Tensor m;
    if (mask == 2) {
        at::Tensor i = at::arange(q.size(2), q.options().dtype(at::kLong)).unsqueeze(1);
        at::Tensor j = at::arange(k.size(2), q.options().dtype(at::kLong)).unsqueeze(0);
        m = (j <= i + q_pos0); /* bool, true = attend */
    }
    bool lse_done = false;
    switch (use) {
    case Sdpa::Flash:
        if (cpu) {
            auto t = at::_scaled_dot_product_flash_attention_for_cpu(q, ke, ve, 0.0, is_causal,
                                                                     c10::nullopt, scale);
            r.out = std::get<0>(t);
            r.lse = std::get<1>(t);
            r.kernel = "sdpa_flash_cpu";
        } else {
            auto t =
                at::_scaled_dot_product_flash_attention(q, ke, ve, 0.0, is_causal, false, scale);
            r.out = std::get<0>(t);
            r.lse = std::get<1>(t); /* [1, H, n_q] f32, natural log */
            r.kernel = "sdpa_flash (FlashAttention-2)";
        }
        lse_done = true;
        break;
    case Sdpa::Efficient: {
        auto t = at::_scaled_dot_product_efficient_attention(q, ke, ve, c10::nullopt, true, 0.0,
                                                             is_causal, scale);
        r.out = std::get<0>(t);
        r.lse = std::get<1>(t); /* [1, H, n_q rounded up to 32] f32, natural log */
        r.kernel = "sdpa_efficient (mem-efficient)";
        lse_done = true;
        break;
    }
    case Sdpa::Cudnn: {
        /* The public API with only cuDNN enabled: SDPA's own checks decide
         * whether cuDNN takes the shape; if not, math runs and says so. */
        try {
            auto &ctx = at::globalContext();
            ctx.setSDPUseFlash(false);
            ctx.setSDPUseMemEfficient(false);
            ctx.setSDPUseMath(false);
            ctx.setSDPUseCuDNN(true);
            c10::optional<at::Tensor> am;
            if (mask == 2) {
                am = m;
            }
            r.out = at::scaled_dot_product_attention(q, ke, ve, am, 0.0, is_causal, scale);
            r.kernel = "sdpa_cudnn";
        } catch (const c10::Error &e) {
            std::string w = e.what_without_backtrace();
            why = "cudnn: " + w.substr(0, w.find('\n')).substr(0, 40);
            use = Sdpa::Math;
        }
        break;
    }
    default:
        break;
    }
    if (use == Sdpa::Math) {
        c10::optional<at::Tensor> am;
        if (mask == 2) {
            am = m;
        }
        auto t = at::_scaled_dot_product_attention_math(q, ke, ve, am, 0.0, is_causal, c10::nullopt,
                                                        scale, false);
        r.out = std::get<0>(t);
        r.kernel = "sdpa_math";
    }
    if (!lse_done) {
        r.lse = lse_f32(q, ke, scale, mask != 0, mask == 1 ? 0 : q_pos0);
        r.kernel += " +lse_f32";
    }
    if (!why.empty()) {
        r.kernel += " (" + why + ")";
    }
    return r;
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
    if (config().sdpa == Sdpa::Invalid) {
        return gp_fail(
            GP_ERR_INVALID_ARG,
            "gp_attention: GRETA_TORCH_SDPA=%.64s is not flash, efficient, cudnn or math",
            config().sdpa_env.c_str());
    }
    return guarded("gp_attention", [&] {
        const at::ScalarType t = scalar_of(dtype);
        const bool prev = causal && gp_fault_on(GP_FAULT_ATTN_CAUSAL_PREV, n_q);
        const bool modulo = gp_fault_on(GP_FAULT_ATTN_GQA_MODULO, n_q);
        /* Which keys, and which mask. The ABI's limit is key j <= q_pos0 + i
         * (the query's own cache row), SDPA's is_causal is j <= i (top-left):
         * they agree only when q_pos0 == 0 and n_q == n_kv (prefill). A
         * single query sees keys 0 .. q_pos0 (decode: all of the cache), so
         * it gets those keys and no mask. Anything else gets the keys up to
         * the last query's limit and an explicit mask. */
        int64_t n_keys = n_kv;
        int mask = 0;
        if (causal) {
            if (n_q == 1) {
                n_keys = q_pos0 + 1 - (prev ? 1 : 0);
            } else if (q_pos0 == 0 && n_q == n_kv) {
                mask = 1;
            } else {
                n_keys = int64_t(q_pos0) + n_q;
                mask = 2;
            }
        }
        at::Tensor O = wrap(out, {n_q, n_heads, head_dim}, t);
        if (n_keys == 0) {
            /* attn_causal_prev at q_pos0 = 0: no visible key (header). */
            O.zero_();
            if (lse != nullptr) {
                wrap(lse, {n_heads, n_q}, at::kFloat)
                    .fill_(-std::numeric_limits<float>::infinity());
            }
            gp_attest(0, 0, 0, 0, 1, "no visible key");
            return;
        }
        at::Tensor Q = wrap(q, {1, n_q, n_heads, head_dim}, t).transpose(1, 2);
        at::Tensor K = wrap(k_cache, {1, n_keys, n_kv_heads, head_dim}, t).transpose(1, 2);
        at::Tensor V = wrap(v_cache, {1, n_keys, n_kv_heads, head_dim}, t).transpose(1, 2);
        AttnResult r = run_sdpa(Q, K, V, mask, q_pos0, static_cast<double>(scale), n_heads,
                                n_kv_heads, modulo);
        O.copy_(r.out.select(0, 0).transpose(0, 1));
        if (lse != nullptr) {
            wrap(lse, {n_heads, n_q}, at::kFloat).copy_(r.lse.select(0, 0).narrow(-1, 0, n_q));
        }
        gp_attest(0, 0, 0, 0, 1, r.kernel.c_str());
    });
}

/* ==== "mlp": the rest of HF's decoder layer ============================= */

/* attn_res, mlp_res: hidden_states = residual + hidden_states, in dtype
 * (one rounding: ATen adds f16/bf16 in f32 and stores once). */
extern "C" int gp_residual_add(int dtype, const void *a, const void *b, void *y, int rows,
                               int width) {
    int rc = gp_check_residual_add(dtype, a, b, y, rows, width);
    if (rc != GP_OK) {
        return rc;
    }
    return guarded("gp_residual_add", [&] {
        const at::ScalarType t = scalar_of(dtype);
        at::Tensor A = wrap(a, {rows, width}, t), B = wrap(b, {rows, width}, t);
        at::Tensor Y = wrap(y, {rows, width}, t);
        at::Tensor s = A + B;
        if (gp_fault_on(GP_FAULT_RESIDUAL_TWICE, rows)) {
            s = s + B;
        }
        Y.copy_(s);
        gp_attest(0, 0, 0, 0, 1, "residual + hidden_states (dtype)");
    });
}

/* post_norm: post_attention_layernorm. w_offset 0 is LlamaRMSNorm (as
 * x_norm: f32 normalize, cast, * w in dtype); w_offset != 0 is
 * GemmaRMSNorm (x.float() normalized, * (w_offset + w.float()), all in f32,
 * type_as(x): one rounding). */
extern "C" int gp_rmsnorm_offset(int dtype, const void *x, const void *w, void *y, int rows,
                                 int dim, float eps, float w_offset) {
    int rc = gp_check_rmsnorm_offset(dtype, x, w, y, rows, dim, eps, w_offset);
    if (rc != GP_OK) {
        return rc;
    }
    return guarded("gp_rmsnorm_offset", [&] {
        const at::ScalarType t = scalar_of(dtype);
        at::Tensor X = wrap(x, {rows, dim}, t), W = wrap(w, {dim}, t), Y = wrap(y, {rows, dim}, t);
        at::Tensor h = X.to(at::kFloat);
        h = h * at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + eps);
        if (w_offset == 0.0f) {
            Y.copy_(W * h.to(t));
            gp_attest(0, 0, 0, 0, 1, "hf_rmsnorm (f32 normalize, cast, *w in dtype)");
            return;
        }
        const float off = gp_fault_on(GP_FAULT_POST_NORM_NO_OFFSET, rows) ? 0.0f : w_offset;
        Y.copy_(h * (W.to(at::kFloat) + off));
        gp_attest(0, 0, 0, 0, 1, "hf_gemma_rmsnorm (f32, *(1+w) in f32, cast once)");
    });
}

/* act: LlamaMLP's act_fn(gate_proj(x)) * up_proj(x), in dtype (the
 * activation rounded, then the product): silu, or Gemma's
 * gelu(approximate="tanh"). */
extern "C" int gp_gated_act(int dtype, int kind, const void *gate, const void *up, void *y,
                            int rows, int width) {
    int rc = gp_check_gated_act(dtype, kind, gate, up, y, rows, width);
    if (rc != GP_OK) {
        return rc;
    }
    return guarded("gp_gated_act", [&] {
        const at::ScalarType t = scalar_of(dtype);
        at::Tensor G = wrap(gate, {rows, width}, t), U = wrap(up, {rows, width}, t);
        at::Tensor Y = wrap(y, {rows, width}, t);
        if (gp_fault_on(GP_FAULT_ACT_WRONG_HALF, rows)) {
            std::swap(G, U);
        }
        const bool gelu = kind == GP_ACT_GELU_TANH;
        Y.copy_((gelu ? at::gelu(G, "tanh") : at::silu(G)) * U);
        gp_attest(0, 0, 0, 0, 1,
                  gelu ? "gelu(tanh)(gate) * up (dtype)" : "silu(gate) * up (dtype)");
    });
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
                           "gp_set_fault: name=\"%.64s\" is not a fault of the torch adapter",
                           name);
        }
    }
    return gp_common_set_fault(name);
}

extern "C" const char *gp_active_fault(void) { return gp_common_active_fault(); }

extern "C" int gp_fault_count(void) { return g_fault_count; }

extern "C" const char *gp_fault_name(int i) {
    return i >= 0 && i < g_fault_count ? g_faults[i] : nullptr;
}
