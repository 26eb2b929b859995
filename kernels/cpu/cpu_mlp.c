/*
 * cpu_mlp.c: the "mlp" capability, the rest of the layer after attn_out:
 * gp_residual_add (attn_res, mlp_res) and gp_gated_act (act);
 * gp_rmsnorm_offset (post_norm) shares gp_rmsnorm's loop in cpu_rmsnorm.c,
 * and the MLP projections are gp_linear (cpu_linear.c).
 * Every element is computed in f32 from its own row and rounded once, so
 * each op is batch invariant.
 *
 * Faults (decode shape, rows == 1): residual_twice (y = a + b + b),
 * act_wrong_half (act(up) * gate).
 */
#include <stdlib.h>

#include "cpu_internal.h"

int gp_residual_add(int dtype, const void *a, const void *b, void *y, int rows, int width) {
    static const char fn[] = "gp_residual_add";
    size_t n = (size_t)rows * (size_t)width, i;
    float *af, *bf;
    int twice;
    int rc = gp_check_residual_add(dtype, a, b, y, rows, width);
    if (rc != GP_OK) {
        return rc;
    }
    twice = gp_fault_on(GP_FAULT_RESIDUAL_TWICE, rows);
    af = gp_cpu_to_f32(fn, dtype, a, n);
    bf = gp_cpu_to_f32(fn, dtype, b, n);
    if (af == NULL || bf == NULL) {
        free(af);
        free(bf);
        return GP_ERR_OUT_OF_MEMORY;
    }
    for (i = 0; i < n; i++) {
        float s = af[i] + bf[i];
        if (twice) {
            s += bf[i];
        }
        gp_store(dtype, y, i, s, 0);
    }
    free(af);
    free(bf);
    gp_attest(0, 0, 0, 0, 1, "cpu_residual_add");
    return gp_ok();
}

/* The activations in f32, in the order the header states (and the HIP
 * kernel repeats). */
static float act_f32(int kind, float g) {
    if (kind == GP_ACT_GELU_TANH) {
        const float c = 0.7978845608028654f; /* sqrt(2/pi) */
        const float a = 0.044715f;
        const float z = c * (g + a * (g * g * g));
        return 0.5f * g * (1.0f + tanhf(z));
    }
    return g / (1.0f + expf(-g));
}

int gp_gated_act(int dtype, int kind, const void *gate, const void *up, void *y, int rows,
                 int width) {
    static const char fn[] = "gp_gated_act";
    size_t n = (size_t)rows * (size_t)width, i;
    float *gf, *uf;
    int rc = gp_check_gated_act(dtype, kind, gate, up, y, rows, width);
    if (rc != GP_OK) {
        return rc;
    }
    gf = gp_cpu_to_f32(fn, dtype, gate, n);
    uf = gp_cpu_to_f32(fn, dtype, up, n);
    if (gf == NULL || uf == NULL) {
        free(gf);
        free(uf);
        return GP_ERR_OUT_OF_MEMORY;
    }
    if (gp_fault_on(GP_FAULT_ACT_WRONG_HALF, rows)) {
        float *t = gf;
        gf = uf;
        uf = t;
    }
    for (i = 0; i < n; i++) {
        gp_store(dtype, y, i, act_f32(kind, gf[i]) * uf[i], 0);
    }
    free(gf);
    free(uf);
    gp_attest(0, 0, 0, 0, 1, kind == GP_ACT_GELU_TANH ? "cpu_geglu_tanh" : "cpu_swiglu");
    return gp_ok();
}
