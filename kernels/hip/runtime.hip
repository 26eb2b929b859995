/*
 * runtime.hip: identity, device and memory entry points over the HIP (or,
 * through hip_to_cuda.h, CUDA) runtime, the "routes" and "invariance"
 * capabilities, and the error helpers of gp_hip.h.
 * Every runtime error becomes GP_ERR_DEVICE (GP_ERR_OUT_OF_MEMORY for a
 * failed allocation) with the runtime's own message in gp_last_error().
 */
#include <string.h>

#include "gp_hip.h"

extern "C" const char *gp_backend_name(void) { return GP_VENDOR " " GP_TARGET_NAME; }

/* "routes": MFMA and VALU everywhere, BLAS where the build links one. */
extern "C" int gp_forced_routes(void) {
    return (1 << GP_ROUTE_MFMA) | (1 << GP_ROUTE_VALU) | (GP_HIP_HAS_BLAS ? 1 << GP_ROUTE_BLAS : 0);
}

/* "invariance": every stage. Each kernel computes an output element (a row
 * for rmsnorm, softmax and attn) in an order fixed by the indices and the
 * data alone, never by the row count (see each source's header comment);
 * the projections on a forced route (MFMA: fixed K slices, VALU: fixed
 * split-K policy by N and K), not on BLAS. */
extern "C" const char *gp_batch_invariant_stages(void) { return GP_BATCH_INVARIANT_STAGES; }

int gp_hip_fail(const char *fn, const char *what, hipError_t err) {
    const int status = err == hipErrorOutOfMemory ? GP_ERR_OUT_OF_MEMORY : GP_ERR_DEVICE;
    return gp_fail(status, "%s: %s: %s (%s)", fn, what, hipGetErrorString(err),
                   hipGetErrorName(err));
}

int gp_hip_check_launch(const char *fn, const char *kernel) {
    const hipError_t err = hipGetLastError();
    if (err != hipSuccess) {
        return gp_fail(GP_ERR_DEVICE, "%s: launch of %s: %s (%s)", fn, kernel,
                       hipGetErrorString(err), hipGetErrorName(err));
    }
    return GP_OK;
}

int gp_hip_matrix_cores(int dtype) {
    int dev = 0;
    hipDeviceProp_t prop;
    if (hipGetDevice(&dev) != hipSuccess || hipGetDeviceProperties(&prop, dev) != hipSuccess) {
        (void)hipGetLastError(); /* clear it: the launch reports real trouble */
        return 0;
    }
#if defined(GP_AMD)
    /* Same targets as GP_MMA_MFMA in gp_mma.h. */
    (void)dtype;
    static const char *const mfma[] = {"gfx90a", "gfx940", "gfx941", "gfx942"};
    for (const char *arch : mfma) {
        if (strncmp(prop.gcnArchName, arch, strlen(arch)) == 0) {
            return 1;
        }
    }
    return 0;
#else
    /* Same as GP_MMA_WMMA: sm_80+, f16 and bf16 only (f32 would be TF32). */
    return prop.major >= 8 && (dtype == GP_DTYPE_F16 || dtype == GP_DTYPE_BF16);
#endif /* GP_AMD */
}

extern "C" int gp_device_count(int *count) {
    int rc = gp_check_device_count(count);
    if (rc != GP_OK) {
        return rc;
    }
    *count = 0;
    int n = 0;
    const hipError_t err = hipGetDeviceCount(&n);
    if (err != hipSuccess) {
        (void)hipGetLastError();
        return gp_hip_fail("gp_device_count", "hipGetDeviceCount", err);
    }
    *count = n;
    return GP_OK;
}

extern "C" int gp_malloc(void **ptr, size_t bytes) {
    int rc = gp_check_malloc(ptr, bytes);
    if (rc != GP_OK) {
        return rc;
    }
    *ptr = NULL;
    void *p = NULL;
    const hipError_t err = hipMalloc(&p, bytes);
    if (err != hipSuccess) {
        (void)hipGetLastError(); /* a failed allocation is not sticky */
        return gp_hip_fail("gp_malloc", "hipMalloc", err);
    }
    *ptr = p;
    return GP_OK;
}

extern "C" int gp_free(void *ptr) {
    if (ptr == NULL) {
        return GP_OK;
    }
    const hipError_t err = hipFree(ptr);
    if (err != hipSuccess) {
        return gp_hip_fail("gp_free", "hipFree", err);
    }
    return GP_OK;
}

extern "C" int gp_memcpy_h2d(void *dst_device, const void *src_host, size_t bytes) {
    int rc = gp_check_memcpy("gp_memcpy_h2d", dst_device, src_host, bytes);
    if (rc != GP_OK || bytes == 0) {
        return rc;
    }
    const hipError_t err = hipMemcpy(dst_device, src_host, bytes, hipMemcpyHostToDevice);
    if (err != hipSuccess) {
        return gp_hip_fail("gp_memcpy_h2d", "hipMemcpy", err);
    }
    return GP_OK;
}

extern "C" int gp_memcpy_d2h(void *dst_host, const void *src_device, size_t bytes) {
    int rc = gp_check_memcpy("gp_memcpy_d2h", dst_host, src_device, bytes);
    if (rc != GP_OK || bytes == 0) {
        return rc;
    }
    const hipError_t err = hipMemcpy(dst_host, src_device, bytes, hipMemcpyDeviceToHost);
    if (err != hipSuccess) {
        return gp_hip_fail("gp_memcpy_d2h", "hipMemcpy", err);
    }
    return GP_OK;
}

/* Asynchronous on the default stream, in order with the kernels. */
extern "C" int gp_memcpy_d2d(void *dst_device, const void *src_device, size_t bytes) {
    int rc = gp_check_memcpy("gp_memcpy_d2d", dst_device, src_device, bytes);
    if (rc != GP_OK || bytes == 0) {
        return rc;
    }
    const hipError_t err =
        hipMemcpyAsync(dst_device, src_device, bytes, hipMemcpyDeviceToDevice, 0);
    if (err != hipSuccess) {
        return gp_hip_fail("gp_memcpy_d2d", "hipMemcpyAsync", err);
    }
    return GP_OK;
}

extern "C" int gp_synchronize(void) {
    const hipError_t err = hipDeviceSynchronize();
    if (err != hipSuccess) {
        return gp_hip_fail("gp_synchronize", "hipDeviceSynchronize", err);
    }
    return GP_OK;
}
