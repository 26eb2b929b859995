package gpapi

// KVAppendBatched calls gp_kv_append_batched: row b of k and v goes to
// cache row slot[b] (slot: a device buffer of b int32).
func (l *Lib) KVAppendBatched(dt int32, k, v, kCache, vCache uintptr, b, kvWidth int, slot uintptr, capacity int) (Launch, error) {
	return l.callCap(CapBatched, "gp_kv_append_batched", func() int32 {
		return l.kvAppendBatched(dt, k, v, kCache, vCache, int32(b), int32(kvWidth), slot, int32(capacity))
	})
}

// AttentionBatched calls gp_attention_batched: row b of q attends to cache
// rows kvStart[b] .. kvStart[b]+kvLen[b]-1 (kvStart, kvLen: device buffers
// of b int32; lse may be 0).
func (l *Lib) AttentionBatched(dt int32, q, kCache, vCache, out, lse uintptr, b int, kvStart, kvLen uintptr, capacity, nHeads, nKVHeads, headDim int, scale float32) (Launch, error) {
	return l.callCap(CapBatched, "gp_attention_batched", func() int32 {
		return l.attentionBatched(dt, q, kCache, vCache, out, lse, int32(b), kvStart, kvLen, int32(capacity), int32(nHeads), int32(nKVHeads), int32(headDim), scale)
	})
}
