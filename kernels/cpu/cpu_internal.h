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

#endif /* GP_CPU_INTERNAL_H */
