/*
 * cpu_batched.c: the "batched" capability, decode of B sequences in one
 * call over a shared KV cache (greta_parity.h, "batched").
 *
 *  gp_kv_append_batched: row b of k and v copied to row slot[b], exactly.
 *  gp_attention_batched: sequence b is gp_attention's computation
 *          (gp_cpu_attention_rows, cpu_fused.c) for one query at position
 *          kv_len[b] - 1 over the caches offset by kv_start[b] rows, so
 *          each row is bit-identical to the single-sequence call by
 *          construction: the same splits counted from the sequence's key 0,
 *          the same combine.
 *
 * The slot, kv_start and kv_len arrays are "device" pointers, which on this
 * backend are host memory: every element is checked before anything is
 * written (GP_ERR_INVALID_ARG naming the element).
 *
 * Faults: the decode faults of gp_attention act when B == 1 (row count 1),
 * those of gp_kv_append (kv_slot_off) likewise; batch_kv_start_off (B > 1)
 * reads sequence b from row kv_start[b] + 1 (gp_batched_first_row).
 */
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"

int gp_kv_append_batched(int dtype, const void *k, const void *v, void *k_cache, void *v_cache,
                         int B, int kv_width, const int32_t *slot, int capacity) {
    size_t row_bytes;
    int b;
    int rc = gp_check_kv_append_batched(dtype, k, v, k_cache, v_cache, B, kv_width, slot, capacity);
    if (rc != GP_OK || (rc = gp_check_batched_slots(slot, B, capacity)) != GP_OK) {
        return rc;
    }
    row_bytes = (size_t)kv_width * gp_dtype_size(dtype);
    for (b = 0; b < B; b++) {
        int s = slot[b];
        if (gp_fault_on(GP_FAULT_KV_SLOT_OFF, B)) {
            if (s + 1 >= capacity) {
                continue;
            }
            s += 1;
        }
        memmove((char *)k_cache + (size_t)s * row_bytes, (const char *)k + (size_t)b * row_bytes,
                row_bytes);
        memmove((char *)v_cache + (size_t)s * row_bytes, (const char *)v + (size_t)b * row_bytes,
                row_bytes);
    }
    gp_attest(0, 0, 0, 0, 1, "cpu_kv_append_batched");
    return gp_ok();
}

int gp_attention_batched(int dtype, const void *q, const void *k_cache, const void *v_cache,
                         void *out, float *lse, int B, const int32_t *kv_start,
                         const int32_t *kv_len, int capacity, int n_heads, int n_kv_heads,
                         int head_dim, float scale) {
    static const char fn[] = "gp_attention_batched";
    const size_t q_bytes = (size_t)n_heads * (size_t)head_dim * gp_dtype_size(dtype);
    const size_t kv_row_bytes = (size_t)n_kv_heads * (size_t)head_dim * gp_dtype_size(dtype);
    float *row_lse;
    int b, h, flags = 0, longest = 1, start_off;
    int rc = gp_check_attention_batched(dtype, q, k_cache, v_cache, out, B, kv_start, kv_len,
                                        capacity, n_heads, n_kv_heads, head_dim, scale);
    if (rc != GP_OK || (rc = gp_check_batched_spans(kv_start, kv_len, B, capacity)) != GP_OK) {
        return rc;
    }
    if (gp_fault_on(GP_FAULT_ATTN_NO_RESCALE, B)) {
        flags |= ATTN_NO_RESCALE;
    }
    if (gp_fault_on(GP_FAULT_ATTN_LSE_OFF_BY_ONE, B)) {
        flags |= ATTN_LSE_OFF_BY_ONE;
    }
    if (gp_fault_on(GP_FAULT_ATTN_CAUSAL_PREV, B)) {
        flags |= ATTN_CAUSAL_PREV;
    }
    if (gp_fault_on(GP_FAULT_ATTN_GQA_MODULO, B)) {
        flags |= ATTN_GQA_MODULO;
    }
    start_off = gp_fault_batch_on(GP_FAULT_BATCH_KV_START_OFF, B);
    row_lse = (float *)malloc((size_t)n_heads * sizeof(float));
    if (row_lse == NULL) {
        return gp_fail(GP_ERR_OUT_OF_MEMORY, "%s: LSE scratch of %d heads: out of memory", fn,
                       n_heads);
    }
    for (b = 0; b < B; b++) {
        const int n = kv_len[b];
        const size_t first = (size_t)gp_batched_first_row(kv_start[b], n, capacity, start_off);
        rc = gp_cpu_attention_rows(fn, dtype, (const char *)q + (size_t)b * q_bytes,
                                   (const char *)k_cache + first * kv_row_bytes,
                                   (const char *)v_cache + first * kv_row_bytes,
                                   (char *)out + (size_t)b * q_bytes, row_lse, 1, n, n_heads,
                                   n_kv_heads, head_dim, n - 1, scale, 1, flags);
        if (rc != GP_OK) {
            free(row_lse);
            return rc;
        }
        if (lse != NULL) {
            for (h = 0; h < n_heads; h++) {
                lse[(size_t)h * (size_t)B + (size_t)b] = row_lse[h];
            }
        }
        if (gp_attn_splits(n) > longest) {
            longest = gp_attn_splits(n);
        }
    }
    free(row_lse);
    gp_attest(0, 0, GP_ATTN_SPLIT_KEYS, 0, longest, "cpu_attention_batched_splitkv64");
    return gp_ok();
}
