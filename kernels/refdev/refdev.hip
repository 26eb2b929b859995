/*
 * refdev.hip: the float64 reference's projection pass on the GPU (see
 * gp_refdev.h for the contract). HIP dialect: hipcc for ROCm, nvcc through
 * kernels/hip/hip_to_cuda.h, like the library under test, but none of its
 * kernels or helpers.
 *
 * Every output is one in-order chain over k, the host's loop: no split of
 * k (that would change the order), so the parallelism is outputs × rows.
 *   - ref_linear_row_kernel (one row of x, the local references): a block
 *     owns ROW_TN outputs; all its threads load W's [ROW_TN, ROW_KT] tile
 *     (coalesced along k) into registers while one warp adds the tile
 *     before from shared memory, so a one-row call over 4096 outputs still
 *     keeps every SM's loads in flight;
 *   - ref_linear_kernel (several rows, the chain reference's K and V): a
 *     block holds REF_TM rows of x and REF_TN outputs, one thread per
 *     (row, output), k through shared memory REF_KT values at a time.
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
#include <stdlib.h>
#include <string.h>

#include "gp_refdev.h"

#ifndef GPRD_TARGET_NAME
#define GPRD_TARGET_NAME "unknown"
#endif /* GPRD_TARGET_NAME */

#define REF_TN 64 /* outputs per block */
#define REF_KT 64 /* k values per shared tile */

/* The lane-less entry points' message: one caller at a time. */
static char gprd_err[256];

static int failto(char *buf, int code, const char *what, const char *detail) {
    snprintf(buf, 256, "%s: %s", what, detail);
    return code;
}

static int fail(int code, const char *what, const char *detail) {
    return failto(gprd_err, code, what, detail);
}

static int check(hipError_t e, const char *what) {
    if (e == hipSuccess) {
        return GP_REFDEV_OK;
    }
    return fail(GP_REFDEV_ERR_RUNTIME, what, hipGetErrorString(e));
}

/* TM rows of x per block (4). */
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

#define ROW_TN 32       /* outputs per block: one warp adds them */
#define ROW_KT 256      /* k values per tile: 32 KB of W */
#define ROW_THREADS 256 /* threads that load a tile: one k each */
static_assert(ROW_THREADS == ROW_KT, "thread t loads k0 + t of every row of the tile");

__global__ void __launch_bounds__(ROW_THREADS)
    ref_linear_row_kernel(const double *x, const float *w, const double *bias, double *y, double *a,
                          int n, int kdim) {
    __shared__ float ws[ROW_TN][ROW_KT + 1]; /* +1: lane l reads row l, bank (l + k) % 32 */
    __shared__ double xs[ROW_KT];
    const int j0 = blockIdx.x * ROW_TN, t = threadIdx.x;
    /* Thread t loads k = k0 + t of each of the tile's rows. */
    float reg[ROW_TN];
    double xr = 0;
    auto load = [&](int k0) {
        const bool in_k = k0 + t < kdim;
        xr = in_k ? x[k0 + t] : 0.0;
#pragma unroll
        for (int i = 0; i < ROW_TN; i++) {
            reg[i] = (in_k && j0 + i < n) ? w[(size_t)(j0 + i) * kdim + k0 + t] : 0.0f;
        }
    };
    load(0);
    double s = 0, mag = 0;
    const int lane = t; /* the adding warp's lanes: t < ROW_TN */
    for (int k0 = 0; k0 < kdim; k0 += ROW_KT) {
        __syncthreads(); /* the tile before is added */
#pragma unroll
        for (int i = 0; i < ROW_TN; i++) {
            ws[i][t] = reg[i];
        }
        xs[t] = xr;
        __syncthreads();
        if (k0 + ROW_KT < kdim) {
            load(k0 + ROW_KT); /* in flight while the tile is added */
        }
        if (t < ROW_TN) {
            const int kt = min(ROW_KT, kdim - k0);
            for (int kk = 0; kk < kt; kk++) {
                const double p = xs[kk] * (double)ws[lane][kk];
                s = s + p;
                mag = mag + fabs(p);
            }
        }
    }
    const int j = j0 + lane;
    if (t < ROW_TN && j < n) {
        if (bias != NULL) {
            s = s + bias[j];
            mag = mag + fabs(bias[j]);
        }
        y[j] = s;
        if (a != NULL) {
            a[j] = mag;
        }
    }
}

struct gprd_lane {
    hipStream_t stream;
    void *scratch; /* x, bias, y and a on the device, grown as passes need */
    size_t scratch_bytes;
    /* Their page-locked host copies: a pageable copy would hold the
     * runtime's bounce buffer, which every other pageable copy of the
     * process (the library under test's among them) waits for. */
    void *host;
    size_t host_bytes;
    char err[256];
};

static int lane_check(gprd_lane *l, hipError_t e, const char *what) {
    if (e == hipSuccess) {
        return GP_REFDEV_OK;
    }
    return failto(l->err, GP_REFDEV_ERR_RUNTIME, what, hipGetErrorString(e));
}

static int scratch_reserve(gprd_lane *l, size_t bytes) {
    if (bytes <= l->scratch_bytes) {
        return GP_REFDEV_OK;
    }
    if (l->scratch != NULL) {
        (void)hipFree(l->scratch);
        l->scratch = NULL;
        l->scratch_bytes = 0;
    }
    int rc = lane_check(l, hipMalloc(&l->scratch, bytes), "hipMalloc(scratch)");
    if (rc == GP_REFDEV_OK) {
        l->scratch_bytes = bytes;
    }
    return rc;
}

static int host_reserve(gprd_lane *l, size_t bytes) {
    if (bytes <= l->host_bytes) {
        return GP_REFDEV_OK;
    }
    if (l->host != NULL) {
        (void)hipHostFree(l->host);
        l->host = NULL;
        l->host_bytes = 0;
    }
    int rc =
        lane_check(l, hipHostMalloc(&l->host, bytes, hipHostMallocPortable), "hipHostMalloc(lane)");
    if (rc == GP_REFDEV_OK) {
        l->host_bytes = bytes;
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

int gprd_weights_alloc(size_t n, void **out) {
    if (out == NULL || n == 0) {
        return fail(GP_REFDEV_ERR_ARG, "gprd_weights_alloc", "null pointer or empty");
    }
    *out = NULL;
    return check(hipMalloc(out, n * sizeof(float)), "hipMalloc(weights)");
}

int gprd_weights_write(void *dev, size_t offset, const float *host, size_t n) {
    if (dev == NULL || host == NULL) {
        return fail(GP_REFDEV_ERR_ARG, "gprd_weights_write", "null pointer");
    }
    return check(hipMemcpy((float *)dev + offset, host, n * sizeof(float), hipMemcpyHostToDevice),
                 "upload weights");
}

int gprd_weights_free(void *dev) {
    if (dev == NULL) {
        return GP_REFDEV_OK;
    }
    return check(hipFree(dev), "hipFree(weights)");
}

int gprd_host_alloc(size_t bytes, void **out) {
    if (out == NULL || bytes == 0) {
        return fail(GP_REFDEV_ERR_ARG, "gprd_host_alloc", "null pointer or empty");
    }
    *out = NULL;
    return check(hipHostMalloc(out, bytes, hipHostMallocPortable), "hipHostMalloc");
}

int gprd_host_free(void *host) {
    if (host == NULL) {
        return GP_REFDEV_OK;
    }
    return check(hipHostFree(host), "hipHostFree");
}

int gprd_lane_create(gprd_lane **out) {
    if (out == NULL) {
        return fail(GP_REFDEV_ERR_ARG, "gprd_lane_create", "null pointer");
    }
    gprd_lane *l = (gprd_lane *)calloc(1, sizeof(gprd_lane));
    if (l == NULL) {
        return fail(GP_REFDEV_ERR_RUNTIME, "gprd_lane_create", "out of host memory");
    }
    int rc = check(hipStreamCreateWithFlags(&l->stream, hipStreamNonBlocking), "hipStreamCreate");
    if (rc != GP_REFDEV_OK) {
        free(l);
        return rc;
    }
    *out = l;
    return GP_REFDEV_OK;
}

int gprd_lane_destroy(gprd_lane *l) {
    if (l == NULL) {
        return GP_REFDEV_OK;
    }
    if (l->scratch != NULL) {
        (void)hipFree(l->scratch);
    }
    if (l->host != NULL) {
        (void)hipHostFree(l->host);
    }
    int rc = check(hipStreamDestroy(l->stream), "hipStreamDestroy");
    free(l);
    return rc;
}

const char *gprd_lane_error(const gprd_lane *l) { return l == NULL ? "null lane" : l->err; }

int gprd_linear(gprd_lane *l, const double *x, const void *w, const double *bias, double *y,
                double *a, int m, int n, int kdim) {
    if (l == NULL) {
        return fail(GP_REFDEV_ERR_ARG, "gprd_linear", "null lane");
    }
    if (x == NULL || w == NULL || y == NULL) {
        return failto(l->err, GP_REFDEV_ERR_ARG, "gprd_linear", "x, w and y must not be null");
    }
    if (m < 1 || n < 1 || kdim < 1 || m > 65535 * 4) {
        return failto(l->err, GP_REFDEV_ERR_ARG, "gprd_linear",
                      "m, n and kdim must be positive, m at most 262140");
    }
    const size_t xb = (size_t)m * kdim * sizeof(double), bb = bias ? (size_t)n * sizeof(double) : 0,
                 yb = (size_t)m * n * sizeof(double), ab = a ? yb : 0;
    int rc = scratch_reserve(l, xb + bb + yb + ab);
    if (rc != GP_REFDEV_OK || (rc = host_reserve(l, xb + bb + yb + ab)) != GP_REFDEV_OK) {
        return rc;
    }
    char *base = (char *)l->scratch, *hbase = (char *)l->host;
    double *dx = (double *)base, *db = bias ? (double *)(base + xb) : NULL,
           *dy = (double *)(base + xb + bb), *da = a ? (double *)(base + xb + bb + yb) : NULL;
    memcpy(hbase, x, xb);
    if (bias != NULL) {
        memcpy(hbase + xb, bias, bb);
    }
    hipStream_t st = l->stream;
    if ((rc = lane_check(l, hipMemcpyAsync(dx, hbase, xb + bb, hipMemcpyHostToDevice, st),
                         "upload x")) != 0) {
        return rc;
    }
    if (m == 1) {
        hipLaunchKernelGGL(ref_linear_row_kernel, dim3((n + ROW_TN - 1) / ROW_TN),
                           dim3(ROW_THREADS), 0, st, dx, (const float *)w, db, dy, da, n, kdim);
    } else {
        const dim3 grid((n + REF_TN - 1) / REF_TN, (m + 3) / 4);
        hipLaunchKernelGGL(ref_linear_kernel<4>, grid, dim3(4 * REF_TN), 0, st, dx,
                           (const float *)w, db, dy, da, m, n, kdim);
    }
    if ((rc = lane_check(l, hipGetLastError(), "launch")) != 0 ||
        (rc = lane_check(l, hipMemcpyAsync(hbase + xb + bb, dy, yb + ab, hipMemcpyDeviceToHost, st),
                         "download y")) != 0 ||
        (rc = lane_check(l, hipStreamSynchronize(st), "hipStreamSynchronize")) != 0) {
        return rc;
    }
    memcpy(y, hbase + xb + bb, yb);
    if (a != NULL) {
        memcpy(a, hbase + xb + bb + yb, ab);
    }
    return GP_REFDEV_OK;
}

} /* extern "C" */
