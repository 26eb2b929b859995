/* A legal but not batch-invariant softmax, wrapped around the CPU backend
 * (gp_softmax and gp_batch_invariant_stages renamed *_real at build time):
 * on the decode shape (n_q == 1) it sums each row's exponentials in reverse
 * key order, which the header allows (only the projections and P.V fix
 * their order). -DDECLARE_ALL keeps declaring softmax batch invariant (a
 * false declaration the harness must name); without it, softmax is left
 * out of the declaration. TestBatchInvarianceDeclaration uses both. */
#include <math.h>
#include <string.h>

int gp_softmax_real(const float *scores, float *probs, int n_heads, int n_q, int n_kv);
const char *gp_batch_invariant_stages_real(void);

int gp_softmax(const float *scores, float *probs, int n_heads, int n_q, int n_kv) {
    if (n_q != 1 || scores == NULL || probs == NULL || n_heads <= 0 || n_kv <= 0) {
        return gp_softmax_real(scores, probs, n_heads, n_q, n_kv);
    }
    for (int h = 0; h < n_heads; h++) {
        const float *s = scores + (size_t)h * n_kv;
        float *p = probs + (size_t)h * n_kv;
        float m = -INFINITY;
        for (int j = 0; j < n_kv; j++) {
            m = s[j] > m ? s[j] : m;
        }
        float sum = 0.0f;
        for (int j = n_kv - 1; j >= 0; j--) {
            p[j] = s[j] == -INFINITY ? 0.0f : expf(s[j] - m);
            sum += p[j];
        }
        for (int j = 0; j < n_kv; j++) {
            p[j] = p[j] / sum;
        }
    }
    return 0;
}

const char *gp_batch_invariant_stages(void) {
#ifdef DECLARE_ALL
    return gp_batch_invariant_stages_real();
#else
    return "x_norm,q_proj,k_proj,v_proj,q_rope,k_rope,kv_cache,qk,pv,attn,attn_out";
#endif
}
