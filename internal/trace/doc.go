// Package trace is the on-disk trace format of the parity harness and the
// comparison that turns two phases of a trace into the per-stage MAE table.
//
// It exists because the bug that started this project (layer 0 attention,
// decode0 vs prefill_last on MI300X) was found by dumping per-stage JSONL
// traces and building the MAE table by hand. This package makes that format
// a contract: the harness writes it with [Writer], people and CI read it with
// [Reader] and cmd/tracediff, and a malformed line is reported as file:line,
// never as a panic.
//
// # Format
//
// A trace is JSON Lines: one JSON object per line, one record per
// (prompt_id, phase, layer, head, stage[, mode]). Blank lines are ignored.
// An example record (wrapped here; on disk it is one line):
//
//	{"prompt_id":"llama3-8b/f16/S=129/auto","phase":"decode0","layer":0,
//	 "head":0,"stage":"q_proj","pos_id":128,"seq_len_used":129,
//	 "dtype":"f16","shape":[1,4],"values":[0.125,-1.5,"NaN","+Inf"],
//	 "mode":"chained","backend":"rocm"}
//
// Fields:
//
//   - prompt_id (required): the case name, e.g. "llama3-8b/f16/S=129/auto".
//   - phase (required): "prefill_last" (row S-1 of the prefill), "decode0",
//     "decode1", … (decode step N), or "reference" (the float64 reference).
//   - layer (required): ≥ 0.
//   - head (required): -1 for whole-row stages (x_norm, attn_out and the
//     MLP block's attn_res … mlp_res); otherwise
//     the head index, a KV head for the stages where [stage.Stage.KVHeads]
//     holds, a query head for the others.
//   - stage (required): a registry name from package stage.
//   - pos_id, seq_len_used (required): the position of the token and the
//     number of KV rows the step attended to. The field report's key check
//     was that these agree between the two phases; tracediff warns when not.
//   - dtype (required): "f32", "f16" or "bf16", the dtype the kernel stored.
//   - shape (required): at least one dimension, each ≥ 0; the product must
//     equal len(values).
//   - values (required): the stage output, row-major, widened to float64.
//     JSON has no NaN or infinity, and a NaN is exactly what a broken kernel
//     produces, so non-finite values are written as the strings "NaN",
//     "+Inf" and "-Inf"; every other value is a JSON number.
//   - mode (optional): "chained" (each stage fed by the previous stage of
//     the same phase) or "isolated" (each stage fed the reference input).
//   - backend (optional): free text such as "rocm", "cuda", "cpu".
//   - tol_local, tol_prop (optional; decode records the harness writes):
//     the bounds its pair check used, per element of values (same
//     encoding, same length): tol_local = local(decode's inputs) +
//     local(prefill's inputs) under the run's accuracy contract, tol_prop
//     the allowance for input differences carried from upstream (chained
//     mode only). An element passes when |decode − prefill| ≤ tol_local +
//     tol_prop.
//   - checks (optional): the harness's checks that failed for the stage
//     (pair, bitwise, ref-decode, ref-prefill, fa, non-finite, integrity).
//   - verdict (optional): the harness's verdict for the stage: "ok",
//     "carried" or "DIVERGES".
//
// Unknown fields are ignored, so the harness may add fields without breaking
// older readers; records without the optional fields (older traces, an
// engine's own) parse as before.
//
// # Comparison
//
// [Compare] pairs records of a baseline phase (default prefill_last) with a
// candidate phase (default decode0) by (prompt_id, layer, head, stage, mode),
// and computes per stage the MAE, max|Δ| and relative L2 error with [Acc],
// the accumulator behind [Diff] — the function the harness's report uses,
// so both print the same numbers. Where the decode records carry the
// harness's bounds (tol_local), a stage is judged as the harness judged it:
// the pair check recomputed from the bounds ([Metrics.Margin] ≤ 1) and the
// other checks as recorded; each stage gets the harness's verdict (ok,
// carried, DIVERGES). Stages without bounds fall back to the threshold:
// their metric (rel L2 by default) must not exceed it; see
// [DefaultThreshold] for why 1e-2 on rel L2 (and why it misses small
// bugs). The first divergent stage is the first diverging stage in
// registry order.
package trace
