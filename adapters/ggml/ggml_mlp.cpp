/*
 * ggml_mlp.cpp: the "mlp" capability of kernels/include/greta_parity.h on
 * ggml, each stage the graph llama.cpp builds for it (llama-graph.cpp
 * build_ffn and the residual adds of llama-model.cpp), activations in f32
 * as llama.cpp keeps them, one ggml_cpy into the caller's output:
 *   attn_res, mlp_res  ggml_add(a, b) in f32.
 *   post_norm  ggml_rms_norm(h) then ggml_mul by (w_offset + w) in f32.
 *              llama.cpp's GGUF converter stores Gemma's norm weight as
 *              1 + w, in f32; here ggml_scale_bias(w, 1, w_offset) adds the
 *              offset in f32 inside the graph, the same value.
 *   act        ggml_swiglu_split(gate, up) (LLM_FFN_SILU, LLM_FFN_PAR) or
 *              ggml_geglu_split(gate, up) (Gemma's LLM_FFN_GELU: ggml's
 *              tanh-approximation GELU).
 * Faults (decode only, in the glue): act_wrong_half (gate and up swapped
 * in the split GLU), residual_twice (b added twice), post_norm_no_offset
 * (the offset left out).
 */
#include <string>

#include "ggml_glue.h"

extern "C" {
#include "gp_common.h"
}

using gp_ggml::Graph;
using gp_ggml::to_f32;
using gp_ggml::type_of;

namespace {

/* "ggml-cuda OP (f32)" or "ggml-cpu OP (f32)": where the scheduler ran it. */
void attest_op(Graph &g, ggml_tensor *node, const char *op) {
    const std::string k = std::string(g.on_cpu(node) ? "ggml-cpu " : "ggml-cuda ") + op + " (f32)";
    gp_attest(0, 0, 0, 0, 1, k.c_str());
}

} // namespace

extern "C" int gp_residual_add(int dtype, const void *a, const void *b, void *y, int rows,
                               int width) {
    int rc = gp_check_residual_add(dtype, a, b, y, rows, width);
    if (rc != GP_OK) {
        return rc;
    }
    Graph g("gp_residual_add");
    ggml_context *c = g.ctx();
    const ggml_type t = type_of(dtype);
    ggml_tensor *A = g.user(t, {width, rows}, a, "a");
    ggml_tensor *B = g.user(t, {width, rows}, b, "b");
    ggml_tensor *Y = g.user(t, {width, rows}, y, "y");
    ggml_tensor *bf = to_f32(c, B);
    ggml_tensor *s = ggml_add(c, to_f32(c, A), bf);
    if (gp_fault_on(GP_FAULT_RESIDUAL_TWICE, rows)) {
        s = ggml_add(c, s, bf);
    }
    g.expand(ggml_cpy(c, s, Y));
    if ((rc = g.run()) != GP_OK) {
        return rc;
    }
    attest_op(g, s, "add");
    return GP_OK;
}

extern "C" int gp_rmsnorm_offset(int dtype, const void *x, const void *w, void *y, int rows,
                                 int dim, float eps, float w_offset) {
    int rc = gp_check_rmsnorm_offset(dtype, x, w, y, rows, dim, eps, w_offset);
    if (rc != GP_OK) {
        return rc;
    }
    Graph g("gp_rmsnorm_offset");
    ggml_context *c = g.ctx();
    const ggml_type t = type_of(dtype);
    ggml_tensor *X = g.user(t, {dim, rows}, x, "x");
    ggml_tensor *W = g.user(t, {dim}, w, "w");
    ggml_tensor *Y = g.user(t, {dim, rows}, y, "y");
    ggml_tensor *wf = to_f32(c, W);
    if (w_offset != 0.0f && !gp_fault_on(GP_FAULT_POST_NORM_NO_OFFSET, rows)) {
        wf = ggml_scale_bias(c, wf, 1.0f, w_offset);
    }
    ggml_tensor *n = ggml_rms_norm(c, to_f32(c, X), eps);
    g.expand(ggml_cpy(c, ggml_mul(c, n, wf), Y));
    if ((rc = g.run()) != GP_OK) {
        return rc;
    }
    attest_op(g, n, w_offset != 0.0f ? "rms_norm+mul (1+w)" : "rms_norm+mul");
    return GP_OK;
}

extern "C" int gp_gated_act(int dtype, int kind, const void *gate, const void *up, void *y,
                            int rows, int width) {
    int rc = gp_check_gated_act(dtype, kind, gate, up, y, rows, width);
    if (rc != GP_OK) {
        return rc;
    }
    Graph g("gp_gated_act");
    ggml_context *c = g.ctx();
    const ggml_type t = type_of(dtype);
    ggml_tensor *G = to_f32(c, g.user(t, {width, rows}, gate, "gate"));
    ggml_tensor *U = to_f32(c, g.user(t, {width, rows}, up, "up"));
    ggml_tensor *Y = g.user(t, {width, rows}, y, "y");
    if (gp_fault_on(GP_FAULT_ACT_WRONG_HALF, rows)) {
        std::swap(G, U);
    }
    ggml_tensor *a =
        kind == GP_ACT_GELU_TANH ? ggml_geglu_split(c, G, U) : ggml_swiglu_split(c, G, U);
    g.expand(ggml_cpy(c, a, Y));
    if ((rc = g.run()) != GP_OK) {
        return rc;
    }
    attest_op(g, a, kind == GP_ACT_GELU_TANH ? "geglu_split" : "swiglu_split");
    return GP_OK;
}
