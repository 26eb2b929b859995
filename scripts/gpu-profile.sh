#!/bin/bash
# gpu-profile.sh: Nsight Compute (ncu) profiles of the kernels whose
# benchmarks miss issue 13's targets, each beside the vendor kernel it is
# measured against, in one GPU call. Run from the repo root on the GPU
# machine with the CUDA library built (make kernels-cuda) and the Go test
# binary at build/parity.test:
#     bash scripts/gpu-profile.sh [NAME ...]    (default: every profile)
# Each profile is one benchmark run at -test.benchtime 1x under ncu with a
# kernel-name filter; ncu skips the benchmark's warm-up launches
# (--launch-skip) and reports one launch with the sections below. The
# reports go to /tmp/gpu-profile/NAME.txt, a digest of the key metrics to
# $OUT/summary.txt, and everything to $OUT/profiles.tar.gz (one file, so
# that the 8-file limit on what comes back holds).
set -u
OUT=${OUT:-out}
LOG=/tmp/gpu-profile
LIB=${LIB:-build/libgreta_parity_cuda.so}
mkdir -p "$OUT" "$LOG"
SUM="$OUT/summary.txt"
: >"$SUM"

# NAME;kernel regex;launches to skip;launches profiled;benchmark regex
PROFILES=(
    "gemm-wgmma-f16-up-m512;regex:gemm_wgmma;5;1;BenchmarkLinear/llama3-8b.mlp_up.14336x4096/f16/M=512\$/mfma\$"
    "gemm-wgmma-f16-down-m512;regex:gemm_wgmma;5;1;BenchmarkLinear/llama3-8b.mlp_down.4096x14336/f16/M=512\$/mfma\$"
    "gemm-cublas-f16-up-m512;regex:sm90|nvjet|cutlass|xmma;5;1;BenchmarkLinear/llama3-8b.mlp_up.14336x4096/f16/M=512\$/blas\$"
    "gemv-valu-f16-q-m1;regex:gemv;5;1;BenchmarkLinear/llama3-8b.q_proj.4096x4096/f16/M=1\$/valu\$"
    "attn-qk-f16-kv4096;regex:attn_scores;5;1;BenchmarkDecodeAttention/f16/kv=4096/qk\$"
    "attn-softmax-f16-kv4096;regex:softmax;9;3;BenchmarkDecodeAttention/f16/kv=4096/softmax\$"
    "attn-pv-f16-kv4096;regex:attn_pv;6;2;BenchmarkDecodeAttention/f16/kv=4096/pv\$"
    "attn-pv-f16-kv32768;regex:attn_pv;6;2;BenchmarkDecodeAttention/f16/kv=32768/pv\$"
    "attn-fused-f16-kv4096;regex:attention_;6;2;BenchmarkDecodeAttention/f16/kv=4096/fused\$"
    "attn-fused-f16-kv32768;regex:attention_;6;2;BenchmarkDecodeAttention/f16/kv=32768/fused\$"
)
# Why warps wait (percent of active warp cycles per reason).
STALLS=smsp__warp_issue_stalled_long_scoreboard_per_warp_active.pct,smsp__warp_issue_stalled_barrier_per_warp_active.pct,smsp__warp_issue_stalled_wait_per_warp_active.pct,smsp__warp_issue_stalled_math_pipe_throttle_per_warp_active.pct,smsp__warp_issue_stalled_short_scoreboard_per_warp_active.pct,smsp__warp_issue_stalled_mio_throttle_per_warp_active.pct,smsp__warp_issue_stalled_lg_throttle_per_warp_active.pct,smsp__warp_issue_stalled_membar_per_warp_active.pct,smsp__warp_issue_stalled_sleeping_per_warp_active.pct
SECTIONS="--section SpeedOfLight --section LaunchStats --section Occupancy --section WarpStateStats --section SchedulerStats --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis"
want=" $* "
for p in "${PROFILES[@]}"; do
    IFS=';' read -r name kern skip count bench <<<"$p"
    if [ $# -gt 0 ] && [[ "$want" != *" $name "* ]]; then
        continue
    fi
    if [ "$SECONDS" -gt "${GP_DEADLINE:-500}" ]; then
        echo "$name: skipped (deadline)" >>"$SUM"
        continue
    fi
    # -c: every kernel of one call of the stage (split and combine, ...).
    timeout 120 ncu --target-processes all -k "$kern" --launch-skip "$skip" -c "$count" $SECTIONS \
        --metrics "$STALLS" \
        build/parity.test -test.run '^$' -test.bench "$bench" -test.benchtime 1x \
        -parity.require-device -parity.lib "$LIB" >"$LOG/$name.txt" 2>&1
    rc=$?
    {
        echo "== $name (rc $rc): $bench"
        grep -E '^  [a-z_].*\(|Duration|DRAM Throughput|Memory Throughput|Compute \(SM\) Throughput|Achieved Occupancy|Theoretical Occupancy|Registers Per Thread|Dynamic Shared Memory Per Block|Grid Size|Block Size|Waves Per SM|Issue Slots Busy|No Eligible|Active Warps Per Scheduler|Eligible Warps Per Scheduler|L2 Hit Rate|Warp Cycles Per Issued|Executed Ipc Active|SM Busy|stalled' "$LOG/$name.txt" | head -60
    } >>"$SUM"
done
tar -czf "$OUT/profiles.tar.gz" -C "$LOG" .
cat "$SUM"
