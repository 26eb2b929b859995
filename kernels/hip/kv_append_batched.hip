/*
 * kv_append_batched.hip: gp_kv_append_batched (kv_cache of the "batched"
 * capability). Row b of k and v goes to row slot[b] of k_cache and v_cache,
 * element by element as raw storage (exact), as gp_kv_append's copy does.
 * slot stays in device memory; a row whose slot is outside [0, capacity) is
 * skipped (nothing written). Fault kv_slot_off (B == 1, row count 1): to
 * slot + 1 when that is < capacity, else nothing.
 */
#include "gp_hip.h"

template <typename E>
__global__ __launch_bounds__(GP_BLOCK) void kv_append_batched_kernel(
    const E *__restrict__ k, const E *__restrict__ v, E *__restrict__ k_cache,
    E *__restrict__ v_cache, const int32_t *__restrict__ slot, int B, int kv_width, int capacity,
    int slot_off) {
    const size_t total = (size_t)B * kv_width;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total;
         idx += (size_t)gridDim.x * blockDim.x) {
        const int b = (int)(idx / kv_width);
        const int c = (int)(idx % kv_width);
        const int s = slot[b];
        const long long dst = (long long)s + slot_off;
        if (s >= 0 && s < capacity && dst < capacity) {
            const size_t o = (size_t)dst * kv_width + c;
            k_cache[o] = k[idx];
            v_cache[o] = v[idx];
        }
    }
}

template <typename E>
static void kv_append_batched_launch(const void *k, const void *v, void *k_cache, void *v_cache,
                                     int B, int kv_width, const int32_t *slot, int capacity,
                                     int slot_off) {
    const long long total = (long long)B * kv_width;
    void (*kernel)(const E *, const E *, E *, E *, const int32_t *, int, int, int, int) =
        kv_append_batched_kernel<E>;
    hipLaunchKernelGGL(kernel, dim3(gp_grid((total + GP_BLOCK - 1) / GP_BLOCK)), dim3(GP_BLOCK), 0,
                       0, (const E *)k, (const E *)v, (E *)k_cache, (E *)v_cache, slot, B, kv_width,
                       capacity, slot_off);
}

extern "C" int gp_kv_append_batched(int dtype, const void *k, const void *v, void *k_cache,
                                    void *v_cache, int B, int kv_width, const int32_t *slot,
                                    int capacity) {
    int rc = gp_check_kv_append_batched(dtype, k, v, k_cache, v_cache, B, kv_width, slot, capacity);
    if (rc != GP_OK) {
        return rc;
    }
    const int slot_off = gp_fault_on(GP_FAULT_KV_SLOT_OFF, B) ? 1 : 0;
    if (dtype == GP_DTYPE_F32) {
        kv_append_batched_launch<float>(k, v, k_cache, v_cache, B, kv_width, slot, capacity,
                                        slot_off);
    } else {
        kv_append_batched_launch<uint16_t>(k, v, k_cache, v_cache, B, kv_width, slot, capacity,
                                           slot_off);
    }
    if ((rc = gp_hip_check_launch("gp_kv_append_batched", "kv_append_batched_copy")) != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1, "kv_append_batched_copy");
    return GP_OK;
}
