/*
 * kv_append.hip: gp_kv_append (kv_cache). Copies k[rows, kv_width] and
 * v[rows, kv_width] into rows slot .. slot + rows - 1 of k_cache and v_cache,
 * element by element as raw storage (exact). Fault kv_slot_off (rows == 1):
 * writes to slot + 1 when that is < capacity, else nothing.
 */
#include "gp_hip.h"

template <typename E>
__global__
__launch_bounds__(GP_BLOCK) void kv_append_kernel(const E *__restrict__ k, const E *__restrict__ v,
                                                  E *__restrict__ k_cache, E *__restrict__ v_cache,
                                                  int rows, int kv_width, int slot, int capacity) {
    const size_t total = (size_t)rows * kv_width;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        const int r = (int)(idx / kv_width);
        const int c = (int)(idx % kv_width);
        const int dst = slot + r;
        if (dst < capacity) {
            const size_t o = (size_t)dst * kv_width + c;
            k_cache[o] = k[idx];
            v_cache[o] = v[idx];
        }
    }
}

template <typename E>
static void kv_append_launch(const void *k, const void *v, void *k_cache, void *v_cache, int rows,
                             int kv_width, int slot, int capacity) {
    const long long total = (long long)rows * kv_width;
    void (*kernel)(const E *, const E *, E *, E *, int, int, int, int) = kv_append_kernel<E>;
    hipLaunchKernelGGL(kernel, dim3(gp_grid((total + GP_BLOCK - 1) / GP_BLOCK)), dim3(GP_BLOCK), 0,
                       0, (const E *)k, (const E *)v, (E *)k_cache, (E *)v_cache, rows, kv_width,
                       slot, capacity);
}

extern "C" int gp_kv_append(int dtype, const void *k, const void *v, void *k_cache, void *v_cache,
                            int rows, int kv_width, int slot, int capacity) {
    int rc = gp_check_kv_append(dtype, k, v, k_cache, v_cache, rows, kv_width, slot, capacity);
    if (rc != GP_OK) {
        return rc;
    }
    if (gp_fault_on(GP_FAULT_KV_SLOT_OFF, rows)) {
        slot += 1; /* the kernel drops rows at or past capacity */
    }
    if (dtype == GP_DTYPE_F32) {
        kv_append_launch<float>(k, v, k_cache, v_cache, rows, kv_width, slot, capacity);
    } else {
        kv_append_launch<uint16_t>(k, v, k_cache, v_cache, rows, kv_width, slot, capacity);
    }
    if ((rc = gp_hip_check_launch("gp_kv_append", "kv_append_copy")) != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1, "kv_append_copy");
    return GP_OK;
}
