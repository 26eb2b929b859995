#!/usr/bin/env bash
# gpu-torch.sh: the parity suite on PyTorch's kernels (adapters/torch) on an
# NVIDIA GPU machine with PyTorch and nvcc but no Go. Build the test binaries
# elsewhere and carry them along, then, from the repository root there:
#
#   make gpu-bundle-cuda adapter-torch-test      (where Go is: build/parity.test, build/torch.test)
#   bash scripts/gpu-torch.sh PHASE...           (on the GPU machine)
#
# The adapter is built first (make -f adapters/torch/torch.mk adapter-torch:
# g++ against the python3 torch) unless it exists. Phases (GRETA_TORCH_SDPA = the phase's backend):
#   probe             versions, and the LSE layout and base of SDPA's flash
#                     and efficient kernels against float64 (sdpa_probe.py)
#   smoke             TestParity on tiny-k90 (engine, flash); if it cannot run
#                     (errors, not differences) the script stops there
#   BACKEND-CONTRACT  TestParity, full table (every model, S, dtype), with
#                     GRETA_TORCH_SDPA=BACKEND (flash, efficient, math,
#                     cudnn) and -parity.contract=CONTRACT (engine, strict),
#                     e.g. flash-engine, cudnn-strict; $GP_MODELS (a comma
#                     list) narrows it to those models
#   rest              every other parity test but TestParity,
#                     TestPropertyParity and TestSoak, -parity.contract=engine (mutations under both
#                     contracts, sensitivity, determinism, bad arguments, ...)
#   adapter-tests     build/torch.test: TestTorchSensitivity (flash, then
#                     efficient) and TestTorchProperties (engine, flash,
#                     $GP_PROP_CHECKS checks, not drawing $GP_PROP_EXCLUDE)
# The named phases run concurrently (the float64 references keep the host's
# cores busy; the GPU is shared), each TestParity phase one model group at
# a time, so that a phase cut short by the deadline keeps the summary.md of
# its finished groups. Every phase stops at GP_DEADLINE seconds after the
# start (default 420). All runs use -parity.expect-routes=none (PyTorch has
# its own kernel choice) and no -parity.require (the adapter has no routes
# and no invariance capability; TestParity skips the forced-route columns).
#
# Output under ${OUT:-out}: summary.txt (one line per phase and group),
# probe.log, logs.tgz (every log), artifacts.tgz (each run's summary.md,
# the failing cases' report.md, and the trace.jsonl of the debug shapes'
# failing cases). Exit status 0 if every phase ran and passed.
set -u
cd "$(dirname "$0")/.." || exit 2
T0=$SECONDS
OUT=${OUT:-out}
BUILD=${BUILD:-build}
DEADLINE=${GP_DEADLINE:-420}
DEBUG_SHAPES=tiny-k90,tiny-gqa3,tiny-qwen,long-ctx
# The full table in three model groups (one summary.md each).
MODEL_GROUPS=("$DEBUG_SHAPES" llama3-8b,qwen2-7b,gemma-2b llama2-7b,mistral-7b,phi3-mini)
[ -n "${GP_MODELS:-}" ] && MODEL_GROUPS=("$GP_MODELS")
PROP_CHECKS=${GP_PROP_CHECKS:-100}
PROP_EXCLUDE=${GP_PROP_EXCLUDE:-f16/large_qk}
mkdir -p "$OUT" "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
OUT=$(cd "$OUT" && pwd)
LIB=$BUILD/libgreta_parity_torch.so
PARITY=${PARITY_TEST:-$BUILD/parity.test}
TORCHTEST=${TORCH_TEST:-$BUILD/torch.test}
WORK=${GP_WORK:-/tmp/gpu-torch}
rm -rf "$WORK" && mkdir -p "$WORK/logs" "$WORK/art"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
say() { echo "$*" | tee -a "$SUMMARY"; }
left() { echo $((DEADLINE - (SECONDS - T0))); }

{
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    command -v nvcc >/dev/null && nvcc --version | tail -n 1
    python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
    git log -1 --format='tree at %h %s' 2>/dev/null
} 2>&1 | tee -a "$SUMMARY"

if [ ! -f "$LIB" ]; then
    t=$SECONDS
    # torch.mk alone: the adapter's build needs nothing else of the Makefile.
    if ! make -s -f adapters/torch/torch.mk BUILD="$BUILD" adapter-torch >"$WORK/logs/build.log" 2>&1; then
        say "build FAIL ($((SECONDS - t)) s):"
        tail -n 30 "$WORK/logs/build.log" | tee -a "$SUMMARY"
        tar -czf "$OUT/logs.tgz" -C "$WORK" logs
        exit 1
    fi
    say "build ok $((SECONDS - t)) s: $(basename "$LIB")"
fi

# leaves FILE: counts of the table's leaf cases (pass fail skip) in a log.
leaves() {
    local p f s
    p=$(grep -cE -- '--- PASS: TestParity/[^/]+/[^/]+/[^/]+/[^/ ]+ ' "$1")
    f=$(grep -cE -- '--- FAIL: TestParity/[^/]+/[^/]+/[^/]+/[^/ ]+ ' "$1")
    s=$(grep -cE -- '--- SKIP: TestParity/[^/]+/[^/]+/[^/]+/[^/ ]+ ' "$1")
    echo "cases pass=$p fail=$f skip=$s"
}

# table PHASE SDPA CONTRACT GROUP...: TestParity on each model group in turn.
table() {
    local phase=$1 sdpa=$2 ct=$3 g i=0 cap rc log t
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
        (cd parity && GRETA_TORCH_SDPA=$sdpa timeout "$cap" "$PARITY" -test.v -test.run '^TestParity$' \
            -parity.require-device -parity.lib "$LIB" -parity.contract="$ct" -parity.expect-routes=none \
            -parity.models "$g" -parity.artifacts "$WORK/art/$phase-$i") >"$log" 2>&1
        rc=$?
        say "$phase group $i ($g): rc=$rc $(leaves "$log") $((SECONDS - t)) s"
    done
}

phase() {
    local p=$1 rc log t
    case $p in
    probe)
        timeout 60 python3 adapters/torch/sdpa_probe.py >"$OUT/probe.log" 2>&1
        say "probe rc=$? (probe.log)"
        ;;
    flash-engine | flash-strict | efficient-engine | efficient-strict | math-engine | math-strict | cudnn-engine | cudnn-strict)
        table "$p" "${p%-*}" "${p#*-}" "${MODEL_GROUPS[@]}"
        ;;
    rest)
        [ "$(left)" -ge 10 ] || { say "rest: not run, deadline"; return; }
        log=$WORK/logs/rest.log t=$SECONDS
        (cd parity && GRETA_TORCH_SDPA=flash timeout "$(left)" "$PARITY" -test.v \
            -test.skip '^TestParity$|^TestPropertyParity$|^TestSoak$' -parity.require-device \
            -parity.lib "$LIB" -parity.expect-routes=none -parity.contract=engine \
            -parity.artifacts "$WORK/art/rest") >"$log" 2>&1
        rc=$?
        say "rest rc=$rc pass=$(grep -c -- '--- PASS' "$log") fail=$(grep -c -- '--- FAIL' "$log") skip=$(grep -c -- '--- SKIP' "$log") $((SECONDS - t)) s"
        ;;
    adapter-tests)
        for sd in flash efficient; do
            [ "$(left)" -ge 10 ] || { say "sensitivity-$sd: not run, deadline"; continue; }
            log=$WORK/logs/sensitivity-$sd.log t=$SECONDS
            (cd adapters/torch/torchtest && GRETA_TORCH_SDPA=$sd timeout "$(left)" "$TORCHTEST" -test.v \
                -test.run '^TestTorchSensitivity$' -torch.lib "$LIB") >"$log" 2>&1
            say "sensitivity-$sd rc=$? $((SECONDS - t)) s"
        done
        [ "$(left)" -ge 10 ] || { say "properties: not run, deadline"; return; }
        log=$WORK/logs/properties.log t=$SECONDS
        (cd adapters/torch/torchtest && GRETA_TORCH_SDPA=flash timeout "$(left)" "$TORCHTEST" -test.v \
            -test.run '^TestTorchProperties$' -torch.lib "$LIB" -torch.contract engine \
            -torch.exclude "$PROP_EXCLUDE" -rapid.checks "$PROP_CHECKS") >"$log" 2>&1
        say "properties rc=$? ($PROP_CHECKS checks, engine, not drawn: $PROP_EXCLUDE) $((SECONDS - t)) s: $(grep -o '\[rapid\] .*' "$log" | tail -n 1)"
        ;;
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
        (cd parity && GRETA_TORCH_SDPA=flash timeout 120 "$PARITY" -test.v -test.run '^TestParity$' \
            -parity.require-device -parity.lib "$LIB" -parity.contract=engine -parity.expect-routes=none \
            -parity.models tiny-k90 -parity.artifacts "$WORK/art/smoke") >"$log" 2>&1
        rc=$?
        say "smoke rc=$rc $(leaves "$log") $((SECONDS - t)) s"
        errs=$(grep -cE 'status [0-9]+ \(|cannot load|library not found|ABI mismatch|panic:' "$log")
        if [ "$errs" -gt 0 ] || ! grep -qE -- '--- PASS: TestParity/' "$log"; then
            say "smoke: the library does not run ($errs error lines); stopping:"
            grep -m 20 -E 'status [0-9]+ \(|cannot load|library not found|ABI mismatch|panic:' "$log" | cut -c1-300 | tee -a "$SUMMARY"
            tar -czf "$OUT/logs.tgz" -C "$WORK" logs
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

# What comes back: the logs, each run's summary.md, every failing case's
# report, and the traces of the debug shapes' failing cases.
tar -czf "$OUT/logs.tgz" -C "$WORK" logs
# (strict runs: the first 8 traces only; most of their failures are one
# finding, see docs/ENGINES.md).
(cd "$WORK" && {
    find art -name summary.md -o -name report.md
    find art -name trace.jsonl -size -3M \( -path '*tiny*' -o -path '*long-ctx*' \) -not -path '*strict*'
    find art -name trace.jsonl -size -3M \( -path '*tiny*' -o -path '*long-ctx*' \) -path '*strict*' | sort | head -n 8
} | tar -czf "$OUT/artifacts.tgz" -T -)
say "total $((SECONDS - T0)) s; $(ls -s "$OUT" | tr '\n' ' ')"
grep -qE 'FAIL|rc=[1-9]|not run' "$SUMMARY" && exit 1
exit 0
