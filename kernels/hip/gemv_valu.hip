/*
 * gemv_valu.hip: the VALU route of gp_linear, a skinny GEMV on the vector
 * units: y[m, n] = dot(x[m, :], W[n, :]) (+ bias[n]).
 *
 * One wave (64-lane AMD wavefront, 32-lane NVIDIA warp) per output element
 * and K split; a block of GEMV_WAVES waves covers GEMV_WAVES / split_k outputs.
 * split_k follows the header's policy (gp_valu_split_k): split s reduces K
 * elements [s * (K / split_k), (s + 1) * (K / split_k)), the last split also
 * takes the K % split_k tail. Within a split, lane l owns the 16-byte chunks
 * l, l + wave, l + 2 * wave, ... (4 f32 or 8 f16/bf16 elements each) and
 * accumulates them in f32 with fmaf, element by element in increasing k; a
 * chunk is loaded with one 16-byte load where both rows are 16-byte aligned
 * there and element by element otherwise (the tail), which changes nothing in
 * the arithmetic; GEMV_UNROLL chunks are loaded before the first is used.
 * Lanes are reduced by an xor butterfly, the split partials
 * summed in order s = 0, 1, ... by one thread: no atomics, and the result of
 * row m never depends on M. Decode faults arrive as flags (linear.hip);
 * gemv_skip_last_k_tile clips every split at gp_fault_k_keep(K).
 */
#include <stdio.h>

#include "gp_hip.h"

#define GEMV_WAVES 4
#define GEMV_THREADS (GEMV_WAVES * GP_WAVE)
#define GEMV_UNROLL 4 /* 16-byte chunks per lane loaded before use */

template <int DT>
__global__ __launch_bounds__(GEMV_THREADS) void gemv_splitk_kernel(
    const typename gp_elem<DT>::type *__restrict__ x,
    const typename gp_elem<DT>::type *__restrict__ w,
    const typename gp_elem<DT>::type *__restrict__ bias, typename gp_elem<DT>::type *__restrict__ y,
    int M, int N, int K, int split_k, int flags, int k_keep) {
    typedef typename gp_elem<DT>::type S;
    constexpr int vec = gp_vec<DT>::n;
    __shared__ float part[GEMV_WAVES];

    const int lane = threadIdx.x % GP_WAVE;
    const int wave = threadIdx.x / GP_WAVE;
    const int outs = GEMV_WAVES / split_k; /* outputs per block */
    const int s = wave % split_k;
    const int n = blockIdx.x * outs + wave / split_k;
    const bool f16_acc = (flags & GP_LIN_F16_ACC) != 0;

    /* Split s covers [k0, k1). */
    const int chunk = K / split_k;
    const int k0 = s * chunk;
    int k1 = k0 + chunk;
    if (s == split_k - 1 && !(flags & GP_LIN_DROP_TAIL)) {
        k1 = K;
    }
    if (flags & GP_LIN_SKIP_K_TILE) { /* gemv_skip_last_k_tile: stop at k_keep */
        k1 = min(k1, k_keep);
    }

    for (int m = blockIdx.y; m < M; m += gridDim.y) { /* uniform over the block */
        float acc = 0.0f;
        if (n < N) { /* uniform over the wave */
            const S *xr = x + (size_t)m * K;
            const S *wr = w + (size_t)n * K;
            int c = k0 + lane * vec;
            /* GEMV_UNROLL chunks at a time, every load first: the same
             * chunks in the same order as the loop below, more loads in
             * flight. A lane's chunks are GP_WAVE * 16 bytes apart, so all
             * are 16-byte aligned if the first is. */
            if (gp_aligned16(xr + c) && gp_aligned16(wr + c)) {
                for (; c + (GEMV_UNROLL - 1) * GP_WAVE * vec + vec <= k1;
                     c += GEMV_UNROLL * GP_WAVE * vec) {
                    float xv[GEMV_UNROLL][vec], wv[GEMV_UNROLL][vec];
#pragma unroll
                    for (int u = 0; u < GEMV_UNROLL; u++) {
                        gp_load_vec16<DT>(xr + c + u * GP_WAVE * vec, xv[u]);
                        gp_load_vec16<DT>(wr + c + u * GP_WAVE * vec, wv[u]);
                    }
#pragma unroll
                    for (int u = 0; u < GEMV_UNROLL; u++) {
#pragma unroll
                        for (int j = 0; j < vec; j++) {
                            acc = fmaf(xv[u][j], wv[u][j], acc);
                            if (f16_acc) {
                                acc = gp_round_f16(acc);
                            }
                        }
                    }
                }
            }
            for (; c < k1; c += GP_WAVE * vec) {
                const int cnt = min(vec, k1 - c);
                float xv[vec], wv[vec];
                if (cnt == vec && gp_aligned16(xr + c) && gp_aligned16(wr + c)) {
                    gp_load_vec16<DT>(xr + c, xv);
                    gp_load_vec16<DT>(wr + c, wv);
                } else {
#pragma unroll
                    for (int j = 0; j < vec; j++) {
                        xv[j] = j < cnt ? gp_to_f32<DT>(xr[c + j]) : 0.0f;
                        wv[j] = j < cnt ? gp_to_f32<DT>(wr[c + j]) : 0.0f;
                    }
                }
#pragma unroll
                for (int j = 0; j < vec; j++) {
                    if (j < cnt) {
                        acc = fmaf(xv[j], wv[j], acc);
                        if (f16_acc) {
                            acc = gp_round_f16(acc);
                        }
                    }
                }
            }
        }
        /* Butterfly over the whole wave (all lanes take part). */
#pragma unroll
        for (int off = GP_WAVE / 2; off > 0; off >>= 1) {
            acc += __shfl_xor(acc, off);
            if (f16_acc) {
                acc = gp_round_f16(acc);
            }
        }
        if (lane == 0) {
            part[wave] = acc;
        }
        __syncthreads();
        if ((int)threadIdx.x < outs) {
            const int o = threadIdx.x;
            const int on = blockIdx.x * outs + o;
            if (on < N) {
                float sum = part[o * split_k];
                for (int t = 1; t < split_k; t++) {
                    sum += part[o * split_k + t];
                    if (f16_acc) {
                        sum = gp_round_f16(sum);
                    }
                }
                if (bias != nullptr && !(flags & GP_LIN_SKIP_BIAS)) {
                    sum = sum + gp_to_f32<DT>(bias[on]);
                }
                y[(size_t)m * N + on] = gp_from_f32<DT>(sum, (flags & GP_LIN_ROUND_TRUNC) != 0);
            }
        }
        __syncthreads();
    }
}

template <int DT>
static void gemv_launch(const void *x, const void *w, const void *bias, void *y, int M, int N,
                        int K, int split_k, int flags) {
    typedef typename gp_elem<DT>::type S;
    const int outs = GEMV_WAVES / split_k;
    const dim3 grid((unsigned)((N + outs - 1) / outs), gp_grid(M));
    const dim3 block(GEMV_THREADS);
    void (*kernel)(const S *, const S *, const S *, S *, int, int, int, int, int, int) =
        gemv_splitk_kernel<DT>;
    hipLaunchKernelGGL(kernel, grid, block, 0, 0, (const S *)x, (const S *)w, (const S *)bias,
                       (S *)y, M, N, K, split_k, flags, gp_fault_k_keep(K));
}

int gp_hip_gemv(int dtype, const void *x, const void *w, const void *bias, void *y, int M, int N,
                int K, int flags) {
    const int split_k = gp_valu_split_k(N, K);
    switch (dtype) {
    case GP_DTYPE_F32:
        gemv_launch<GP_DTYPE_F32>(x, w, bias, y, M, N, K, split_k, flags);
        break;
    case GP_DTYPE_F16:
        gemv_launch<GP_DTYPE_F16>(x, w, bias, y, M, N, K, split_k, flags);
        break;
    default:
        gemv_launch<GP_DTYPE_BF16>(x, w, bias, y, M, N, K, split_k, flags);
        break;
    }
    char name[GP_KERNEL_NAME_CAP];
    snprintf(name, sizeof name, "gemv_%s_splitk%d", GP_WAVE_NAME, split_k);
    const int rc = gp_hip_check_launch("gp_linear", name);
    if (rc != GP_OK) {
        return rc;
    }
    gp_attest(GP_ROUTE_VALU, 0, 0, 0, split_k, name);
    return GP_OK;
}
