/*
 * cpu_rope.c: gp_rope. Pair i of a head rotates by angle = (float)pos *
 * powf(theta, -2.0f * i / head_dim) with precise cosf/sinf:
 *   y0 = x0 * c - x1 * s,  y1 = x0 * s + x1 * c
 * (separately rounded products, no fma). Pairs are (i, i + d/2) for NEOX and
 * (2i, 2i + 1) for INTERLEAVED. Both elements of a pair are read before
 * either is written, so x and y may alias.
 * Faults (rows == 1): rope_wrong_layout, rope_pos_prev, rope_pos_zero.
 */
#include "cpu_internal.h"

int gp_rope(int dtype, int layout, const void *x, void *y, const int32_t *pos, int rows,
            int n_heads, int head_dim, float theta) {
    int r, h, i, half;
    size_t width;
    int rc = gp_check_rope(dtype, layout, x, y, pos, rows, n_heads, head_dim, theta);
    if (rc != GP_OK) {
        return rc;
    }
    /* the CPU backend can read positions directly, so it range-checks them */
    rc = gp_check_rope_positions(pos, rows);
    if (rc != GP_OK) {
        return rc;
    }
    if (gp_fault_on(GP_FAULT_ROPE_WRONG_LAYOUT, rows)) {
        layout = layout == GP_ROPE_NEOX ? GP_ROPE_INTERLEAVED : GP_ROPE_NEOX;
    }
    half = head_dim / 2;
    width = (size_t)n_heads * (size_t)head_dim;
    for (r = 0; r < rows; r++) {
        int p = pos[r];
        if (gp_fault_on(GP_FAULT_ROPE_POS_PREV, rows)) {
            p = p > 0 ? p - 1 : 0;
        }
        if (gp_fault_on(GP_FAULT_ROPE_POS_ZERO, rows)) {
            p = 0;
        }
        for (i = 0; i < half; i++) {
            float inv_freq = powf(theta, -2.0f * (float)i / (float)head_dim);
            float angle = (float)p * inv_freq;
            float c = cosf(angle), s = sinf(angle);
            for (h = 0; h < n_heads; h++) {
                size_t base = (size_t)r * width + (size_t)h * (size_t)head_dim;
                size_t i0, i1;
                float x0, x1;
                if (layout == GP_ROPE_NEOX) {
                    i0 = base + (size_t)i;
                    i1 = base + (size_t)(i + half);
                } else {
                    i0 = base + 2 * (size_t)i;
                    i1 = i0 + 1;
                }
                x0 = gp_load(dtype, x, i0);
                x1 = gp_load(dtype, x, i1);
                gp_store(dtype, y, i0, x0 * c - x1 * s, 0);
                gp_store(dtype, y, i1, x0 * s + x1 * c, 0);
            }
        }
    }
    gp_attest(0, 0, 0, 0, 1, "cpu_rope");
    return gp_ok();
}
