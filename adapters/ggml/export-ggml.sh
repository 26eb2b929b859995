#!/usr/bin/env bash
# export-ggml.sh: exports the pinned ggml commit into the ignored folder
# build/ggml-src (or $GGML_SRC), keeping only what adapters/ggml/ggml.mk
# builds: the CMake files, include/, and src/ without the backends this
# repository never builds (ggml_add_backend() in src/CMakeLists.txt adds a
# backend only when its option is on, so their folders can go). The result
# (about 8 MB) travels to the GPU machine with build/ (make gpu-bundle-cuda);
# fetched code is never committed.
#
#   adapters/ggml/export-ggml.sh GGML_GIT_DIR     a clone or bare git dir of
#                                                 github.com/ggml-org/ggml
#   GGML_DIR=/path/to/ggml adapters/ggml/export-ggml.sh
#                                                 a checkout: copied as it is
#                                                 (its own commit, not the pin)
#
# GGML_COMMIT overrides the pin. The exported tree gets a GGML_COMMIT file
# (the full hash) that ggml.mk puts into gp_backend_name().
set -eu

# The pinned commit: ggml-org/ggml master of 2026-08-21, "readme : update
# following llama.cpp style (#1599)", ggml 0.21.0 (synced with llama.cpp).
GGML_COMMIT=${GGML_COMMIT:-d99724f2b141fed9e1a9f402213506c081433465}

cd "$(dirname "$0")/../.."
DEST=${GGML_SRC:-build/ggml-src}
# What the build needs; the other src/ggml-* backends are left out.
KEEP_BACKENDS="ggml-cpu ggml-cuda ggml-hip ggml-blas"

die() {
    echo "export-ggml: $*" >&2
    exit 1
}

prune() {
    local d
    for d in "$DEST"/src/ggml-*/; do
        d=${d%/}
        case " $KEEP_BACKENDS " in
        *" $(basename "$d") "*) ;;
        *) rm -rf "$d" ;;
        esac
    done
}

if [ $# -eq 0 ] && [ -n "${GGML_DIR:-}" ]; then
    [ -f "$GGML_DIR/include/ggml.h" ] || die "GGML_DIR=$GGML_DIR has no include/ggml.h (not a ggml checkout)"
    # The checkout's own commit only (not that of a repository around it).
    commit=unknown
    if [ "$(git -C "$GGML_DIR" rev-parse --show-toplevel 2>/dev/null)" = "$(cd "$GGML_DIR" && pwd -P)" ]; then
        commit=$(git -C "$GGML_DIR" rev-parse HEAD)
    fi
    rm -rf "$DEST"
    mkdir -p "$DEST"
    cp -a "$GGML_DIR"/CMakeLists.txt "$GGML_DIR"/cmake "$GGML_DIR"/include "$GGML_DIR"/src "$DEST"/
    [ -f "$GGML_DIR/ggml.pc.in" ] && cp -a "$GGML_DIR/ggml.pc.in" "$DEST"/
    prune
    echo "$commit" >"$DEST/GGML_COMMIT"
    echo "export-ggml: copied the checkout $GGML_DIR (commit $commit) to $DEST ($(du -sh "$DEST" | cut -f1))"
    exit 0
fi

[ $# -eq 1 ] || die "usage: $0 GGML_GIT_DIR   (or GGML_DIR=/path/to/checkout $0)"
GIT_DIR_IN=$1
git --git-dir="$GIT_DIR_IN" rev-parse --git-dir >/dev/null 2>&1 ||
    GIT_DIR_IN=$GIT_DIR_IN/.git
git --git-dir="$GIT_DIR_IN" cat-file -e "$GGML_COMMIT^{commit}" 2>/dev/null ||
    die "commit $GGML_COMMIT not in $1 (fetch github.com/ggml-org/ggml there, or set GGML_COMMIT)"

if [ -f "$DEST/GGML_COMMIT" ] && [ "$(cat "$DEST/GGML_COMMIT")" = "$GGML_COMMIT" ]; then
    echo "export-ggml: $DEST already holds $GGML_COMMIT"
    exit 0
fi
rm -rf "$DEST"
mkdir -p "$DEST"
paths="CMakeLists.txt cmake include src ggml.pc.in"
# shellcheck disable=SC2086 # paths is a word list
git --git-dir="$GIT_DIR_IN" archive --format=tar "$GGML_COMMIT" $paths | tar -x -C "$DEST"
prune
echo "$GGML_COMMIT" >"$DEST/GGML_COMMIT"
echo "export-ggml: $GGML_COMMIT -> $DEST ($(du -sh "$DEST" | cut -f1))"
