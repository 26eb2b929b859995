/*
 * linear.hip: gp_linear, the projections (q_proj, k_proj, v_proj, attn_out,
 * and with "mlp" gate_proj, up_proj, down_proj):
 * validates, resolves the route (AUTO: MFMA for M > 1, VALU for M == 1;
 * BLAS only when asked for, blas.hip),
 * turns the active fault into kernel flags (decode shape, M == 1, only) and
 * hands over to the route's launcher, which attests what ran.
 */
#include "gp_hip.h"

extern "C" int gp_linear(int dtype, int route, const void *x, const void *w, const void *bias,
                         void *y, int M, int N, int K) {
    const int rc = gp_check_linear(dtype, route, x, w, y, M, N, K);
    if (rc != GP_OK) {
        return rc;
    }
    int flags = 0;
    if (gp_fault_on(GP_FAULT_BIAS_SKIPPED, M)) {
        flags |= GP_LIN_SKIP_BIAS;
    }
    if (gp_fault_on(GP_FAULT_ROUND_TRUNCATE, M)) {
        flags |= GP_LIN_ROUND_TRUNC;
    }
    if (gp_fault_on(GP_FAULT_GEMV_F16_ACC, M)) {
        flags |= GP_LIN_F16_ACC;
    }
    if (gp_fault_on(GP_FAULT_SPLITK_DROP_TAIL, M)) {
        flags |= GP_LIN_DROP_TAIL;
    }
    if (gp_fault_on(GP_FAULT_GEMV_SKIP_LAST_K_TILE, M)) {
        flags |= GP_LIN_SKIP_K_TILE;
    }
    const int ran = gp_resolve_route(route, M);
    if (ran == GP_ROUTE_BLAS) {
        return gp_hip_blas(dtype, x, w, bias, y, M, N, K, flags);
    }
    if (ran == GP_ROUTE_MFMA) {
        return gp_hip_gemm(dtype, x, w, bias, y, M, N, K, flags);
    }
    return gp_hip_gemv(dtype, x, w, bias, y, M, N, K, flags);
}
