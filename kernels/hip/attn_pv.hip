/*
 * attn_pv.hip: gp_attn_pv (pv).
 * out[i, h * head_dim + c] = sum_j probs[h, i, j] * v_cache[j, g * head_dim + c],
 * g = h / (n_heads / n_kv_heads), accumulated in f32 (fmaf) over j in
 * increasing order and rounded once to the dtype.
 *
 * One block per (h, i), one thread per channel c. Keys with probability 0
 * (masked) leave the accumulator unchanged, so decode equals the prefill row
 * at the same position bit for bit. Fault gqa_modulo (n_q == 1): g = h %
 * n_kv_heads.
 */
#include "gp_hip.h"

template <int DT>
__global__ __launch_bounds__(GP_BLOCK) void attn_pv_kernel(
    const float *__restrict__ probs, const typename gp_elem<DT>::type *__restrict__ v_cache,
    typename gp_elem<DT>::type *__restrict__ out, int n_q, int n_kv, int n_heads, int n_kv_heads,
    int head_dim, int gqa_modulo) {
    const size_t out_width = (size_t)n_heads * head_dim;
    const size_t kv_width = (size_t)n_kv_heads * head_dim;
    const int group = n_heads / n_kv_heads;
    const long long pairs = (long long)n_heads * n_q;
    for (long long pair = blockIdx.x; pair < pairs; pair += gridDim.x) {
        const int h = (int)(pair / n_q);
        const int i = (int)(pair % n_q);
        const int g = gqa_modulo ? h % n_kv_heads : h / group;
        const float *p = probs + (size_t)pair * n_kv;
        for (int c = threadIdx.x; c < head_dim; c += GP_BLOCK) {
            const typename gp_elem<DT>::type *vc = v_cache + (size_t)g * head_dim + c;
            float acc = 0.0f;
            for (int j = 0; j < n_kv; j++) {
                acc = fmaf(p[j], gp_to_f32<DT>(vc[(size_t)j * kv_width]), acc);
            }
            out[(size_t)i * out_width + (size_t)h * head_dim + c] = gp_from_f32<DT>(acc);
        }
    }
}

template <int DT>
static void attn_pv_launch(const float *probs, const void *v_cache, void *out, int n_q, int n_kv,
                           int n_heads, int n_kv_heads, int head_dim, int gqa_modulo) {
    typedef typename gp_elem<DT>::type S;
    const int threads =
        head_dim < GP_BLOCK ? ((head_dim + GP_WAVE - 1) / GP_WAVE) * GP_WAVE : GP_BLOCK;
    void (*kernel)(const float *, const S *, S *, int, int, int, int, int, int) =
        attn_pv_kernel<DT>;
    hipLaunchKernelGGL(kernel, dim3(gp_grid((long long)n_heads * n_q)), dim3(threads), 0, 0, probs,
                       (const S *)v_cache, (S *)out, n_q, n_kv, n_heads, n_kv_heads, head_dim,
                       gqa_modulo);
}

extern "C" int gp_attn_pv(int dtype, const float *probs, const void *v_cache, void *out, int n_q,
                          int n_kv, int n_heads, int n_kv_heads, int head_dim) {
    int rc = gp_check_attn_pv(dtype, probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads, head_dim);
    if (rc != GP_OK) {
        return rc;
    }
    const int gqa_modulo = gp_fault_on(GP_FAULT_GQA_MODULO, n_q);
    switch (dtype) {
    case GP_DTYPE_F32:
        attn_pv_launch<GP_DTYPE_F32>(probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads, head_dim,
                                     gqa_modulo);
        break;
    case GP_DTYPE_F16:
        attn_pv_launch<GP_DTYPE_F16>(probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads, head_dim,
                                     gqa_modulo);
        break;
    default:
        attn_pv_launch<GP_DTYPE_BF16>(probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads, head_dim,
                                      gqa_modulo);
        break;
    }
    if ((rc = gp_hip_check_launch("gp_attn_pv", "attn_pv_rowblock")) != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1, "attn_pv_rowblock");
    return GP_OK;
}
