/*
 * cpu_linear.c: gp_linear, y[M,N] = x[M,K] * W[N,K]^T (+ bias), on the two
 * routes of the header, each emulating the reduction order of its GPU
 * counterpart in f32 (fmaf, no contraction: built with -ffp-contract=off).
 *
 *  MFMA: per output, K tiles of GP_CPU_MFMA_TILE_K elements; each tile's
 *        partial is an in-order fmaf chain from 0, the tile partials are
 *        added to the accumulator tile by tile.
 *  VALU: per output, GP_CPU_LANES lanes; lane l of a split takes k = begin +
 *        l, begin + l + 64, ...; the lanes reduce as a butterfly tree
 *        (lane[l] += lane[l + off] for off = 32, 16, ..., 1); split partials
 *        (gp_valu_split_k) are summed in order s = 0, 1, ...
 *
 * Each output row depends only on its own x row, so both routes are batch
 * invariant: row m of an M-row call equals the M=1 call on that row.
 */
#include <stdlib.h>

#include "cpu_internal.h"

#define GP_CPU_MFMA_TILE_M 16
#define GP_CPU_MFMA_TILE_N 16
#define GP_CPU_MFMA_TILE_K 32
#define GP_CPU_LANES 64

static float f16_acc(float v) { return gp_f16_to_f32(gp_f32_to_f16_rn(v)); }

/* dot_mfma for four rows of x at once against one row of W: four
 * independent chains hide the FMA latency; each row's order is exactly
 * dot_mfma's. x rows are K apart. */
static void dot_mfma4(const float *x, const float *w, int K, float out[4]) {
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    int k0, k, j;
    for (k0 = 0; k0 < K; k0 += GP_CPU_MFMA_TILE_K) {
        int k1 = k0 + GP_CPU_MFMA_TILE_K < K ? k0 + GP_CPU_MFMA_TILE_K : K;
        float partial[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (k = k0; k < k1; k++) {
            for (j = 0; j < 4; j++) {
                partial[j] = fmaf(x[(size_t)j * (size_t)K + (size_t)k], w[k], partial[j]);
            }
        }
        for (j = 0; j < 4; j++) {
            acc[j] += partial[j];
        }
    }
    for (j = 0; j < 4; j++) {
        out[j] = acc[j];
    }
}

static float dot_mfma(const float *x, const float *w, int K) {
    float acc = 0.0f;
    int k0, k;
    for (k0 = 0; k0 < K; k0 += GP_CPU_MFMA_TILE_K) {
        int k1 = k0 + GP_CPU_MFMA_TILE_K < K ? k0 + GP_CPU_MFMA_TILE_K : K;
        float partial = 0.0f;
        for (k = k0; k < k1; k++) {
            partial = fmaf(x[k], w[k], partial);
        }
        acc += partial;
    }
    return acc;
}

/* One split [begin, end) of the lane-strided GEMV, reduced to lane 0. */
static float dot_valu_split(const float *x, const float *w, int begin, int end, int f16) {
    float lane[GP_CPU_LANES];
    int l, k, off;
    for (l = 0; l < GP_CPU_LANES; l++) {
        lane[l] = 0.0f;
    }
    /* Lane l takes k = begin + l, begin + l + 64, ...: one pass of 64
     * independent chains per step, which the compiler vectorizes. */
    for (k = begin; k < end; k += GP_CPU_LANES) {
        int n_l = end - k < GP_CPU_LANES ? end - k : GP_CPU_LANES;
        if (f16) {
            for (l = 0; l < n_l; l++) {
                lane[l] = f16_acc(fmaf(x[k + l], w[k + l], lane[l]));
            }
        } else {
            for (l = 0; l < n_l; l++) {
                lane[l] = fmaf(x[k + l], w[k + l], lane[l]);
            }
        }
    }
    for (off = GP_CPU_LANES / 2; off >= 1; off /= 2) {
        for (l = 0; l < off; l++) {
            lane[l] += lane[l + off];
            if (f16) {
                lane[l] = f16_acc(lane[l]);
            }
        }
    }
    return lane[0];
}

/* k_keep < K under gemv_skip_last_k_tile: every split stops there. */
static float dot_valu(const float *x, const float *w, int K, int split_k, int f16, int drop_tail,
                      int k_keep) {
    int chunk = K / split_k;
    float acc = 0.0f;
    int s;
    for (s = 0; s < split_k; s++) {
        int begin = s * chunk;
        int end = (s + 1) * chunk;
        if (s == split_k - 1 && !drop_tail) {
            end = K; /* the last split takes the K % split_k tail */
        }
        if (end > k_keep) {
            end = k_keep;
        }
        if (begin > end) {
            begin = end;
        }
        acc += dot_valu_split(x, w, begin, end, f16);
        if (f16) {
            acc = f16_acc(acc);
        }
    }
    return acc;
}

int gp_linear(int dtype, int route, const void *x, const void *w, const void *bias, void *y, int M,
              int N, int K) {
    static const char fn[] = "gp_linear";
    int ran, split_k = 1, m, n;
    int f16_acc_fault, drop_tail, bias_on, rz, k_keep = K;
    float *xf, *wf, *bf = NULL;
    int rc = gp_check_linear(dtype, route, x, w, y, M, N, K);
    if (rc != GP_OK) {
        return rc;
    }
    ran = gp_resolve_route(route, M);
    if (ran == GP_ROUTE_BLAS) {
        return gp_fail(GP_ERR_UNSUPPORTED,
                       "gp_linear: route=3 (blas): the cpu backend has no vendor BLAS library; "
                       "use route 1 (mfma) or 2 (valu)");
    }
    if (ran == GP_ROUTE_VALU) {
        split_k = gp_valu_split_k(N, K);
    }
    f16_acc_fault = ran == GP_ROUTE_VALU && gp_fault_on(GP_FAULT_GEMV_F16_ACC, M);
    drop_tail = ran == GP_ROUTE_VALU && gp_fault_on(GP_FAULT_SPLITK_DROP_TAIL, M);
    if (ran == GP_ROUTE_VALU && gp_fault_on(GP_FAULT_GEMV_SKIP_LAST_K_TILE, M)) {
        k_keep = gp_fault_k_keep(K);
    }
    bias_on = bias != NULL && !gp_fault_on(GP_FAULT_BIAS_SKIPPED, M);
    rz = dtype != GP_DTYPE_F32 && gp_fault_on(GP_FAULT_ROUND_TRUNCATE, M);

    xf = gp_cpu_to_f32(fn, dtype, x, (size_t)M * (size_t)K);
    wf = gp_cpu_to_f32(fn, dtype, w, (size_t)N * (size_t)K);
    if (bias_on) {
        bf = gp_cpu_to_f32(fn, dtype, bias, (size_t)N);
    }
    if (xf == NULL || wf == NULL || (bias_on && bf == NULL)) {
        free(xf);
        free(wf);
        free(bf);
        return GP_ERR_OUT_OF_MEMORY;
    }

    /* W rows outermost (each is reused by every x row while in cache) and
     * spread over threads: every output element is computed by one thread
     * in its route's fixed order, so results do not depend on the thread
     * count. */
#pragma omp parallel for schedule(static) private(m)
    for (n = 0; n < N; n++) {
        const float *wr = wf + (size_t)n * (size_t)K;
        for (m = 0; m < M; m++) {
            const float *xr = xf + (size_t)m * (size_t)K;
            float acc, acc4[4];
            int j;
            if (ran == GP_ROUTE_MFMA && m + 4 <= M) {
                dot_mfma4(xr, wr, K, acc4);
                for (j = 0; j < 4; j++) {
                    acc = acc4[j];
                    if (bias_on) {
                        acc += bf[n];
                    }
                    gp_store(dtype, y, (size_t)(m + j) * (size_t)N + (size_t)n, acc, rz);
                }
                m += 3;
                continue;
            }
            if (ran == GP_ROUTE_MFMA) {
                acc = dot_mfma(xr, wr, K);
            } else {
                acc = dot_valu(xr, wr, K, split_k, f16_acc_fault, drop_tail, k_keep);
            }
            if (bias_on) {
                acc += bf[n];
            }
            gp_store(dtype, y, (size_t)m * (size_t)N + (size_t)n, acc, rz);
        }
    }
    free(xf);
    free(wf);
    free(bf);

    if (ran == GP_ROUTE_MFMA) {
        gp_attest(GP_ROUTE_MFMA, GP_CPU_MFMA_TILE_M, GP_CPU_MFMA_TILE_N, GP_CPU_MFMA_TILE_K, 1,
                  "cpu_gemm_blocked_k32");
    } else {
        gp_attest(GP_ROUTE_VALU, 0, 0, 0, split_k,
                  split_k > 1 ? "cpu_gemv_lane64_splitk4" : "cpu_gemv_lane64");
    }
    return gp_ok();
}
