package stage

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRegistryRoundTrip(t *testing.T) {
	require.Len(t, All(), Count, "All() against Count")
	for _, s := range All() {
		got, err := Parse(s.String())
		require.NoError(t, err, "Parse(%q)", s)
		assert.Equal(t, s, got, "Parse(%q)", s)
	}
	_, err := Parse("q")
	assert.ErrorContains(t, err, "q_proj", `Parse("q") must fail with an error listing the names`)
	assert.False(t, Stage(99).Valid(), "an out-of-range stage is invalid")
	assert.Equal(t, "stage(99)", Stage(99).String())
}

// TestOrderIsThePipeline pins the order first-divergence depends on.
func TestOrderIsThePipeline(t *testing.T) {
	want := []string{"x_norm", "q_proj", "k_proj", "v_proj", "q_rope", "k_rope", "kv_cache", "qk", "softmax", "pv", "attn", "attn_out",
		"attn_res", "post_norm", "gate_proj", "up_proj", "act", "down_proj", "mlp_res",
		"final_norm", "lm_head"}
	var got []string
	for _, s := range All() {
		got = append(got, s.String())
	}
	assert.Empty(t, cmp.Diff(want, got), "stage order (-want +got)")
}

// TestHeadStages: the head is final_norm and lm_head, after mlp_res.
func TestHeadStages(t *testing.T) {
	var head []string
	for _, s := range All() {
		if s.InHead() {
			head = append(head, s.String())
		}
	}
	assert.Equal(t, []string{"final_norm", "lm_head"}, head)
	assert.True(t, LMHead.IsProjection(), "lm_head is a gp_linear stage (routed)")
	assert.False(t, Stage(99).InHead())
}
