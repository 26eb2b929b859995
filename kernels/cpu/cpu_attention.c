/*
 * cpu_attention.c: gp_attn_scores, gp_softmax and gp_attn_pv.
 *
 *  scores: in-order fmaf dot over head_dim in f32, then * scale; keys
 *          j > q_pos0 + i get -INFINITY when causal (not computed).
 *  softmax: row max, expf(s - max) (-INFINITY -> 0), in-order sum, divide.
 *          An all -INFINITY row gives 0/0 = NaN, as the header says.
 *  pv:     the header's chunked order: per chunk of GP_ATTN_PV_CHUNK_KEYS
 *          keys an fmaf chain over j in increasing order from 0.0f, the
 *          chunk partials added in chunk order in f32, rounded once to
 *          dtype (the HIP kernels run the same order, in parallel).
 *
 * Faults (n_q == 1): gqa_modulo (scores and pv), scale_missing, scale_twice,
 * mask_off_by_one (scores), softmax_no_max (softmax). chunk_pos_off (q_pos0
 * > 0 and n_q > 1, a later chunk of a chunked prefill): scores takes query i
 * at position q_pos0 - 1 + i, so its own key is masked.
 */
#include <stdlib.h>

#include "cpu_internal.h"

static int kv_head(int h, int n_heads, int n_kv_heads, int n_q) {
    if (gp_fault_on(GP_FAULT_GQA_MODULO, n_q)) {
        return h % n_kv_heads;
    }
    return h / (n_heads / n_kv_heads);
}

int gp_attn_scores(int dtype, const void *q, const void *k_cache, float *scores, int n_q, int n_kv,
                   int n_heads, int n_kv_heads, int head_dim, int q_pos0, float scale, int causal) {
    static const char fn[] = "gp_attn_scores";
    size_t q_width = (size_t)n_heads * (size_t)head_dim;
    size_t kv_width = (size_t)n_kv_heads * (size_t)head_dim;
    int scale_missing, scale_twice, off_by_one;
    float *qf, *kf;
    int h, i, j, c;
    int rc = gp_check_attn_scores(dtype, q, k_cache, scores, n_q, n_kv, n_heads, n_kv_heads,
                                  head_dim, q_pos0, scale);
    if (rc != GP_OK) {
        return rc;
    }
    scale_missing = gp_fault_on(GP_FAULT_SCALE_MISSING, n_q);
    scale_twice = gp_fault_on(GP_FAULT_SCALE_TWICE, n_q);
    off_by_one = gp_fault_on(GP_FAULT_MASK_OFF_BY_ONE, n_q) ||
                 gp_fault_chunk_on(GP_FAULT_CHUNK_POS_OFF, q_pos0, n_q);
    qf = gp_cpu_to_f32(fn, dtype, q, (size_t)n_q * q_width);
    kf = gp_cpu_to_f32(fn, dtype, k_cache, (size_t)n_kv * kv_width);
    if (qf == NULL || kf == NULL) {
        free(qf);
        free(kf);
        return GP_ERR_OUT_OF_MEMORY;
    }
    for (h = 0; h < n_heads; h++) {
        int g = kv_head(h, n_heads, n_kv_heads, n_q);
        for (i = 0; i < n_q; i++) {
            const float *qr = qf + (size_t)i * q_width + (size_t)h * (size_t)head_dim;
            long long last = (long long)q_pos0 + i; /* last visible key */
            float *out = scores + ((size_t)h * (size_t)n_q + (size_t)i) * (size_t)n_kv;
            if (off_by_one) {
                last -= 1;
            }
            for (j = 0; j < n_kv; j++) {
                const float *kr = kf + (size_t)j * kv_width + (size_t)g * (size_t)head_dim;
                float dot = 0.0f;
                if (causal && j > last) {
                    out[j] = -INFINITY;
                    continue;
                }
                for (c = 0; c < head_dim; c++) {
                    dot = fmaf(qr[c], kr[c], dot);
                }
                if (!scale_missing) {
                    dot = dot * scale;
                }
                if (scale_twice) {
                    dot = dot * scale;
                }
                out[j] = dot;
            }
        }
    }
    free(qf);
    free(kf);
    gp_attest(0, 0, 0, 0, 1, "cpu_attn_scores");
    return gp_ok();
}

int gp_softmax(const float *scores, float *probs, int n_heads, int n_q, int n_kv) {
    size_t row, n_rows;
    int no_max, j;
    int rc = gp_check_softmax(scores, probs, n_heads, n_q, n_kv);
    if (rc != GP_OK) {
        return rc;
    }
    no_max = gp_fault_on(GP_FAULT_SOFTMAX_NO_MAX, n_q);
    n_rows = (size_t)n_heads * (size_t)n_q;
    for (row = 0; row < n_rows; row++) {
        const float *s = scores + row * (size_t)n_kv;
        float *p = probs + row * (size_t)n_kv;
        float mx = -INFINITY, sum = 0.0f;
        if (no_max) {
            mx = 0.0f;
        } else {
            for (j = 0; j < n_kv; j++) {
                if (s[j] > mx) {
                    mx = s[j];
                }
            }
        }
        /* s and p may alias: each element is read before it is written */
        for (j = 0; j < n_kv; j++) {
            float e = s[j] == -INFINITY ? 0.0f : expf(s[j] - mx);
            p[j] = e;
            sum += e;
        }
        for (j = 0; j < n_kv; j++) {
            p[j] = p[j] / sum;
        }
    }
    gp_attest(0, 0, 0, 0, 1, "cpu_softmax");
    return gp_ok();
}

int gp_attn_pv(int dtype, const float *probs, const void *v_cache, void *out, int n_q, int n_kv,
               int n_heads, int n_kv_heads, int head_dim) {
    static const char fn[] = "gp_attn_pv";
    size_t out_width = (size_t)n_heads * (size_t)head_dim;
    size_t kv_width = (size_t)n_kv_heads * (size_t)head_dim;
    float *vf;
    int h, i, j, c;
    int rc = gp_check_attn_pv(dtype, probs, v_cache, out, n_q, n_kv, n_heads, n_kv_heads, head_dim);
    if (rc != GP_OK) {
        return rc;
    }
    vf = gp_cpu_to_f32(fn, dtype, v_cache, (size_t)n_kv * kv_width);
    if (vf == NULL) {
        return GP_ERR_OUT_OF_MEMORY;
    }
    for (h = 0; h < n_heads; h++) {
        int g = kv_head(h, n_heads, n_kv_heads, n_q);
        for (i = 0; i < n_q; i++) {
            const float *p = probs + ((size_t)h * (size_t)n_q + (size_t)i) * (size_t)n_kv;
            for (c = 0; c < head_dim; c++) {
                const float *vc = vf + (size_t)g * (size_t)head_dim + (size_t)c;
                float acc = 0.0f;
                int j0;
                for (j0 = 0; j0 < n_kv; j0 += GP_ATTN_PV_CHUNK_KEYS) {
                    int jn = n_kv - j0 < GP_ATTN_PV_CHUNK_KEYS ? n_kv - j0 : GP_ATTN_PV_CHUNK_KEYS;
                    float part = 0.0f;
                    for (j = j0; j < j0 + jn; j++) {
                        part = fmaf(p[j], vc[(size_t)j * kv_width], part);
                    }
                    acc = j0 == 0 ? part : acc + part;
                }
                gp_store(dtype, out, (size_t)i * out_width + (size_t)h * (size_t)head_dim + c, acc,
                         0);
            }
        }
    }
    free(vf);
    gp_attest(0, 0, GP_ATTN_PV_CHUNK_KEYS, 0,
              (n_kv + GP_ATTN_PV_CHUNK_KEYS - 1) / GP_ATTN_PV_CHUNK_KEYS, "cpu_attn_pv_chunked");
    return gp_ok();
}
