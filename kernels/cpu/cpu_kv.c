/*
 * cpu_kv.c: gp_kv_append, exact row copies into the token-major KV cache.
 * Fault kv_slot_off (rows == 1): the rows go to slot + 1 when they fit
 * (slot + 1 + rows <= capacity), else nowhere; the call still succeeds.
 */
#include <string.h>

#include "cpu_internal.h"

int gp_kv_append(int dtype, const void *k, const void *v, void *k_cache, void *v_cache, int rows,
                 int kv_width, int slot, int capacity) {
    size_t row_bytes, bytes, offset;
    int rc = gp_check_kv_append(dtype, k, v, k_cache, v_cache, rows, kv_width, slot, capacity);
    if (rc != GP_OK) {
        return rc;
    }
    if (gp_fault_on(GP_FAULT_KV_SLOT_OFF, rows)) {
        slot += 1;
        if ((long long)slot + rows > capacity) {
            gp_attest(0, 0, 0, 0, 1, "cpu_kv_append");
            return gp_ok();
        }
    }
    row_bytes = (size_t)kv_width * gp_dtype_size(dtype);
    bytes = (size_t)rows * row_bytes;
    offset = (size_t)slot * row_bytes;
    memmove((char *)k_cache + offset, k, bytes);
    memmove((char *)v_cache + offset, v, bytes);
    gp_attest(0, 0, 0, 0, 1, "cpu_kv_append");
    return gp_ok();
}
