# Build the kernel libraries and run the decode-vs-prefill parity suite.
# `make ci` is what CI runs (.ci/run and the workflow); `make help` lists the targets.

GO ?= go
BUILD ?= build
GOFLAGS_TEST ?=
# purego needs no cgo: every Go binary here is built with CGO_ENABLED=0.
export CGO_ENABLED := 0

# Library paths, one per backend; the Go side's defaults name the same files
# (defaultLib in parity/backend_{cpu,cuda,rocm}_test.go).
CPU_LIB := $(BUILD)/libgreta_parity_cpu.so
CUDA_LIB := $(BUILD)/libgreta_parity_cuda.so
ROCM_LIB := $(BUILD)/libgreta_parity_rocm.so

.PHONY: all help test vet fmt-check fmt-check-c parity fuzz-short check-gpu-tags

all: kernels-cpu

help:
	@echo "make test           build the CPU backend and run every Go test (the README's test command)"
	@echo "make parity         install the toolchain packages, then make test"
	@echo "make vet            CGO_ENABLED=0 go vet ./..."
	@echo "make kernels-cpu    $(CPU_LIB) (gcc)"
	@echo "make kernels-cuda   $(CUDA_LIB) (nvcc, CUDA_ARCH=sm_90a: wgmma GEMM; sm_90 or sm_80: mma.sync)"
	@echo "make kernels-rocm   $(ROCM_LIB) (hipcc, OFFLOAD_ARCH=gfx942)"
	@echo "make refdev-cuda    the float64 reference on the GPU (kernels/refdev; kernels-cuda and kernels-rocm build it too)"
	@echo "make check-rocm     compile-check the AMD device code (gfx942, gfx90a)"
	@echo "make kernels-rocm-clang  $(BUILD)/libgreta_parity_rocm_{gfx90a,gfx940}.so (clang-19, Debian's HIP runtime)"
	@echo "make check-rocm-lib load those through the suite (-tags rocm): 'no device' skip"
	@echo "make mod-check      go.mod/go.sum are what go mod tidy makes of them"
	@echo "make ci             everything CI runs (.ci/run installs the packages first)"
	@echo "make gpu-test       the suite on a GPU runner: TAGS=rocm|cuda PART=all|rest|shard-I-of-N"

include kernels/cpu/cpu.mk
include kernels/hip/hip.mk
include kernels/refdev/refdev.mk
-include ci.mk
-include adapters/torch/torch.mk
-include adapters/ggml/ggml.mk
-include signatures.mk

$(BUILD):
	mkdir -p $(BUILD)

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# C, C++ and HIP sources follow the repository's .clang-format (at the root).
CLANG_FORMAT ?= $(shell command -v clang-format-19 || command -v clang-format)
fmt-check-c:
	@test -n "$(CLANG_FORMAT)" || { echo "clang-format not found (apt-get install clang-format-19)"; exit 1; }
	$(CLANG_FORMAT) --dry-run --Werror $$(git ls-files 'kernels/*.c' 'kernels/*.h' 'kernels/*.hip' 'parity/testdata/*.c')

# The README's test command: every Go test on the CPU backend (table,
# properties, mutations, bad inputs), then a short fuzz of the trace parser.
# This repo's own backend must implement every optional capability of ABI
# 3, so the parity package runs with -parity.require=all; the core-only
# library (kernels-cpu-core) is checked by TestCoreOnlyLibrary.
# JUNIT_DIR=DIR runs the same go test commands through gotestsum (ci.mk)
# and leaves JUnit XML in DIR (junit-unit.xml, junit-parity.xml).
gotest = $(if $(JUNIT_DIR),$(GO) run $(GOTESTSUM) --format standard-quiet --junitfile $(JUNIT_DIR)/junit-$(1).xml --,$(GO) test)
test: kernels-cpu kernels-cpu-core
	$(if $(JUNIT_DIR),mkdir -p $(JUNIT_DIR))
	$(call gotest,unit) $(GOFLAGS_TEST) $$($(GO) list ./... | grep -v '/parity$$')
	$(call gotest,parity) $(GOFLAGS_TEST) ./parity -parity.require=all
	$(MAKE) --no-print-directory fuzz-short

# A count, not a duration: with -fuzztime 10s Go's fuzzing coordinator can
# fail a clean run with a bare "context deadline exceeded" as the deadline
# fires (a race in internal/fuzz, golang/go#75804, fixed in go1.27; it hit
# this repo's CI once on a loaded 2-core runner). 100000 inputs take
# 2-25 s here.
fuzz-short:
	$(GO) test ./internal/trace -run '^$$' -fuzz FuzzParse -fuzztime 100000x

# One command on a fresh Debian/Ubuntu machine (as root): install the
# toolchain packages, then run the tests.
parity:
	@command -v gcc >/dev/null && command -v make >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends gcc make libc6-dev)
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is required: https://go.dev/dl/"; exit 1; }
	$(MAKE) test

# Test binaries for GPU machines without Go: build here, copy with the
# working tree, run there (scripts/gpu-run.sh compiles the kernels there).
.PHONY: gpu-bundle-cuda gpu-bundle-rocm
gpu-bundle-cuda: | $(BUILD)
	$(GO) test -c -tags cuda -o $(BUILD)/parity.test ./parity
gpu-bundle-rocm: | $(BUILD)
	$(GO) test -c -tags rocm -o $(BUILD)/parity-rocm.test ./parity

# The GPU tags must compile on a machine without a GPU, skip with the reason
# when their library is missing, and fail with -parity.require-device.
check-gpu-tags:
	@set -e; for tag in rocm cuda; do \
		out=$$($(GO) test -tags $$tag ./parity -count=1 -run '^TestParity$$' -v -parity.lib /nonexistent/lib$$tag.so 2>&1); \
		echo "$$out" | grep -q -- '--- SKIP: TestParity' || { echo "$$out"; echo "-tags $$tag: no skip"; exit 1; }; \
		echo "$$out" | grep -q 'library not found at /nonexistent' || { echo "$$out"; echo "-tags $$tag: skip without its reason"; exit 1; }; \
		if $(GO) test -tags $$tag ./parity -count=1 -run '^TestParity$$' -parity.require-device -parity.lib /nonexistent/lib$$tag.so >/dev/null 2>&1; then \
			echo "-tags $$tag: -parity.require-device did not fail"; exit 1; fi; \
		echo "-tags $$tag: compiles, skips with the reason, fails with -parity.require-device"; \
	done
