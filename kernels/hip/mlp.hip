/*
 * mlp.hip: the elementwise entry points of the "mlp" capability,
 * gp_residual_add (attn_res, mlp_res) and gp_gated_act (act); post_norm is
 * gp_rmsnorm_offset (rmsnorm.hip) and the MLP projections gp_linear.
 *
 * One thread per element, grid-stride: every element is computed in f32
 * from its own inputs and rounded once, in the order the CPU backend
 * (cpu_mlp.c) writes it, so a row never depends on the row count. expf and
 * tanhf are the precise library functions (no fast math).
 *
 * Faults (decode shape, rows == 1): residual_twice (y = a + b + b),
 * act_wrong_half (act(up) * gate).
 */
#include "gp_hip.h"

template <int DT>
__global__ __launch_bounds__(GP_BLOCK) void residual_add_kernel(
    const typename gp_elem<DT>::type *__restrict__ a,
    const typename gp_elem<DT>::type *__restrict__ b, typename gp_elem<DT>::type *y, size_t n,
    bool twice) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float bv = gp_to_f32<DT>(b[i]);
        float s = gp_to_f32<DT>(a[i]) + bv;
        if (twice) {
            s += bv;
        }
        y[i] = gp_from_f32<DT>(s);
    }
}

/* The activations in f32, the CPU backend's expressions (cpu_mlp.c). */
__device__ __forceinline__ float gp_act_f32(int kind, float g) {
    if (kind == GP_ACT_GELU_TANH) {
        const float c = 0.7978845608028654f; /* sqrt(2/pi) */
        const float a = 0.044715f;
        const float z = c * (g + a * (g * g * g));
        return 0.5f * g * (1.0f + tanhf(z));
    }
    return g / (1.0f + expf(-g));
}

template <int DT>
__global__ __launch_bounds__(GP_BLOCK) void gated_act_kernel(
    const typename gp_elem<DT>::type *__restrict__ gate,
    const typename gp_elem<DT>::type *__restrict__ up, typename gp_elem<DT>::type *y, size_t n,
    int kind, bool wrong_half) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = gp_to_f32<DT>(gate[i]);
        float u = gp_to_f32<DT>(up[i]);
        if (wrong_half) {
            const float t = g;
            g = u;
            u = t;
        }
        y[i] = gp_from_f32<DT>(gp_act_f32(kind, g) * u);
    }
}

static unsigned elementwise_grid(size_t n) {
    return gp_grid((long long)((n + GP_BLOCK - 1) / GP_BLOCK));
}

template <int DT>
static void residual_add_launch(const void *a, const void *b, void *y, size_t n, bool twice) {
    typedef typename gp_elem<DT>::type S;
    void (*kernel)(const S *, const S *, S *, size_t, bool) = residual_add_kernel<DT>;
    hipLaunchKernelGGL(kernel, dim3(elementwise_grid(n)), dim3(GP_BLOCK), 0, 0, (const S *)a,
                       (const S *)b, (S *)y, n, twice);
}

template <int DT>
static void gated_act_launch(const void *gate, const void *up, void *y, size_t n, int kind,
                             bool wrong_half) {
    typedef typename gp_elem<DT>::type S;
    void (*kernel)(const S *, const S *, S *, size_t, int, bool) = gated_act_kernel<DT>;
    hipLaunchKernelGGL(kernel, dim3(elementwise_grid(n)), dim3(GP_BLOCK), 0, 0, (const S *)gate,
                       (const S *)up, (S *)y, n, kind, wrong_half);
}

extern "C" int gp_residual_add(int dtype, const void *a, const void *b, void *y, int rows,
                               int width) {
    int rc = gp_check_residual_add(dtype, a, b, y, rows, width);
    if (rc != GP_OK) {
        return rc;
    }
    const size_t n = (size_t)rows * (size_t)width;
    const bool twice = gp_fault_on(GP_FAULT_RESIDUAL_TWICE, rows) != 0;
    switch (dtype) {
    case GP_DTYPE_F32:
        residual_add_launch<GP_DTYPE_F32>(a, b, y, n, twice);
        break;
    case GP_DTYPE_F16:
        residual_add_launch<GP_DTYPE_F16>(a, b, y, n, twice);
        break;
    default:
        residual_add_launch<GP_DTYPE_BF16>(a, b, y, n, twice);
        break;
    }
    if ((rc = gp_hip_check_launch("gp_residual_add", "residual_add")) != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1, "residual_add");
    return GP_OK;
}

extern "C" int gp_gated_act(int dtype, int kind, const void *gate, const void *up, void *y,
                            int rows, int width) {
    int rc = gp_check_gated_act(dtype, kind, gate, up, y, rows, width);
    if (rc != GP_OK) {
        return rc;
    }
    const size_t n = (size_t)rows * (size_t)width;
    const bool wrong_half = gp_fault_on(GP_FAULT_ACT_WRONG_HALF, rows) != 0;
    switch (dtype) {
    case GP_DTYPE_F32:
        gated_act_launch<GP_DTYPE_F32>(gate, up, y, n, kind, wrong_half);
        break;
    case GP_DTYPE_F16:
        gated_act_launch<GP_DTYPE_F16>(gate, up, y, n, kind, wrong_half);
        break;
    default:
        gated_act_launch<GP_DTYPE_BF16>(gate, up, y, n, kind, wrong_half);
        break;
    }
    const char *name = kind == GP_ACT_GELU_TANH ? "geglu_tanh" : "swiglu";
    if ((rc = gp_hip_check_launch("gp_gated_act", name)) != GP_OK) {
        return rc;
    }
    gp_attest(0, 0, 0, 0, 1, name);
    return GP_OK;
}
