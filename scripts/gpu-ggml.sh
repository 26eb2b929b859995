#!/usr/bin/env bash
# gpu-ggml.sh: the parity suite on llama.cpp's ggml kernels (adapters/ggml) on
# an NVIDIA GPU machine with nvcc and CMake but no Go. Where Go is, build the
# test binaries and export the pinned ggml commit, carry them along, then,
# from the repository root there:
#
#   adapters/ggml/export-ggml.sh GGML_GIT_DIR      (build/ggml-src, ~8.5 MB)
#   make gpu-bundle-cuda adapter-ggml-test         (build/parity.test, build/ggml.test)
#   bash scripts/gpu-ggml.sh PHASE...              (on the GPU machine)
#
# Phases:
#   build          CMake build of ggml with GGML_CUDA=ON for sm_90 into
#                  build/ggml-cuda, then build/libgreta_parity_ggml.so
#                  (make -f adapters/ggml/ggml.mk adapter-ggml GGML_BACKEND=cuda);
#                  stopped at GP_BUILD_CAP seconds (default 540) so that the
#                  summary comes back; the build is incremental, so running
#                  the phase again goes on where it stopped. Always first;
#                  nothing else runs without the CUDA library.
#                  (GP_GGML_BACKEND=cpu builds the CPU variant instead: a
#                  check of this script on a machine without a GPU.)
#   smoke          TestParity on tiny-k90 (engine); if the library cannot run
#                  (errors, not differences) the script stops there
#   engine         TestParity, full table (or $GP_MODELS), -parity.contract=engine
#   strict         the same under strict
#   engine-precf32, strict-precf32
#                  the full table with GRETA_GGML_PREC=f32: GGML_PREC_F32 on
#                  the projections and pv (llama.cpp's ggml_mul_mat_set_prec;
#                  f16 mat-vec and cuBLAS accumulate in f32): the A/B of the
#                  f16-accumulation findings
#   engine-diagmask  TestParity on $GP_SUBSET with GRETA_GGML_DIAG_MASK=1 (qk
#                  masked by the legacy ggml_diag_mask_inf): its finding
#   engine-cublas32  TestParity on $GP_SUBSET with GGML_CUDA_CUBLAS_COMPUTE_TYPE=f32
#                  (ggml's own switch: cuBLAS accumulates f16 weights in f32
#                  instead of CUBLAS_COMPUTE_16F): the A/B of the f16 prefill
#                  projections (docs/ENGINES.md)
#   engine-nopad   TestParity on $GP_SUBSET with GRETA_GGML_FA_PAD=0 (keys not
#                  padded to 256: ggml's flash attention takes the MMA kernel
#                  for one query too): the A/B of the vector kernel
#   rest, rest-precf32
#                  every other parity test but TestParity, TestPropertyParity
#                  and TestSoak, -parity.contract=engine (mutations under both
#                  contracts, sensitivity, determinism, bad arguments, ...)
#   properties, properties-precf32
#                  TestPropertyParity, engine, $GP_PROP_CHECKS draws
#   adapter-tests  build/ggml.test: TestGgmlKernels (the attested kernel
#                  families), TestNMSEHelper, TestGgmlNMSE on each of
#                  $GP_NMSE_CASES (test-backend-ops' NMSE per stage)
# The table phases run one model group at a time; all phases after smoke run
# concurrently and stop at GP_DEADLINE seconds after the start (default 480).
# Every table run uses -parity.expect-routes=none (ggml picks its kernels)
# and no -parity.require (no routes, no invariance capability).
#
# Output under ${OUT:-out}: summary.txt (one line per phase and group),
# build.log, logs.tgz (every log), artifacts.tgz (each run's summary.md, the
# failing cases' report.md, the debug shapes' failing traces). Exit status 0
# if every phase ran and passed.
set -u
cd "$(dirname "$0")/.." || exit 2
T0=$SECONDS
OUT=${OUT:-out}
BUILD=${BUILD:-build}
DEADLINE=${GP_DEADLINE:-480}
BUILD_CAP=${GP_BUILD_CAP:-540}
DEBUG_SHAPES=tiny-k90,tiny-gqa3,tiny-qwen,long-ctx
SUBSET=${GP_SUBSET:-$DEBUG_SHAPES,llama3-8b}
# The full table in three model groups (one summary.md each); $GP_MODELS (a
# comma list) narrows the engine/strict phases to those models.
MODEL_GROUPS=("$DEBUG_SHAPES" llama3-8b,qwen2-7b,gemma-2b llama2-7b,mistral-7b,phi3-mini)
[ -n "${GP_MODELS:-}" ] && MODEL_GROUPS=("$GP_MODELS")
PROP_CHECKS=${GP_PROP_CHECKS:-100}
NMSE_CASES=${GP_NMSE_CASES:-tiny-qwen/f16/256/normal llama3-8b/f16/129/normal llama3-8b/bf16/129/normal}
mkdir -p "$OUT" "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
OUT=$(cd "$OUT" && pwd)
LIB=$BUILD/libgreta_parity_ggml.so
PARITY=${PARITY_TEST:-$BUILD/parity.test}
GGMLTEST=${GGML_TEST:-$BUILD/ggml.test}
WORK=${GP_WORK:-/tmp/gpu-ggml}
rm -rf "$WORK" && mkdir -p "$WORK/logs" "$WORK/art"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
left() { echo $((DEADLINE - (SECONDS - T0))); }
pack_logs() { tar -czf "$OUT/logs.tgz" -C "$WORK" logs; }
command -v nvcc >/dev/null || [ ! -x /usr/local/cuda/bin/nvcc ] || export PATH=/usr/local/cuda/bin:$PATH

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    command -v nvcc >/dev/null && nvcc --version | tail -n 1
    command -v cmake >/dev/null && cmake --version | head -n 1
    echo "ggml $(cat "$BUILD/ggml-src/GGML_COMMIT" 2>/dev/null || echo 'sources missing') ($(nproc) cores)"
    git log -1 --format='tree at %h %s' 2>/dev/null
} 2>&1 | tee -a "$SUMMARY"

# build: always first (incremental; a finished build costs seconds).
t=$SECONDS
timeout "$BUILD_CAP" make -s -f adapters/ggml/ggml.mk BUILD="$BUILD" GGML_DIR="$BUILD/ggml-src" \
    GGML_BACKEND="${GP_GGML_BACKEND:-cuda}" GGML_JOBS="$(nproc)" adapter-ggml >"$WORK/logs/build.log" 2>&1
rc=$?
cp "$WORK/logs/build.log" "$OUT/build.log"
if [ "$rc" -eq 124 ]; then
    say "build: not finished after $((SECONDS - t)) s (GP_BUILD_CAP=$BUILD_CAP); run the build phase again: it goes on where it stopped"
    tail -n 5 "$WORK/logs/build.log" | tee -a "$SUMMARY"
    pack_logs
    exit 3
elif [ "$rc" -ne 0 ]; then
    say "build FAIL rc=$rc ($((SECONDS - t)) s):"
    grep -m 20 -iE 'error|not found' "$WORK/logs/build.log" | cut -c1-300 | tee -a "$SUMMARY"
    tail -n 20 "$WORK/logs/build.log" | tee -a "$SUMMARY"
    pack_logs
    exit 1
fi
say "build ok $((SECONDS - t)) s: $(basename "$LIB") ($(du -sh "$BUILD/ggml-${GP_GGML_BACKEND:-cuda}/lib" | cut -f1) of ggml libraries)"

# leaves FILE: counts of the table's leaf cases (pass fail skip) in a log.
leaves() {
    local p f s
    p=$(grep -cE -- '--- PASS: TestParity/[^/]+/[^/]+/[^/]+/[^/ ]+ ' "$1")
    f=$(grep -cE -- '--- FAIL: TestParity/[^/]+/[^/]+/[^/]+/[^/ ]+ ' "$1")
    s=$(grep -cE -- '--- SKIP: TestParity/[^/]+/[^/]+/[^/]+/[^/ ]+ ' "$1")
    echo "cases pass=$p fail=$f skip=$s"
}

# table PHASE ENV CONTRACT GROUP...: TestParity on each model group in turn,
# with ENV (VAR=value or "") in its environment.
table() {
    local phase=$1 envs=$2 ct=$3 g i=0 cap rc log t
    shift 3
    for g in "$@"; do
        i=$((i + 1))
        log=$WORK/logs/$phase-$i.log
        cap=$(left)
        if [ "$cap" -lt 10 ]; then
            say "$phase group $i ($g): not run, deadline"
            continue
        fi
        t=$SECONDS
        # shellcheck disable=SC2086 # envs is empty or one VAR=value word
        (cd parity && env $envs timeout "$cap" "$PARITY" -test.v -test.run '^TestParity$' \
            -parity.require-device -parity.lib "$LIB" -parity.contract="$ct" -parity.expect-routes=none \
            -parity.models "$g" -parity.artifacts "$WORK/art/$phase-$i") >"$log" 2>&1
        rc=$?
        say "$phase group $i ($g): rc=$rc $(leaves "$log") $((SECONDS - t)) s"
    done
}

phase() {
    local p=$1 rc log t c
    case $p in
    engine | strict)
        table "$p" "" "$p" "${MODEL_GROUPS[@]}"
        ;;
    engine-precf32 | strict-precf32)
        table "$p" GRETA_GGML_PREC=f32 "${p%-precf32}" "${MODEL_GROUPS[@]}"
        ;;
    engine-diagmask)
        table "$p" GRETA_GGML_DIAG_MASK=1 engine "$SUBSET"
        ;;
    engine-cublas32)
        table "$p" GGML_CUDA_CUBLAS_COMPUTE_TYPE=f32 engine "$SUBSET"
        ;;
    engine-nopad)
        table "$p" GRETA_GGML_FA_PAD=0 engine "$SUBSET"
        ;;
    rest | rest-precf32)
        [ "$(left)" -ge 10 ] || { say "$p: not run, deadline"; return; }
        log=$WORK/logs/$p.log t=$SECONDS
        e=""
        [ "$p" = rest-precf32 ] && e=GRETA_GGML_PREC=f32
        # shellcheck disable=SC2086 # e is empty or one VAR=value word
        (cd parity && env $e timeout "$(left)" "$PARITY" -test.v \
            -test.skip '^TestParity$|^TestPropertyParity$|^TestSoak$' -parity.require-device \
            -parity.lib "$LIB" -parity.expect-routes=none -parity.contract=engine \
            -parity.artifacts "$WORK/art/$p") >"$log" 2>&1
        rc=$?
        say "$p rc=$rc pass=$(grep -c -- '--- PASS' "$log") fail=$(grep -c -- '--- FAIL' "$log") skip=$(grep -c -- '--- SKIP' "$log") $((SECONDS - t)) s"
        ;;
    properties | properties-precf32)
        [ "$(left)" -ge 10 ] || { say "$p: not run, deadline"; return; }
        log=$WORK/logs/$p.log t=$SECONDS
        e=""
        [ "$p" = properties-precf32 ] && e=GRETA_GGML_PREC=f32
        # shellcheck disable=SC2086 # e is empty or one VAR=value word
        (cd parity && env $e timeout "$(left)" "$PARITY" -test.v -test.run '^TestPropertyParity$' \
            -parity.require-device -parity.lib "$LIB" -parity.expect-routes=none -parity.contract=engine \
            -rapid.checks "$PROP_CHECKS" -parity.artifacts "$WORK/art/$p") >"$log" 2>&1
        say "$p rc=$? ($PROP_CHECKS checks, engine) $((SECONDS - t)) s: $(grep -o '\[rapid\] .*' "$log" | tail -n 1)"
        ;;
    adapter-tests)
        [ "$(left)" -ge 10 ] || { say "adapter-tests: not run, deadline"; return; }
        log=$WORK/logs/kernels.log t=$SECONDS
        (cd adapters/ggml/ggmltest && timeout "$(left)" "$GGMLTEST" -test.v \
            -test.run '^(TestGgmlKernels|TestNMSEHelper)$' -ggml.lib "$LIB") >"$log" 2>&1
        say "kernels rc=$? $((SECONDS - t)) s"
        for c in $NMSE_CASES; do
            [ "$(left)" -ge 10 ] || { say "nmse $c: not run, deadline"; continue; }
            log=$WORK/logs/nmse-${c//\//_}.log t=$SECONDS
            (cd adapters/ggml/ggmltest && timeout "$(left)" "$GGMLTEST" -test.v \
                -test.run '^TestGgmlNMSE$' -ggml.lib "$LIB" -ggml.nmse-case "$c") >"$log" 2>&1
            say "nmse $c rc=$? $((SECONDS - t)) s"
        done
        ;;
    build) ;;
    *)
        say "unknown phase $p"
        ;;
    esac
}

# The smoke phase gates the rest: a library that cannot run (load errors,
# kernel errors) stops the script instead of spending the deadline.
phases=()
for p in "$@"; do
    if [ "$p" = smoke ]; then
        log=$WORK/logs/smoke.log t=$SECONDS
        (cd parity && timeout 120 "$PARITY" -test.v -test.run '^TestParity$' \
            -parity.require-device -parity.lib "$LIB" -parity.contract=engine -parity.expect-routes=none \
            -parity.models tiny-k90 -parity.artifacts "$WORK/art/smoke") >"$log" 2>&1
        rc=$?
        say "smoke rc=$rc $(leaves "$log") $((SECONDS - t)) s"
        errs=$(grep -cE 'status [0-9]+ \(|cannot load|library not found|ABI mismatch|panic:' "$log")
        if [ "$errs" -gt 0 ] || ! grep -qE -- '--- PASS: TestParity/' "$log"; then
            say "smoke: the library does not run ($errs error lines); stopping:"
            grep -m 20 -E 'status [0-9]+ \(|cannot load|library not found|ABI mismatch|panic:' "$log" | cut -c1-300 | tee -a "$SUMMARY"
            pack_logs
            exit 1
        fi
    else
        phases+=("$p")
    fi
done
for p in "${phases[@]}"; do
    phase "$p" &
done
wait

# What comes back: the logs, each run's summary.md, and of each run's
# failing cases the first 40 reports and the first 4 debug-shape traces
# (a run of a thousand failures would not fit what the machine returns;
# the logs hold every failure's first divergence and rerun command).
pack_logs
(cd "$WORK" && {
    find art -name summary.md
    for d in art/*/; do
        find "$d" -name report.md | sort | head -n 40
        find "$d" -name trace.jsonl -size -3M \( -path '*tiny*' -o -path '*long-ctx*' \) | sort | head -n 4
    done
} | tar -czf "$OUT/artifacts.tgz" -T -)
say "total $((SECONDS - T0)) s; $(ls -s "$OUT" | tr '\n' ' ')"
grep -qE 'FAIL|rc=[1-9]|not run' "$SUMMARY" && exit 1
exit 0
