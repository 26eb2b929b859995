/*
 * blas.hip: GP_ROUTE_BLAS of gp_linear, the vendor library's GEMM with f32
 * accumulation, the benchmarks' "% of vendor" anchor. Not batch invariant
 * (the library chooses kernel, tiles and split-K by shape), so the parity
 * table never runs it and AUTO never resolves to it.
 *
 * Which library is a build choice (kernels/hip/hip.mk), not a kernel choice:
 *   GP_BLAS_CUBLAS   nvcc builds: cublasGemmEx, CUBLAS_COMPUTE_32F (no TF32),
 *                    linked with -lcublas
 *   neither          GP_ERR_UNSUPPORTED with a message naming the build flag
 *                    (ROCm builds: hipBLASLt / rocBLAS are not wired up yet)
 *
 * Row-major y[M,N] = x[M,K] * W[N,K]^T is, in cuBLAS's column-major terms,
 * Y'[N,M] = W'^T[N,K] * X'[K,M] with W' = W as a K x N column-major matrix
 * (ld K) and X' = x as K x M (ld K): cublasGemmEx(T, N, m=N, n=M, k=K).
 * A bias is broadcast into y first and added by the GEMM with beta = 1, so
 * acc + bias is rounded once to the dtype, as on the other routes.
 */
#include <stdio.h>

#include "gp_hip.h"

#if defined(GP_BLAS_CUBLAS) && defined(GP_NVIDIA)
#include <cublas_v2.h>

/* y[m, :] = bias for every row m (storage copies, exact). */
template <typename S>
__global__ __launch_bounds__(GP_BLOCK) void blas_bias_rows_kernel(const S *__restrict__ bias,
                                                                  S *__restrict__ y, long long M,
                                                                  int N) {
    const long long total = M * (long long)N;
    for (long long e = (long long)blockIdx.x * GP_BLOCK + threadIdx.x; e < total;
         e += (long long)gridDim.x * GP_BLOCK) {
        y[e] = bias[e % N];
    }
}

static cublasHandle_t blas_handle;
static int blas_ready;

int gp_hip_blas(int dtype, const void *x, const void *w, const void *bias, void *y, int M, int N,
                int K, int flags) {
    if (flags & GP_LIN_ROUND_TRUNC) {
        return gp_fail(GP_ERR_UNSUPPORTED,
                       "gp_linear: route=3 (blas): fault round_truncate cannot be injected into "
                       "cuBLAS");
    }
    if (!blas_ready) {
        const cublasStatus_t st = cublasCreate(&blas_handle);
        if (st != CUBLAS_STATUS_SUCCESS) {
            return gp_fail(GP_ERR_DEVICE, "gp_linear: route=3 (blas): cublasCreate: %s",
                           cublasGetStatusString(st));
        }
        /* An explicit workspace (cuBLAS's advice for Hopper: 32 MiB), so
         * that no algorithm depends on a workspace allocated mid-run. */
        void *ws = nullptr;
        const size_t ws_bytes = (size_t)32 << 20;
        if (hipMalloc(&ws, ws_bytes) == hipSuccess) {
            (void)cublasSetWorkspace(blas_handle, ws, ws_bytes);
        } else {
            (void)hipGetLastError();
        }
        blas_ready = 1;
    }
    cudaDataType_t t = CUDA_R_32F;
    size_t es = 4;
    if (dtype == GP_DTYPE_F16) {
        t = CUDA_R_16F;
        es = 2;
    } else if (dtype == GP_DTYPE_BF16) {
        t = CUDA_R_16BF;
        es = 2;
    }
    const float alpha = 1.0f;
    float beta = 0.0f;
    if (bias != nullptr && !(flags & GP_LIN_SKIP_BIAS)) {
        const long long total = (long long)M * N;
        const unsigned grid = gp_grid((total + GP_BLOCK - 1) / GP_BLOCK);
        if (es == 4) {
            hipLaunchKernelGGL(blas_bias_rows_kernel<float>, dim3(grid), dim3(GP_BLOCK), 0, 0,
                               (const float *)bias, (float *)y, (long long)M, N);
        } else {
            hipLaunchKernelGGL(blas_bias_rows_kernel<uint16_t>, dim3(grid), dim3(GP_BLOCK), 0, 0,
                               (const uint16_t *)bias, (uint16_t *)y, (long long)M, N);
        }
        const int rc = gp_hip_check_launch("gp_linear", "blas_bias_rows");
        if (rc != GP_OK) {
            return rc;
        }
        beta = 1.0f;
    }
    const cublasStatus_t st =
        cublasGemmEx(blas_handle, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &alpha, w, t, K, x, t, K,
                     &beta, y, t, N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (st != CUBLAS_STATUS_SUCCESS) {
        return gp_fail(GP_ERR_DEVICE, "gp_linear: route=3 (blas): cublasGemmEx: %s",
                       cublasGetStatusString(st));
    }
    const int rc = gp_hip_check_launch("gp_linear", "cublasGemmEx");
    if (rc != GP_OK) {
        return rc;
    }
    char name[GP_KERNEL_NAME_CAP];
    int ver = 0;
    cublasGetVersion(blas_handle, &ver);
    snprintf(name, sizeof name, "cublasGemmEx_%s_f32acc (cuBLAS %d)", gp_dtype_name(dtype), ver);
    gp_attest(GP_ROUTE_BLAS, 0, 0, 0, 1, name);
    return GP_OK;
}

#else

int gp_hip_blas(int dtype, const void *x, const void *w, const void *bias, void *y, int M, int N,
                int K, int flags) {
    return gp_fail(GP_ERR_UNSUPPORTED,
                   "gp_linear: route=3 (blas): this %s build links no vendor BLAS library "
                   "(CUDA builds define GP_BLAS_CUBLAS and link -lcublas; hipBLASLt/rocBLAS "
                   "are not wired up for ROCm)",
                   GP_VENDOR);
}

#endif /* GP_BLAS_CUBLAS */
