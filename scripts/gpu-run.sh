#!/usr/bin/env bash
# gpu-run.sh: what the NVIDIA GPU machine runs (nvcc, gcc, CUDA, compute-sanitizer;
# no Go, no network), from the repository root:
#
#   1. build the CUDA library      make kernels-cuda (or the nvcc line if make is missing)
#   2. build the C ABI self-test   gcc kernels/tests/abi_selftest.c
#   3. run the self-test           against build/libgreta_parity_cuda.so
#   4. run it under compute-sanitizer: memcheck, then racecheck and initcheck
#      while the time budget allows (GP_RUN_BUDGET seconds in all, default 210;
#      GP_SAN_CAP seconds per tool at most, default 60; GP_PARITY_RESERVE
#      seconds kept for step 5 when build/parity.test exists, default 60)
#      (GP_SANITIZE=0 skips this step)
#   5. run build/parity.test if it exists (built elsewhere, carried along) with
#      -test.v -parity.require-device -parity.lib <lib> and this script's arguments;
#      GP_SHARDS=N (or "gpus": one per visible GPU) runs N processes at once,
#      process i on GPU i mod (visible GPUs) through CUDA_VISIBLE_DEVICES with
#      -parity.shard=i/N, which splits TestParity's matrix (other tests run in
#      every process: select TestParity with -test.run '^TestParity$')
#
# Every log and summary.txt go to ${OUT:-out}/ (at most 8 files); a short table
# is printed last. Exit status: 0 if every step that ran passed.
#
#   bash scripts/gpu-run.sh [extra parity.test flags...]
set -u
cd "$(dirname "$0")/.." || exit 2

OUT=${OUT:-out}
BUILD=${BUILD:-build}
BUDGET=${GP_RUN_BUDGET:-210}
SAN_CAP=${GP_SAN_CAP:-60}
RESERVE=0
[ -x "$BUILD/parity.test" ] && RESERVE=${GP_PARITY_RESERVE:-60}
mkdir -p "$OUT" "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
LIB=$BUILD/libgreta_parity_cuda.so
SELFTEST=$BUILD/abi_selftest
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
ROWS=()
FAILED=0

# row STEP RESULT DETAIL: one line of the final table.
row() {
    ROWS+=("$(printf '%-12s %-6s %s' "$1" "$2" "$3")")
    [ "$2" = FAIL ] && FAILED=1
    return 0
}
left() { echo $((BUDGET - SECONDS)); }
# Keeps a log under 4 MB so it comes back.
cap_log() { [ -f "$1" ] && [ "$(stat -c %s "$1")" -gt 4000000 ] && truncate -s 4000000 "$1"; return 0; }

{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(uname -srm)"
    command -v nvidia-smi >/dev/null &&
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    command -v nvcc >/dev/null && nvcc --version | tail -n 2
    command -v compute-sanitizer >/dev/null && compute-sanitizer --version | tail -n 1
} >>"$SUMMARY" 2>&1
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)

# ---- 1. library ----
t0=$SECONDS
if command -v make >/dev/null; then
    make -j"$(nproc 2>/dev/null || echo 4)" BUILD="$BUILD" kernels-cuda >"$OUT/build.log" 2>&1
    rc=$?
else
    srcs=$(ls kernels/hip/*.hip | sort)
    (set -x; nvcc -O2 -arch="${CUDA_ARCH:-sm_90}" -fmad=false -x cu -Xcompiler -fPIC -shared \
        -Ikernels/include -Ikernels/common -Ikernels/hip \
        -DGP_TARGET_NAME="\"${CUDA_ARCH:-sm_90}\"" $srcs kernels/common/gp_common.c \
        -o "$LIB") >"$OUT/build.log" 2>&1
    rc=$?
fi
if [ $rc -eq 0 ] && [ -f "$LIB" ]; then
    row build ok "$(basename "$LIB") in $((SECONDS - t0)) s"
else
    row build FAIL "rc=$rc, see build.log"
fi

# ---- 2./3. self-test ----
selftest_ok=0
if [ ! -f kernels/tests/abi_selftest.c ]; then
    row selftest skip "kernels/tests/abi_selftest.c missing"
elif [ ! -f "$LIB" ]; then
    row selftest skip "no library"
elif ! { if command -v make >/dev/null; then make BUILD="$BUILD" "$SELFTEST"; else
    gcc -std=c11 -O2 -g -Wall -Wextra -Ikernels/include -Ikernels/common \
        kernels/tests/abi_selftest.c -o "$SELFTEST" -ldl -lm; fi; } >"$OUT/selftest.log" 2>&1; then
    row selftest FAIL "gcc failed, see selftest.log"
else
    t0=$SECONDS
    timeout $(($(left) > 30 ? $(left) - 20 : 10)) "$SELFTEST" "$LIB" >>"$OUT/selftest.log" 2>&1
    rc=$?
    cap_log "$OUT/selftest.log"
    last=$(grep -v '^[[:space:]]*$' "$OUT/selftest.log" | tail -n 1 | cut -c1-90)
    if [ $rc -eq 0 ]; then
        selftest_ok=1
        row selftest ok "$((SECONDS - t0)) s: $last"
    else
        row selftest FAIL "rc=$rc: $last"
    fi
fi

# ---- 4. compute-sanitizer ----
# sanitize TOOL: runs the self-test under the tool; the row gives its error count.
sanitize() {
    local tool=$1 log=$OUT/sanitizer-$1.log t0=$SECONDS rc n cap
    cap=$(($(left) - RESERVE - 10))
    [ "$cap" -gt "$SAN_CAP" ] && cap=$SAN_CAP
    timeout "$cap" compute-sanitizer --tool "$tool" --error-exitcode 99 \
        "$SELFTEST" "$LIB" >"$log" 2>&1
    rc=$?
    cap_log "$log"
    # memcheck/initcheck: "ERROR SUMMARY: N errors"; racecheck: "RACECHECK
    # SUMMARY: H hazards displayed (N errors, W warnings)".
    n=$(grep -o 'ERROR SUMMARY: [0-9]* error\|SUMMARY: .*(\([0-9]*\) error' "$log" | tail -n 1 |
        sed 's/.*[:(] *\([0-9]*\) error.*/\1/')
    if [ $rc -eq 124 ]; then
        row "$tool" FAIL "timed out after $((SECONDS - t0)) s (errors so far: ${n:-?})"
    elif [ "${n:-x}" = 0 ] && [ $rc -ne 99 ]; then
        row "$tool" ok "0 errors, $((SECONDS - t0)) s (self-test rc=$rc)"
    else
        row "$tool" FAIL "${n:-?} errors, rc=$rc, see $(basename "$log")"
    fi
}
if [ "${GP_SANITIZE:-1}" = 0 ]; then
    row sanitizer skip "GP_SANITIZE=0"
elif ! command -v compute-sanitizer >/dev/null; then
    row sanitizer skip "compute-sanitizer not on PATH"
elif [ ! -x "$SELFTEST" ]; then
    row sanitizer skip "no self-test binary"
else
    for tool in memcheck racecheck initcheck; do
        if [ $(($(left) - RESERVE)) -lt 40 ]; then
            row "$tool" skip "time budget ($BUDGET s) spent"
            continue
        fi
        sanitize "$tool"
    done
fi

# ---- 5. Go parity suite (optional) ----
# GPUs for the shards: CUDA_VISIBLE_DEVICES's list if set, else 0..count-1.
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    IFS=, read -r -a GPUS <<<"$CUDA_VISIBLE_DEVICES"
else
    mapfile -t GPUS < <(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null)
fi
[ "${#GPUS[@]}" -gt 0 ] || GPUS=(0)
SHARDS=${GP_SHARDS:-1}
[ "$SHARDS" = gpus ] && SHARDS=${#GPUS[@]}
case $SHARDS in '' | *[!0-9]* | 0) SHARDS=1 ;; esac
if [ -x "$BUILD/parity.test" ] && [ -f "$LIB" ]; then
    t0=$SECONDS
    budget=$(($(left) > 20 ? $(left) : 20))
    # A Go test binary runs in its package directory (testdata/ is relative).
    if [ "$SHARDS" -eq 1 ]; then
        (cd parity && timeout "$budget" "$BUILD/parity.test" -test.v \
            -parity.require-device -parity.lib "$LIB" "$@") >"$OUT/parity.log" 2>&1
        rc=$?
        where=""
    else
        pids=() where=" ($SHARDS shards on GPUs"
        for ((i = 0; i < SHARDS; i++)); do
            gpu=${GPUS[i % ${#GPUS[@]}]}
            where+=" $gpu"
            (cd parity && CUDA_VISIBLE_DEVICES=$gpu timeout "$budget" "$BUILD/parity.test" -test.v \
                -parity.require-device -parity.lib "$LIB" "$@" -parity.shard="$i/$SHARDS") \
                >"$BUILD/parity-shard$i.log" 2>&1 &
            pids+=($!)
        done
        rc=0
        : >"$OUT/parity.log"
        for ((i = 0; i < SHARDS; i++)); do
            wait "${pids[i]}"
            r=$?
            [ $r -eq 0 ] || rc=$r
            { echo "=== gpu-run: shard $i/$SHARDS on GPU ${GPUS[i % ${#GPUS[@]}]}: rc=$r"; cat "$BUILD/parity-shard$i.log"; } >>"$OUT/parity.log"
        done
        where+=")"
    fi
    cap_log "$OUT/parity.log"
    pass=$(grep -c -- '^--- PASS\|^    --- PASS' "$OUT/parity.log")
    fail=$(grep -c -- '--- FAIL' "$OUT/parity.log")
    if [ $rc -eq 0 ]; then
        row parity ok "$pass passed, $((SECONDS - t0)) s$where"
    else
        row parity FAIL "rc=$rc, $fail failed, $pass passed, see parity.log$where"
    fi
else
    row parity skip "$BUILD/parity.test not present"
fi

{
    echo
    echo "card: ${CARD:-unknown}   lib: $LIB   total: $SECONDS s"
    printf '%-12s %-6s %s\n' step result detail
    for r in "${ROWS[@]}"; do echo "$r"; done
} | tee -a "$SUMMARY"
exit $FAILED
