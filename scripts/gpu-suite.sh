#!/usr/bin/env bash
# gpu-suite.sh: the parity suite's phases on an NVIDIA GPU machine (nvcc, no
# Go), from the repository root, with build/parity.test built elsewhere
# (make gpu-bundle-cuda) and carried along:
#
#   bash scripts/gpu-suite.sh PHASE...
#
# Phases (each one run of build/parity.test -parity.require-device -test.v):
#   strict      TestParity, full matrix, -parity.contract=strict -parity.require=all
#   engine      TestParity, full matrix, -parity.contract=engine -parity.require=all
#   blas-engine GRETA_GEMM_FORCE=BLAS (cuBLAS on both paths), engine contract
#   blas-strict GRETA_GEMM_FORCE=BLAS, strict: the failures name the cases
#               that need engine ("within engine, beyond strict")
#   layers      TestLayers at every model's real depth (-parity.layers=all,
#               -parity.full; GP_MODELS, default every fixture): each layer
#               with its own weights and KV cache, then the head, strict
#   rest        every other test (mutations under both contracts, properties,
#               determinism, sensitivity, capabilities, artifacts)
# The library is built first (make kernels-cuda) unless it exists. Logs go to
# ${OUT:-out}/<phase>.log (failures and the last lines only when large) and
# one summary line per phase to ${OUT:-out}/summary.txt, and each run's
# summary.md (worst margin per stage) to ${OUT:-out}/<phase>.summary.md. Each phase is capped
# at GP_PHASE_CAP seconds (default 280). Exit status 0 if every phase passed.
set -u
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-out}
BUILD=${BUILD:-build}
CAP=${GP_PHASE_CAP:-280}
mkdir -p "$OUT"
BUILD=$(cd "$BUILD" && pwd)
LIB=$BUILD/libgreta_parity_cuda.so
SUMMARY=$OUT/summary.txt
FAILED=0
if [ ! -f "$LIB" ]; then
    t0=$SECONDS
    make -j"$(nproc)" BUILD="$BUILD" kernels-cuda >"$OUT/build.log" 2>&1 || {
        echo "build FAIL (see build.log)" | tee -a "$SUMMARY"
        exit 1
    }
    echo "build ok $((SECONDS - t0)) s" | tee -a "$SUMMARY"
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >>"$SUMMARY" 2>&1
for phase in "$@"; do
    env=() args=(-parity.require=all)
    case $phase in
    strict) args+=(-test.run '^TestParity$' -parity.contract=strict) ;;
    engine) args+=(-test.run '^TestParity$' -parity.contract=engine) ;;
    blas-engine) env=(GRETA_GEMM_FORCE=BLAS) args+=(-test.run '^TestParity$' -parity.contract=engine) ;;
    blas-strict) env=(GRETA_GEMM_FORCE=BLAS) args+=(-test.run '^TestParity$' -parity.contract=strict) ;;
    layers) args+=(-test.run '^TestLayers$' -parity.full -parity.layers=all
        -parity.models="${GP_MODELS:-$(find fixtures/models -name '*.json' -printf '%f\n' | sed 's/\.json$//' | sort | paste -sd,)}") ;;
    rest) args+=(-test.skip '^TestParity$') ;;
    *)
        echo "unknown phase $phase" | tee -a "$SUMMARY"
        FAILED=1
        continue
        ;;
    esac
    log=$OUT/$phase.log t0=$SECONDS
    (cd parity && env "${env[@]}" timeout "$CAP" "$BUILD/parity.test" -test.v -parity.require-device \
        -parity.lib "$LIB" -parity.artifacts "$BUILD/artifacts-$phase" "${args[@]}") >"$log.full" 2>&1
    rc=$?
    pass=$(grep -c -- '--- PASS' "$log.full")
    fail=$(grep -c -- '--- FAIL' "$log.full")
    skip=$(grep -c -- '--- SKIP' "$log.full")
    leaves=$(grep -cE -- '--- PASS: TestParity/[^/]+/[^/]+/[^/]+/[^/ ]+ ' "$log.full")
    echo "$phase rc=$rc pass=$pass fail=$fail skip=$skip table-cases-passed=$leaves $((SECONDS - t0)) s" | tee -a "$SUMMARY"
    # The run's summary.md (worst margin per stage, failing cases) comes back too.
    sm=$(find "$BUILD/artifacts-$phase" -name summary.md 2>/dev/null | head -n 1)
    [ -n "$sm" ] && cp "$sm" "$OUT/$phase.summary.md"
    if [ "$(stat -c %s "$log.full")" -gt 3000000 ]; then
        { grep -E -- '--- FAIL|within engine|first divergence|panic' "$log.full" | head -n 2000; tail -n 200 "$log.full"; } >"$log"
        rm -f "$log.full"
    else
        mv "$log.full" "$log"
    fi
    [ $rc -eq 0 ] || FAILED=1
done
exit $FAILED
