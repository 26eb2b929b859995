/*
 * ggml_dispatch.cpp: which kernel family ggml runs for a mul_mat or a
 * flash_attn_ext, for gp_last_launch. ggml does not report the kernel it
 * picked, so on CUDA this restates the dispatch conditions of the pinned
 * commit for the card it is built for (sm_90, CMAKE_CUDA_ARCHITECTURES=90:
 * NVIDIA, Ampere MMA and Ada+ rules apply) on the shapes and types the
 * adapter hands to ggml; every name says "inferred@<commit>". Sources at
 * the pinned commit:
 *   src/ggml-cuda/ggml-cuda.cu  ggml_cuda_mul_mat: mmvf if
 *       ggml_cuda_should_use_mmvf, else mmf if ggml_cuda_should_use_mmf,
 *       (mmvq/mmq are for quantized types only), else cuBLAS;
 *       ggml_cuda_mul_mat_cublas: f16 weights compute in CUBLAS_COMPUTE_16F
 *       unless the node's precision is GGML_PREC_F32 or
 *       GGML_CUDA_CUBLAS_COMPUTE_TYPE says otherwise; bf16 weights in
 *       CUBLAS_COMPUTE_32F with a bf16 output; f32 in 32F.
 *   src/ggml-cuda/mmvf.cu  ggml_cuda_should_use_mmvf: ne00 even, rows
 *       aligned to 2 elements; f32: ne11 <= 3; f16/bf16: ne11 == 1 and
 *       (ne01 <= 512 or one batch).
 *   src/ggml-cuda/mmf.cu  ggml_cuda_should_use_mmf: ne00 % (32*4/size) == 0,
 *       ne01 % 32 == 0 (MMF_ROWS_PER_BLOCK), ne11 <= 16.
 *   src/ggml-cuda/fattn.cu  ggml_cuda_get_best_fattn_kernel: with Turing+
 *       MMA and D not 40/72: the vector kernel if D <= 256, D % 64 == 0,
 *       n_kv % 256 == 0 (FATTN_KQ_STRIDE), one query, and not (gqa > 4,
 *       n_kv >= 8192 and the GQA optimization applies); else the MMA f16
 *       kernel (the tile kernel for D = 40, 72).
 * On the CPU backend the names say which ggml-cpu op ran, nothing more.
 */
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "ggml_glue.h"

namespace gp_ggml {

namespace {

std::string tag() { return std::string(" inferred@") + std::string(GP_GGML_COMMIT).substr(0, 7); }

const char *short_type(ggml_type t) {
    switch (t) {
    case GGML_TYPE_F16:
        return "f16";
    case GGML_TYPE_BF16:
        return "bf16";
    default:
        return "f32";
    }
}

/* GGML_CUDA_CUBLAS_COMPUTE_TYPE as ggml reads it, lower-cased, "" if unset. */
std::string cublas_env() {
    const char *e = std::getenv("GGML_CUDA_CUBLAS_COMPUTE_TYPE");
    std::string s = e != nullptr ? e : "";
    for (char &c : s) {
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    return s;
}

/* On a CUDA build, an op on the CPU backend is the scheduler's fallback. */
std::string cpu_why() { return backend().cuda ? " (sched: not on CUDA)" : ""; }

} // namespace

std::string mul_mat_kernel(bool cuda, ggml_type t, int64_t ne00, int64_t ne01, int64_t ne02,
                           size_t nb01, size_t nb02, int64_t ne11, bool prec_f32) {
    if (!cuda) {
        return std::string("ggml-cpu mul_mat ") + short_type(t) + cpu_why();
    }
#ifdef GP_GGML_HIP
    /* The rules below are NVIDIA sm_90's; on ROCm nothing is inferred. */
    return std::string("ggml-hip mul_mat ") + short_type(t) + " (not inferred)";
#endif
    const size_t ts = ggml_type_size(t);
    const bool aligned = nb01 % (2 * ts) == 0 && nb02 % (2 * ts) == 0;
    bool mmvf = ne00 % 2 == 0 && aligned;
    if (mmvf) {
        if (t == GGML_TYPE_F32) {
            mmvf = ne11 <= 3;
        } else {
            mmvf = (ne01 <= 512 || ne02 == 1) && ne11 == 1;
        }
    }
    if (mmvf) {
        /* mmvf.cu: f16 weights at GGML_PREC_DEFAULT accumulate in half2. */
        const bool acc16 = t == GGML_TYPE_F16 && !prec_f32;
        return std::string("mmvf ") + short_type(t) + (acc16 ? " acc f16" : "") + tag();
    }
    const bool mmf =
        ne00 % static_cast<int64_t>(32 * 4 / ts) == 0 && aligned && ne01 % 32 == 0 && ne11 <= 16;
    if (mmf) {
        return std::string("mmf ") + short_type(t) + tag();
    }
    std::string compute = t == GGML_TYPE_F16 ? "16F" : "32F";
    if (prec_f32) {
        compute = "32F";
    }
    const std::string env = cublas_env();
    if (env == "f32" || env == "fp32") {
        compute = "32F";
    } else if (env == "f16" || env == "fp16") {
        compute = "16F";
    } else if (env == "bf16") {
        compute = "32F(bf16)";
    }
    return std::string("cublas ") + short_type(t) + " compute" + compute + tag();
}

std::string flash_attn_kernel(bool cuda, int64_t D, int64_t n_q, int64_t n_kv, int64_t gqa,
                              bool mask) {
    if (!cuda) {
        return "ggml-cpu flash_attn_ext" + cpu_why();
    }
#ifdef GP_GGML_HIP
    return "ggml-hip flash_attn_ext (not inferred)";
#endif
    if (D == 40 || D == 72) {
        return "fattn tile" + tag();
    }
    const bool vec_ok = D <= 256 && D % 64 == 0 && n_kv % 256 == 0;
    /* gqa_opt_applies (gqa >= 2, a mask, n_kv % 256 == 0; the adapter's
     * strides are multiples of 16 bytes) sends gqa > 4 at n_kv >= 8192 to
     * the MMA kernel even for one query. */
    const bool gqa_opt = gqa >= 2 && mask && n_kv % 256 == 0;
    if (vec_ok && n_q == 1 && !(gqa_opt && gqa > 4 && n_kv >= 8192)) {
        return "fattn vec" + tag();
    }
    return "fattn mma_f16" + tag();
}

} // namespace gp_ggml
