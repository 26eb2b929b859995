/*
 * refdev.hip: the float64 reference's projection pass on the GPU (see
 * gp_refdev.h for the contract). HIP dialect: hipcc for ROCm, nvcc through
 * kernels/hip/hip_to_cuda.h, like the library under test, but none of its
 * kernels or helpers.
 *
 * Kernel: a block holds REF_TM rows of x and REF_TN outputs, one thread per
 * (row, output); the K dimension goes through shared memory REF_KT values
 * at a time (W's tile loaded along k, coalesced), and each thread adds its
 * REF_KT products in order before the next tile: one in-order chain per
 * output, the host's loop. Parallelism is outputs × rows only (no split of
 * k: that would change the order), so blocks are small (64 outputs) to
 * spread a one-row call over the GPU.
 */
#if defined(__HIP__)
#include <hip/hip_runtime.h>
#define GPRD_VENDOR "hip"
#elif defined(__CUDACC__)
#include "hip_to_cuda.h"
#define GPRD_VENDOR "cuda"
#else
#error "refdev.hip: build with hipcc/clang -x hip (ROCm) or nvcc -x cu (CUDA)"
#endif /* __HIP__ / __CUDACC__ */

#include <stdio.h>

#include "gp_refdev.h"

#ifndef GPRD_TARGET_NAME
#define GPRD_TARGET_NAME "unknown"
#endif /* GPRD_TARGET_NAME */

#define REF_TN 64 /* outputs per block */
#define REF_KT 64 /* k values per shared tile */

/* One caller at a time (the suite serializes its calls), so one message. */
static char gprd_err[256];

static int fail(int code, const char *what, const char *detail) {
    snprintf(gprd_err, sizeof gprd_err, "%s: %s", what, detail);
    return code;
}

static int check(hipError_t e, const char *what) {
    if (e == hipSuccess) {
        return GP_REFDEV_OK;
    }
    return fail(GP_REFDEV_ERR_RUNTIME, what, hipGetErrorString(e));
}

/* TM rows of x per block (1 for one-row calls, 4 otherwise). */
template <int TM>
__global__ void __launch_bounds__(TM *REF_TN)
    ref_linear_kernel(const double *x, const float *w, const double *bias, double *y, double *a,
                      int m, int n, int kdim) {
    __shared__ double xs[TM][REF_KT];
    __shared__ float ws[REF_TN][REF_KT + 1]; /* +1: a warp reads 32 rows at one k */
    const int tj = threadIdx.x % REF_TN, tr = threadIdx.x / REF_TN;
    const int j0 = blockIdx.x * REF_TN, r0 = blockIdx.y * TM;
    const int j = j0 + tj, r = r0 + tr;
    double s = 0, mag = 0;
    for (int k0 = 0; k0 < kdim; k0 += REF_KT) {
        const int kt = min(REF_KT, kdim - k0);
        for (int i = threadIdx.x; i < REF_TN * REF_KT; i += TM * REF_TN) {
            const int row = i / REF_KT, kk = i % REF_KT;
            ws[row][kk] = (j0 + row < n && kk < kt) ? w[(size_t)(j0 + row) * kdim + k0 + kk] : 0.0f;
        }
        for (int i = threadIdx.x; i < TM * REF_KT; i += TM * REF_TN) {
            const int row = i / REF_KT, kk = i % REF_KT;
            xs[row][kk] = (r0 + row < m && kk < kt) ? x[(size_t)(r0 + row) * kdim + k0 + kk] : 0.0;
        }
        __syncthreads();
        for (int kk = 0; kk < kt; kk++) {
            const double p = xs[tr][kk] * (double)ws[tj][kk];
            s = s + p;
            mag = mag + fabs(p);
        }
        __syncthreads();
    }
    if (j < n && r < m) {
        if (bias != NULL) {
            s = s + bias[j];
            mag = mag + fabs(bias[j]);
        }
        y[(size_t)r * n + j] = s;
        if (a != NULL) {
            a[(size_t)r * n + j] = mag;
        }
    }
}

/* Device scratch for x, bias, y and a, grown as calls need. One caller at a
 * time (the suite serializes its calls). */
static void *scratch;
static size_t scratch_bytes;

static int scratch_reserve(size_t bytes) {
    if (bytes <= scratch_bytes) {
        return GP_REFDEV_OK;
    }
    if (scratch != NULL) {
        (void)hipFree(scratch);
        scratch = NULL;
        scratch_bytes = 0;
    }
    int rc = check(hipMalloc(&scratch, bytes), "hipMalloc(scratch)");
    if (rc == GP_REFDEV_OK) {
        scratch_bytes = bytes;
    }
    return rc;
}

extern "C" {

int gprd_abi_version(void) { return GP_REFDEV_ABI_VERSION; }

const char *gprd_last_error(void) { return gprd_err; }

const char *gprd_backend(void) { return GPRD_VENDOR " " GPRD_TARGET_NAME; }

int gprd_device_count(void) {
    int n = 0;
    if (check(hipGetDeviceCount(&n), "hipGetDeviceCount") != GP_REFDEV_OK) {
        return 0;
    }
    return n;
}

int gprd_weights_upload(const float *host, size_t n, void **out) {
    if (host == NULL || out == NULL || n == 0) {
        return fail(GP_REFDEV_ERR_ARG, "gprd_weights_upload", "null pointer or empty");
    }
    void *d = NULL;
    int rc = check(hipMalloc(&d, n * sizeof(float)), "hipMalloc(weights)");
    if (rc != GP_REFDEV_OK) {
        return rc;
    }
    rc = check(hipMemcpy(d, host, n * sizeof(float), hipMemcpyHostToDevice), "upload weights");
    if (rc != GP_REFDEV_OK) {
        (void)hipFree(d);
        return rc;
    }
    *out = d;
    return GP_REFDEV_OK;
}

int gprd_weights_free(void *dev) {
    if (dev == NULL) {
        return GP_REFDEV_OK;
    }
    return check(hipFree(dev), "hipFree(weights)");
}

int gprd_linear(const double *x, const void *w, const double *bias, double *y, double *a, int m,
                int n, int kdim) {
    if (x == NULL || w == NULL || y == NULL) {
        return fail(GP_REFDEV_ERR_ARG, "gprd_linear", "x, w and y must not be null");
    }
    if (m < 1 || n < 1 || kdim < 1 || m > 65535 * 4) {
        return fail(GP_REFDEV_ERR_ARG, "gprd_linear", "m, n and kdim must be positive");
    }
    const size_t xb = (size_t)m * kdim * sizeof(double), bb = bias ? (size_t)n * sizeof(double) : 0,
                 yb = (size_t)m * n * sizeof(double), ab = a ? yb : 0;
    int rc = scratch_reserve(xb + bb + yb + ab);
    if (rc != GP_REFDEV_OK) {
        return rc;
    }
    char *base = (char *)scratch;
    double *dx = (double *)base, *db = bias ? (double *)(base + xb) : NULL,
           *dy = (double *)(base + xb + bb), *da = a ? (double *)(base + xb + bb + yb) : NULL;
    if ((rc = check(hipMemcpy(dx, x, xb, hipMemcpyHostToDevice), "upload x")) != GP_REFDEV_OK) {
        return rc;
    }
    if (bias != NULL &&
        (rc = check(hipMemcpy(db, bias, bb, hipMemcpyHostToDevice), "upload bias")) != 0) {
        return rc;
    }
    const dim3 grid((n + REF_TN - 1) / REF_TN, m == 1 ? 1 : (m + 3) / 4);
    if (m == 1) {
        hipLaunchKernelGGL(ref_linear_kernel<1>, grid, dim3(REF_TN), 0, 0, dx, (const float *)w, db,
                           dy, da, m, n, kdim);
    } else {
        hipLaunchKernelGGL(ref_linear_kernel<4>, grid, dim3(4 * REF_TN), 0, 0, dx, (const float *)w,
                           db, dy, da, m, n, kdim);
    }
    if ((rc = check(hipGetLastError(), "launch ref_linear_kernel")) != GP_REFDEV_OK) {
        return rc;
    }
    if ((rc = check(hipMemcpy(y, dy, yb, hipMemcpyDeviceToHost), "download y")) != GP_REFDEV_OK) {
        return rc;
    }
    if (a != NULL) {
        rc = check(hipMemcpy(a, da, ab, hipMemcpyDeviceToHost), "download a");
    }
    return rc;
}

} /* extern "C" */
