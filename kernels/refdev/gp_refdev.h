/*
 * gp_refdev.h: the float64 reference on the GPU (libgreta_parity_refdev_*.so).
 *
 * The suite's float64 reference walks every projection's weights once per
 * compared row; on a real model's table that is most of the host's time
 * (docs/PERFORMANCE.md, "Suite speed"). This library runs the same loop on
 * the GPU: one thread per output, the products x[k]·W[j,k] rounded to
 * float64 and added in increasing k, no FMA contraction (-fmad=false /
 * -ffp-contract=off), the bias added last: the host loop of
 * internal/reference (dotRows), bit for bit. The suite audits every call:
 * sampled outputs are recomputed on the host and must be equal bit for bit.
 *
 * It is not the library under test and shares no code with it but the
 * vendor alias header: a kernel bug in kernels/hip cannot reach it.
 * Every entry point is synchronous and returns 0 or a GP_REFDEV_ERR_* code.
 * Passes run on lanes: a lane is a stream, a device scratch buffer and an
 * error message, used by one caller at a time; passes on different lanes
 * run at the same time (a one-row pass does not fill the GPU). The lane-less
 * entry points (weights) say what went wrong in gprd_last_error(), and are
 * called by one caller at a time.
 */
#ifndef GP_REFDEV_H
#define GP_REFDEV_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped on any change of a signature or of the arithmetic. Version 3
 * added gprd_host_alloc and gprd_host_free, and split gprd_weights_upload
 * into gprd_weights_alloc and gprd_weights_write. */
#define GP_REFDEV_ABI_VERSION 3

#define GP_REFDEV_OK 0
#define GP_REFDEV_ERR_ARG 1     /* a null pointer or a size out of range */
#define GP_REFDEV_ERR_RUNTIME 2 /* the GPU runtime failed (no device, out of memory, ...) */

int gprd_abi_version(void);
/* The last failure of a lane-less entry point, or "". */
const char *gprd_last_error(void);
/* "cuda sm_90a" or "hip gfx942": vendor and build target. */
const char *gprd_backend(void);
/* Number of visible devices; 0 with gprd_last_error() set when none. */
int gprd_device_count(void);

/* A device copy of n float32 weights (every storage dtype, f32, f16 and
 * bf16, is exact in float32): gprd_weights_alloc makes room for n, *out
 * receives the device pointer, and gprd_weights_write copies n of them from
 * host to weights [offset, offset+n). The suite writes a chunk at a time
 * from page-locked memory (gprd_host_alloc): a copy from pageable memory
 * runs at a fraction of the link's speed and holds the runtime's bounce
 * buffer, which every other pageable copy of the process waits for. */
int gprd_weights_alloc(size_t n, void **out);
int gprd_weights_write(void *dev, size_t offset, const float *host, size_t n);
int gprd_weights_free(void *dev);

/* Page-locked host memory, usable by every library of the process
 * (portable): the suite stages its copies to and from the library under
 * test through it, because a copy from pageable memory goes through the
 * runtime's own bounce buffer at a fraction of the link's speed. */
int gprd_host_alloc(size_t bytes, void **out);
int gprd_host_free(void *host);

typedef struct gprd_lane gprd_lane;
int gprd_lane_create(gprd_lane **out);
int gprd_lane_destroy(gprd_lane *lane);
/* The last failure of a pass on lane, or "". */
const char *gprd_lane_error(const gprd_lane *lane);

/*
 * On lane: y[r,j] = Σ_k x[r,k]·W[j,k] (+ bias[j]) and, when a != NULL,
 * a[r,j] = Σ_k |x[r,k]·W[j,k]| (+ |bias[j]|), for r < m, j < n, over
 * k < kdim in increasing order. x [m, kdim] row-major float64 (host),
 * W [n, kdim] row-major float32 (device, from gprd_weights_alloc), bias
 * [n] float64 (host) or NULL, y and a [m, n] float64 (host).
 */
int gprd_linear(gprd_lane *lane, const double *x, const void *w, const double *bias, double *y,
                double *a, int m, int n, int kdim);

#ifdef __cplusplus
}
#endif

#endif /* GP_REFDEV_H */
