/*
 * cpu_internal.h: helpers shared by the CPU backend's translation units.
 * Not part of the ABI.
 */
#ifndef GP_CPU_INTERNAL_H
#define GP_CPU_INTERNAL_H

#include <math.h>
#include <stddef.h>

#include "gp_common.h"
#include "gp_half.h"

/* Returns a malloc'ed f32 copy of n elements of a dtype tensor, or NULL after
 * recording GP_ERR_OUT_OF_MEMORY for fn (the caller returns
 * GP_ERR_OUT_OF_MEMORY). Reading everything first also makes every op safe
 * when an output aliases an input. */
float *gp_cpu_to_f32(const char *fn, int dtype, const void *src, size_t n);

/* gp_attention's computation (cpu_fused.c) after its checks, with the fault
 * flags chosen by the caller: gp_attention picks them by its shape,
 * gp_attention_batched (cpu_batched.c) runs one sequence per call. */
enum {
    ATTN_NO_RESCALE = 1,
    ATTN_LSE_OFF_BY_ONE = 2,
    ATTN_CAUSAL_PREV = 4,
    ATTN_GQA_MODULO = 8,
};
int gp_cpu_attention_rows(const char *fn, int dtype, const void *q, const void *k_cache,
                          const void *v_cache, void *out, float *lse, int n_q, int n_kv,
                          int n_heads, int n_kv_heads, int head_dim, int q_pos0, float scale,
                          int causal, int flags);

#endif /* GP_CPU_INTERNAL_H */
