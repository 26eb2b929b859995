/* The ABI 3 core as do-nothing stubs, for load-time checks of the optional
 * capabilities (TestLoadErrors):
 *   (no define)        the core alone: no attention capability at all
 *   -DPARTIAL_FAULTS   the core, gp_attention and half of the faults
 *                      capability (gp_set_fault, gp_active_fault only) */
#include "greta_parity.h"

int gp_abi_version(void) { return GP_ABI_VERSION; }
const char *gp_backend_name(void) { return "core stub"; }
const char *gp_status_string(int status) { return status == 0 ? "ok" : "error"; }
const char *gp_last_error(void) { return ""; }
int gp_device_count(int *count) {
    *count = 1;
    return GP_OK;
}
int gp_malloc(void **ptr, size_t bytes) {
    (void)ptr;
    (void)bytes;
    return GP_ERR_UNSUPPORTED;
}
int gp_free(void *ptr) {
    (void)ptr;
    return GP_OK;
}
int gp_memcpy_h2d(void *dst, const void *src, size_t bytes) {
    (void)dst;
    (void)src;
    (void)bytes;
    return GP_ERR_UNSUPPORTED;
}
int gp_memcpy_d2h(void *dst, const void *src, size_t bytes) {
    (void)dst;
    (void)src;
    (void)bytes;
    return GP_ERR_UNSUPPORTED;
}
int gp_synchronize(void) { return GP_OK; }
int gp_rmsnorm(int dtype, const void *x, const void *w, void *y, int rows, int dim, float eps) {
    (void)dtype, (void)x, (void)w, (void)y, (void)rows, (void)dim, (void)eps;
    return GP_ERR_UNSUPPORTED;
}
int gp_linear(int dtype, int route, const void *x, const void *w, const void *bias, void *y, int M,
              int N, int K) {
    (void)dtype, (void)route, (void)x, (void)w, (void)bias, (void)y, (void)M, (void)N, (void)K;
    return GP_ERR_UNSUPPORTED;
}
int gp_rope(int dtype, int layout, const void *x, void *y, const int32_t *pos, int rows,
            int n_heads, int head_dim, float theta) {
    (void)dtype, (void)layout, (void)x, (void)y, (void)pos, (void)rows, (void)n_heads;
    (void)head_dim, (void)theta;
    return GP_ERR_UNSUPPORTED;
}
int gp_kv_append(int dtype, const void *k, const void *v, void *k_cache, void *v_cache, int rows,
                 int kv_width, int slot, int capacity) {
    (void)dtype, (void)k, (void)v, (void)k_cache, (void)v_cache, (void)rows, (void)kv_width;
    (void)slot, (void)capacity;
    return GP_ERR_UNSUPPORTED;
}

#ifdef PARTIAL_FAULTS
int gp_attention(int dtype, const void *q, const void *k_cache, const void *v_cache, void *out,
                 float *lse, int n_q, int n_kv, int n_heads, int n_kv_heads, int head_dim,
                 int q_pos0, float scale, int causal) {
    (void)dtype, (void)q, (void)k_cache, (void)v_cache, (void)out, (void)lse, (void)n_q;
    (void)n_kv, (void)n_heads, (void)n_kv_heads, (void)head_dim, (void)q_pos0, (void)scale;
    (void)causal;
    return GP_ERR_UNSUPPORTED;
}
int gp_set_fault(const char *name) {
    (void)name;
    return GP_ERR_UNKNOWN_FAULT;
}
const char *gp_active_fault(void) { return "none"; }
#endif
