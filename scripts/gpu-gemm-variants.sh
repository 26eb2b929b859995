#!/bin/bash
# gpu-gemm-variants.sh: build the MFMA-route GEMM (kernels/hip/gemm_mfma.hip) in
# several compile-time tiles, check each against the parity suite and
# benchmark it against cuBLAS, in one GPU call. Run from the repo root on the
# GPU machine, with nvcc on PATH and the Go test binary at build/parity.test:
#     bash scripts/gpu-gemm-variants.sh
# $OUT (default out) gets summary.txt plus at most 4 logs; other logs go to
# /tmp/gemm-variants. Stops starting new variants once $SECONDS passes 480.
set -u
OUT=${OUT:-out}
mkdir -p "$OUT" /tmp/gemm-variants
LOG=/tmp/gemm-variants
SUM="$OUT/summary.txt"
: >"$SUM"
ROOT=$(pwd)

# NAME, make variables and -D flags: the default first (the anchor of the
# comparison; the first variant that runs gets the full parity run), then the
# candidates; at most MAX_VARIANTS (5) run, the rest are listed as skipped.
# Arguments, when given, name the variants to run (in the table's order).
# CUDA_ARCH=sm_90a builds the warpgroup (wgmma) tile; the others mma.sync.
VARIANTS=(
    "default||"
    "wg|CUDA_ARCH=sm_90a|"
    "wgwide12k|CUDA_ARCH=sm_90a|-DGEMM_WG_WIDE_N=12000"
    "wg128s4|CUDA_ARCH=sm_90a|-DGEMM_WG_STAGES_128=4"
    "wg256s3|CUDA_ARCH=sm_90a|-DGEMM_WG_STAGES_256=3"
    "wgall256|CUDA_ARCH=sm_90a|-DGEMM_WG_WIDE_N=1"
    "wgall128|CUDA_ARCH=sm_90a|-DGEMM_WG_WIDE_N=1000000"
    "bk32s3||-DGEMM_ROW_BYTES=64 -DGP_PIPE_STAGES=3"
    "n256bk64||-DGEMM_BN=256 -DGP_PIPE_STAGES=3"
    "m256s3||-DGEMM_BM=256 -DGEMM_WAVES_M=4 -DGP_PIPE_STAGES=3"
)
if [ $# -gt 0 ]; then
    want=" $* "
    sel=()
    for v in "${VARIANTS[@]}"; do
        [[ "$want" == *" ${v%%|*} "* ]] && sel+=("$v")
    done
    VARIANTS=("${sel[@]}")
fi
FULL_RUN='^(TestParity|TestChunkedPrefill|TestBatchedDecode)$'
SHORT_RUN='^TestParity$/^(tiny-k90|tiny-gqa3)$'
MAX_VARIANTS=${MAX_VARIANTS:-5}
# BENCH (environment) replaces the benchmark selection; FIRST_FULL=0 gives
# the first variant the short parity run too.
BENCH=${BENCH:-'BenchmarkLinear/llama3-8b\.(q_proj|mlp_up|mlp_down)/./M=(512|2048)$'}

echo "gemm variants on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)" >>"$SUM"
# room_for_log: at most 6 files under $OUT (summary.txt + 5 logs).
room_for_log() { [ "$(ls "$OUT" | wc -l)" -lt 6 ]; }
count=0
for v in "${VARIANTS[@]}"; do
    IFS='|' read -r name makevars flags <<<"$v"
    count=$((count + 1))
    if [ "$SECONDS" -gt 480 ] || [ "$count" -gt "$MAX_VARIANTS" ]; then
        echo "== $name: skipped (t=${SECONDS}s, variant $count of max $MAX_VARIANTS): $flags" >>"$SUM"
        continue
    fi
    echo "== $name: ${makevars:-} ${flags:-(defaults)}  (t=${SECONDS}s)" >>"$SUM"
    b="build-v/$name"
    lib="$ROOT/$b/libgreta_parity_cuda.so"
    if ! make -j16 BUILD="$b" kernels-cuda $makevars NVCC_FLAGS="-O2 -Xptxas -v $flags" >"$LOG/$name.build.log" 2>&1; then
        echo "  BUILD FAILED:" >>"$SUM"
        grep -E "error|static assertion" "$LOG/$name.build.log" | head -5 | sed 's/^/    /' >>"$SUM"
        room_for_log && tail -c 20000 "$LOG/$name.build.log" >"$OUT/$name.build.log"
        continue
    fi
    # ptxas: registers and spills of each gemm_tile_kernel<DT> (0 f32, 1 f16, 2 bf16).
    awk '/Compiling entry function .*gemm_(tile|wgmma)_kernelILi/ {match($0, /ILi[0-9]/); dt=substr($0, RSTART+3, 1); on=1; next}
         on && /spill stores/ {sp=$0; sub(/^[ \t]*/, "", sp)}
         on && /Used [0-9]+ registers/ {r=$0; sub(/.*Used /, "", r); sub(/ registers.*/, "", r);
             n=(dt=="0"?"f32":(dt=="1"?"f16":"bf16")); printf "  ptxas %-4s %s regs; %s\n", n, r, sp; on=0}' \
        "$LOG/$name.build.log" >>"$SUM"
    run=$SHORT_RUN
    [ "$count" = 1 ] && [ "${FIRST_FULL:-1}" = 1 ] && run=$FULL_RUN # the first variant run: the full check
    (cd parity && timeout 150 ../build/parity.test -parity.require-device -parity.require=all \
        -parity.lib "$lib" -parity.models tiny-k90,tiny-gqa3,tiny-qwen,long-ctx \
        -test.run "$run") >"$LOG/$name.parity.log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        echo "  parity ($run): ok" >>"$SUM"
    else
        echo "  parity ($run): FAIL rc=$rc" >>"$SUM"
        grep -E -- '--- FAIL|panic|Error' "$LOG/$name.parity.log" | head -8 | sed 's/^/    /' >>"$SUM"
        room_for_log && tail -c 20000 "$LOG/$name.parity.log" >"$OUT/$name.parity.log"
    fi
    (cd parity && timeout 120 ../build/parity.test -parity.require-device -parity.lib "$lib" \
        -test.run '^$' -test.bench "$BENCH" -test.benchtime 100ms) >"$LOG/$name.bench.log" 2>&1
    brc=$?
    # one row per benchmark: mfma (with %vendor) and the cuBLAS anchor (blas).
    awk '/^BenchmarkLinear\/.*\/(mfma|blas)/ {
            split($1, p, "/"); tf=""; pv="";
            for (i = 2; i <= NF; i++) { if ($i == "TFLOP/s") tf = $(i-1); if ($i == "%vendor") pv = $(i-1) }
            sub(/-[0-9]+$/, "", p[5]);
            printf "  %-30s %-5s %-7s %-5s %8s TFLOP/s %6s %%vendor\n", p[2], p[3], p[4], p[5], tf, pv }' \
        "$LOG/$name.bench.log" >>"$SUM"
    if [ $brc -ne 0 ]; then
        echo "  bench FAILED rc=$brc:" >>"$SUM"
        grep -E -- '--- FAIL|panic|Error|error' "$LOG/$name.bench.log" | head -5 | sed 's/^/    /' >>"$SUM"
        room_for_log && tail -c 20000 "$LOG/$name.bench.log" >"$OUT/$name.bench.log"
    fi
done
echo "done in ${SECONDS}s; logs in $LOG" >>"$SUM"
cat "$SUM"
