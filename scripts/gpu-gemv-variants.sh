#!/bin/bash
# gpu-gemv-variants.sh: build the VALU-route decode GEMV (kernels/hip/gemv_valu.hip)
# in several compile-time geometries (GEMV_WAVES, GEMV_ROWS, GEMV_UNROLL,
# GEMV_PREFETCH, GEMV_MIN_BLOCKS), check each against the parity suite and the
# GEMV faults, and benchmark it at M = 1 against the copy rate and cuBLAS, in
# one GPU call. Run from the repo root on the GPU machine, with nvcc on PATH
# and the Go test binary at build/parity.test (make gpu-bundle-cuda):
#     bash scripts/gpu-gemv-variants.sh
# $OUT (default out) gets summary.txt plus at most 5 logs; other logs go to
# /tmp/gemv-variants. Stops starting new variants once $SECONDS passes
# START_LIMIT (default 400), so that the call ends within about 480 s.
# Only gemv_valu.o differs between variants: the default's other objects are
# copied into each variant's build directory and only the GEMV is recompiled.
set -u
OUT=${OUT:-out}
mkdir -p "$OUT" /tmp/gemv-variants
LOG=/tmp/gemv-variants
SUM="$OUT/summary.txt"
: >"$SUM"
ROOT=$(pwd)

# NAME and -D flags: the default first (the anchor of the comparison, and the
# only one with the full parity run), then the candidates; at most
# MAX_VARIANTS run, the rest are listed as skipped. GEMV_VARIANTS replaces
# the candidates: "name|flags;name|flags" (the default still runs first).
VARIANTS=(
    "default|"
    "r2p|-DGEMV_ROWS=2 -DGEMV_PREFETCH=1"
    "u8|-DGEMV_UNROLL=8"
    "p1|-DGEMV_PREFETCH=1"
    "r2|-DGEMV_ROWS=2"
    "w8|-DGEMV_WAVES=8"
    "w8r2u8|-DGEMV_WAVES=8 -DGEMV_ROWS=2 -DGEMV_UNROLL=8"
    "r4|-DGEMV_ROWS=4"
    "u16|-DGEMV_UNROLL=16"
)
if [ -n "${GEMV_VARIANTS:-}" ]; then
    IFS=';' read -r -a extra <<<"$GEMV_VARIANTS"
    VARIANTS=("default|" "${extra[@]}")
fi
FULL_RUN='^(TestParity|TestChunkedPrefill|TestBatchedDecode)$'
SHORT_RUN='^TestParity$/^(tiny-k90|tiny-gqa3)$'
# The decode-GEMV faults must still be caught (gp_linear's flags).
MUT_RUN='^TestMutations$/^(gemv_f16_acc|splitk_drop_tail|gemv_skip_last_k_tile)$/^tiny-k90$'
MAX_VARIANTS=${MAX_VARIANTS:-${#VARIANTS[@]}}
START_LIMIT=${START_LIMIT:-400}
# M = 1: the VALU route and the cuBLAS anchor (%vendor) of every projection.
BENCH='BenchmarkLinear/.*(q_proj|kv_proj|mlp_up|mlp_down)/./M=1$/(valu|blas)$'

echo "gemv variants on $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)" >>"$SUM"
# room_for_log: at most 6 files under $OUT (summary.txt + 5 logs).
room_for_log() { [ "$(ls "$OUT" | wc -l)" -lt 6 ]; }
count=0
for v in "${VARIANTS[@]}"; do
    name=${v%%|*}
    flags=${v#*|}
    count=$((count + 1))
    if [ "$SECONDS" -gt "$START_LIMIT" ] || [ "$count" -gt "$MAX_VARIANTS" ]; then
        echo "== $name: skipped (t=${SECONDS}s, variant $count of max $MAX_VARIANTS): $flags" >>"$SUM"
        continue
    fi
    echo "== $name: ${flags:-(defaults)}  (t=${SECONDS}s)" >>"$SUM"
    b="build-v/gemv-$name"
    lib="$ROOT/$b/libgreta_parity_cuda.so"
    if [ "$name" != default ] && [ -d build-v/gemv-default/cuda-obj ]; then
        rm -rf "$b" && mkdir -p "$b/cuda-obj"
        cp -p build-v/gemv-default/cuda-obj/*.o "$b/cuda-obj/" && rm -f "$b/cuda-obj/gemv_valu.o"
    fi
    if ! make -j16 BUILD="$b" kernels-cuda NVCC_FLAGS="-O2 -Xptxas -v $flags" >"$LOG/$name.build.log" 2>&1; then
        echo "  BUILD FAILED:" >>"$SUM"
        grep -E "error|static assertion" "$LOG/$name.build.log" | head -5 | sed 's/^/    /' >>"$SUM"
        room_for_log && tail -c 20000 "$LOG/$name.build.log" >"$OUT/$name.build.log"
        continue
    fi
    # ptxas: registers and spills of each gemv_splitk_kernel<DT, F16ACC>
    # (0 f32, 1 f16, 2 bf16; only the clean kernels, F16ACC = false).
    awk '/Compiling entry function .*gemv_splitk_kernelILi[0-9]ELb0/ {match($0, /ILi[0-9]/); dt=substr($0, RSTART+3, 1); on=1; next}
         on && /spill stores/ {sp=$0; sub(/^[ \t]*/, "", sp)}
         on && /Used [0-9]+ registers/ {r=$0; sub(/.*Used /, "", r); sub(/ registers.*/, "", r);
             n=(dt=="0"?"f32":(dt=="1"?"f16":"bf16")); printf "  ptxas %-4s %s regs; %s\n", n, r, sp; on=0}' \
        "$LOG/$name.build.log" >>"$SUM"
    run=$SHORT_RUN
    [ "$name" = default ] && run=$FULL_RUN
    (cd parity && timeout 150 ../build/parity.test -parity.require-device -parity.require=all \
        -parity.lib "$lib" -parity.models tiny-k90,tiny-gqa3,tiny-qwen,long-ctx \
        -test.run "$run" && timeout 60 ../build/parity.test -parity.require-device \
        -parity.lib "$lib" -test.run "$MUT_RUN") >"$LOG/$name.parity.log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
        echo "  parity ($run; $MUT_RUN): ok" >>"$SUM"
    else
        echo "  parity ($run; $MUT_RUN): FAIL rc=$rc" >>"$SUM"
        grep -E -- '--- FAIL|panic|Error' "$LOG/$name.parity.log" | head -8 | sed 's/^/    /' >>"$SUM"
        room_for_log && tail -c 20000 "$LOG/$name.parity.log" >"$OUT/$name.parity.log"
    fi
    (cd parity && timeout 120 ../build/parity.test -parity.require-device -parity.lib "$lib" \
        -test.run '^$' -test.bench "$BENCH" -test.benchtime 100ms) >"$LOG/$name.bench.log" 2>&1
    brc=$?
    # one row per benchmark: valu (with %copy and %vendor) and the cuBLAS anchor (blas).
    awk '/^BenchmarkLinear\/.*\/(valu|blas)/ {
            split($1, p, "/"); ns=""; gb=""; pc=""; pv="";
            for (i = 2; i <= NF; i++) {
                if ($i == "ns/op") ns = $(i-1); if ($i == "GB/s") gb = $(i-1)
                if ($i == "%copy") pc = $(i-1); if ($i == "%vendor") pv = $(i-1) }
            sub(/-[0-9]+$/, "", p[5]);
            printf "  %-30s %-5s %-5s %8.2f us %7s GB/s %6s %%copy %6s %%vendor\n", p[2], p[3], p[5], ns / 1000, gb, pc, pv }' \
        "$LOG/$name.bench.log" >>"$SUM"
    if [ $brc -ne 0 ]; then
        echo "  bench FAILED rc=$brc:" >>"$SUM"
        grep -E -- '--- FAIL|panic|Error|error' "$LOG/$name.bench.log" | head -5 | sed 's/^/    /' >>"$SUM"
        room_for_log && tail -c 20000 "$LOG/$name.bench.log" >"$OUT/$name.bench.log"
    fi
done
echo "done in ${SECONDS}s; logs in $LOG" >>"$SUM"
cat "$SUM"
