/* Decode bugs that only the table's coverage tiers can see, wrapped around
 * the CPU backend (entry points renamed *_real at build time):
 *   -DROPE_POS_F16     gp_rope on the decode shape holds the position in
 *                      f16 (exact up to 2048; above, rounded to the f16 grid)
 *   -DDROP_LAST_SPLIT  gp_attention on the decode shape drops its last
 *                      64-key chunk once the cache holds more than 512 keys
 * TestCoverageTiers needs the start-position and split-boundary tiers of
 * harness.Matrix to catch each (and the plain tiers not to). */
#include <stdint.h>

#include "greta_parity.h"

#ifdef ROPE_POS_F16
int gp_rope_real(int dtype, int layout, const void *x, void *y, const int32_t *pos, int rows,
                 int n_heads, int head_dim, float theta);

/* p rounded to the nearest f16 value (ties to even): spacing 2^(e-10). */
static int32_t f16_round_int(int32_t p) {
    if (p < 2048) {
        return p;
    }
    int e = 31 - __builtin_clz((unsigned)p);
    int32_t sp = (int32_t)1 << (e - 10);
    int32_t q = p / sp, r = p % sp;
    if (2 * r > sp || (2 * r == sp && (q & 1))) {
        q++;
    }
    return q * sp;
}

int gp_rope(int dtype, int layout, const void *x, void *y, const int32_t *pos, int rows,
            int n_heads, int head_dim, float theta) {
    if (rows == 1 && pos != NULL) {
        int32_t p = f16_round_int(pos[0]);
        return gp_rope_real(dtype, layout, x, y, &p, rows, n_heads, head_dim, theta);
    }
    return gp_rope_real(dtype, layout, x, y, pos, rows, n_heads, head_dim, theta);
}
#endif

#ifdef DROP_LAST_SPLIT
int gp_attention_real(int dtype, const void *q, const void *k_cache, const void *v_cache, void *out,
                      float *lse, int n_q, int n_kv, int n_heads, int n_kv_heads, int head_dim,
                      int q_pos0, float scale, int causal);

int gp_attention(int dtype, const void *q, const void *k_cache, const void *v_cache, void *out,
                 float *lse, int n_q, int n_kv, int n_heads, int n_kv_heads, int head_dim,
                 int q_pos0, float scale, int causal) {
    if (n_q == 1 && n_kv > 512) {
        int keep = ((n_kv - 1) / GP_ATTN_SPLIT_KEYS) * GP_ATTN_SPLIT_KEYS;
        return gp_attention_real(dtype, q, k_cache, v_cache, out, lse, n_q, keep, n_heads,
                                 n_kv_heads, head_dim, keep - 1, scale, causal);
    }
    return gp_attention_real(dtype, q, k_cache, v_cache, out, lse, n_q, n_kv, n_heads, n_kv_heads,
                             head_dim, q_pos0, scale, causal);
}
#endif
