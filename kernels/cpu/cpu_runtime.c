/*
 * cpu_runtime.c: identity, device and memory entry points of the CPU backend,
 * and its "routes" and "invariance" capabilities.
 * "Device" memory is host memory: 256-byte aligned, memcpy transfers, nothing
 * is asynchronous.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

#define GP_CPU_ALIGN ((size_t)256)

const char *gp_backend_name(void) { return "cpu"; }

/* Both emulated routes; no vendor BLAS on the CPU. */
int gp_forced_routes(void) { return (1 << GP_ROUTE_MFMA) | (1 << GP_ROUTE_VALU); }

/* Every stage: each output row is computed from its own inputs in an order
 * fixed by the data's indices alone (see each source's header comment). */
const char *gp_batch_invariant_stages(void) { return GP_BATCH_INVARIANT_STAGES; }

int gp_device_count(int *count) {
    int rc = gp_check_device_count(count);
    if (rc != GP_OK) {
        return rc;
    }
    *count = 1;
    return gp_ok();
}

int gp_malloc(void **ptr, size_t bytes) {
    size_t rounded;
    void *p;
    int rc = gp_check_malloc(ptr, bytes);
    if (rc != GP_OK) {
        return rc;
    }
    *ptr = NULL;
    if (bytes > SIZE_MAX - (GP_CPU_ALIGN - 1)) {
        return gp_fail(GP_ERR_OUT_OF_MEMORY, "gp_malloc: bytes=%zu: out of memory", bytes);
    }
    /* aligned_alloc wants a size that is a multiple of the alignment */
    rounded = (bytes + GP_CPU_ALIGN - 1) / GP_CPU_ALIGN * GP_CPU_ALIGN;
    p = aligned_alloc(GP_CPU_ALIGN, rounded);
    if (p == NULL) {
        return gp_fail(GP_ERR_OUT_OF_MEMORY, "gp_malloc: bytes=%zu: out of memory", bytes);
    }
    *ptr = p;
    return gp_ok();
}

int gp_free(void *ptr) {
    free(ptr);
    return gp_ok();
}

int gp_memcpy_h2d(void *dst_device, const void *src_host, size_t bytes) {
    int rc = gp_check_memcpy("gp_memcpy_h2d", dst_device, src_host, bytes);
    if (rc != GP_OK) {
        return rc;
    }
    if (bytes > 0) {
        memmove(dst_device, src_host, bytes);
    }
    return gp_ok();
}

int gp_memcpy_d2h(void *dst_host, const void *src_device, size_t bytes) {
    int rc = gp_check_memcpy("gp_memcpy_d2h", dst_host, src_device, bytes);
    if (rc != GP_OK) {
        return rc;
    }
    if (bytes > 0) {
        memmove(dst_host, src_device, bytes);
    }
    return gp_ok();
}

int gp_memcpy_d2d(void *dst_device, const void *src_device, size_t bytes) {
    int rc = gp_check_memcpy("gp_memcpy_d2d", dst_device, src_device, bytes);
    if (rc != GP_OK) {
        return rc;
    }
    if (bytes > 0) {
        memmove(dst_device, src_device, bytes);
    }
    return gp_ok();
}

int gp_synchronize(void) { return gp_ok(); }

float *gp_cpu_to_f32(const char *fn, int dtype, const void *src, size_t n) {
    size_t i;
    float *dst;
    if (n > SIZE_MAX / sizeof(float)) {
        gp_fail(GP_ERR_OUT_OF_MEMORY, "%s: scratch of %zu elements: out of memory", fn, n);
        return NULL;
    }
    dst = (float *)malloc(n * sizeof(float) + 1);
    if (dst == NULL) {
        gp_fail(GP_ERR_OUT_OF_MEMORY, "%s: scratch of %zu elements: out of memory", fn, n);
        return NULL;
    }
    /* One loop per dtype, spread over threads: weights are converted on
     * every call, and this is most of a decode call's time. */
    if (dtype == GP_DTYPE_F16) {
        const uint16_t *h = (const uint16_t *)src;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (i = 0; i < n; i++) {
            dst[i] = gp_f16_to_f32(h[i]);
        }
    } else {
#pragma omp parallel for schedule(static) if (n > 65536)
        for (i = 0; i < n; i++) {
            dst[i] = gp_load(dtype, src, i);
        }
    }
    return dst;
}
