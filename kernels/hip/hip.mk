# HIP kernels (kernels/hip): one HIP-dialect source tree, built for
#   CUDA   make kernels-cuda   nvcc -x cu through hip_to_cuda.h  -> $(CUDA_LIB)
#   ROCm   make kernels-rocm   hipcc                             -> $(ROCM_LIB)
# and compile-checked for AMD targets without a GPU or ROCm install:
#   make rocm-check-deps       apt-get the Debian clang-19 + HIP 5.2 headers
#   make check-rocm            device assembly for gfx942 and gfx90a under
#                              $(BUILD)/rocm-check/, fails without v_mfma
# and built for real, host and device, without ROCm (Debian's HIP runtime):
#   make kernels-rocm-clang    clang-19 -> $(BUILD)/libgreta_parity_rocm_<arch>.so
#                              for ROCM_CLANG_ARCHS (gfx90a gfx940)
#   make check-rocm-lib        those libraries load through the suite (-tags rocm):
#                              a "no device" skip, a -parity.require-device failure
# Without nvcc / hipcc, kernels-cuda / kernels-rocm stop with a message that
# says what to install or set (make check-toolchain-msg checks it).
# Included by the top Makefile (BUILD, CUDA_LIB, ROCM_LIB and the $(BUILD) rule).

HIP_DIR := kernels/hip
HIP_SRCS := $(sort $(wildcard $(HIP_DIR)/*.hip))
HIP_DEPS := $(HIP_SRCS) $(wildcard $(HIP_DIR)/*.h) kernels/include/greta_parity.h \
	kernels/common/gp_common.h kernels/common/gp_common.c kernels/common/gp_half.h
HIP_COMMON_SRC := kernels/common/gp_common.c
HIP_INCLUDES := -Ikernels/include -Ikernels/common -I$(HIP_DIR)

# ---- CUDA (nvcc) ----
, := ,
NVCC ?= nvcc
CUDA_ARCH ?= sm_90a
NVCC_FLAGS ?= -O2
CUDA_OBJ_DIR := $(BUILD)/cuda-obj
CUDA_OBJS := $(patsubst $(HIP_DIR)/%.hip,$(CUDA_OBJ_DIR)/%.o,$(HIP_SRCS)) $(CUDA_OBJ_DIR)/gp_common.o
# -fmad=false: no FMA contraction, the kernels write fmaf() where they mean it.
# GP_BLAS_CUBLAS: route 3 (GP_ROUTE_BLAS) is cuBLAS (blas.hip), linked below.
CUDA_BLAS_LIBS ?= -lcublas
# GP_WGMMA: sm_90a (Hopper's arch-specific features) puts the MFMA route's
# f16/bf16 GEMM on the warpgroup instructions (gp_mma.h, gemm_mfma.hip).
# The arch-specific target is named in full (-gencode compute_90a -> sm_90a):
# the shorthand -arch=sm_90a has produced compute_90 PTX, which ptxas
# rejects for wgmma.
CUDA_WGMMA = $(if $(filter sm_90a,$(CUDA_ARCH)),-DGP_WGMMA=1)
CUDA_GENCODE = $(if $(filter sm_90a,$(CUDA_ARCH)),-gencode arch=compute_90a$(,)code=sm_90a,-arch=$(CUDA_ARCH))
CUDA_CFLAGS = $(NVCC_FLAGS) $(CUDA_GENCODE) -fmad=false -x cu -Xcompiler -fPIC \
	$(HIP_INCLUDES) -DGP_TARGET_NAME='"$(CUDA_ARCH)"' -DGP_BLAS_CUBLAS=1 $(CUDA_WGMMA)
# One object per source (make -j compiles them in parallel), then one link.
# A missing compiler stops make with what to do, before any command runs
# (expanded only when something is to be built, so a built library is
# still "up to date" on a machine without the toolchain).
need_nvcc = $(if $(shell command -v $(NVCC) 2>/dev/null),,$(error nvcc not found (NVCC=$(NVCC)): \
	install the CUDA toolkit and put its bin/ on PATH, or set NVCC=/path/to/nvcc))
$(CUDA_OBJ_DIR)/%.o: $(HIP_DIR)/%.hip $(HIP_DEPS)
	$(need_nvcc)@mkdir -p $(@D)
	$(NVCC) $(CUDA_CFLAGS) -c $< -o $@
$(CUDA_OBJ_DIR)/gp_common.o: $(HIP_COMMON_SRC) $(HIP_DEPS)
	$(need_nvcc)@mkdir -p $(@D)
	$(NVCC) $(CUDA_CFLAGS) -c $< -o $@
$(CUDA_LIB): $(CUDA_OBJS) | $(BUILD)
	$(need_nvcc)$(NVCC) $(CUDA_GENCODE) -shared $(CUDA_OBJS) -o $@ $(CUDA_BLAS_LIBS)

kernels-cuda: $(CUDA_LIB)

# ---- ROCm (hipcc) ----
ROCM_PATH ?= /opt/rocm
HIPCC ?= $(ROCM_PATH)/bin/hipcc
OFFLOAD_ARCH ?= gfx942
HIPCC_FLAGS ?= -O2
hip_space := $(subst ,, )
need_hipcc = $(if $(shell command -v $(HIPCC) 2>/dev/null),,$(error hipcc not found at $(HIPCC): \
	install ROCm, or set ROCM_PATH=/path/to/rocm (default /opt/rocm) or HIPCC=/path/to/hipcc; \
	without ROCm, make kernels-rocm-clang builds $(ROCM_CLANG_ARCHS) with clang-19))
$(ROCM_LIB): $(HIP_DEPS) | $(BUILD)
	$(need_hipcc)$(HIPCC) $(HIPCC_FLAGS) $(addprefix --offload-arch=,$(OFFLOAD_ARCH)) -ffp-contract=off \
		-fPIC -shared $(HIP_INCLUDES) -DGP_TARGET_NAME='"$(subst $(hip_space),+,$(strip $(OFFLOAD_ARCH)))"' \
		-x hip $(HIP_SRCS) $(HIP_COMMON_SRC) -o $@

kernels-rocm: $(ROCM_LIB)

# kernels-cuda and kernels-rocm without their compiler must fail with the
# message of need_nvcc / need_hipcc, not a shell's "No such file".
check-toolchain-msg:
	@set -e; d=$(BUILD)/toolchain-msg-check; \
	for t in "kernels-cuda NVCC=/nonexistent/nvcc:nvcc not found (NVCC=/nonexistent/nvcc): install the CUDA toolkit" \
		"kernels-rocm HIPCC=/nonexistent/hipcc:hipcc not found at /nonexistent/hipcc: install ROCm"; do \
		args=$${t%%:*}; want=$${t#*:}; \
		if out=$$($(MAKE) --no-print-directory BUILD=$$d $$args 2>&1); then echo "$$out"; echo "check-toolchain-msg: make $$args succeeded"; exit 1; fi; \
		echo "$$out" | grep -qF "$$want" || { echo "$$out"; echo "check-toolchain-msg: make $$args: no \"$$want\""; exit 1; }; \
		echo "check-toolchain-msg: make $$args: $$(echo "$$out" | grep -oF "$$want")…"; \
	done; rm -rf $$d

# ---- AMD compile check (no GPU): clang-19, HIP 5.2 headers, -nogpulib ----
CLANG_HIP ?= clang++-19
ROCM_CHECK_ARCHS ?= gfx942 gfx90a
ROCM_CHECK_DIR := $(BUILD)/rocm-check
# The translation unit whose assembly must contain matrix-core instructions.
ROCM_CHECK_MFMA := gemm_mfma
ROCM_CHECK_FLAGS := -x hip -nogpulib --offload-device-only -S -O2 -ffp-contract=off \
	-Wall -Wextra -Wno-unused-parameter -Werror $(HIP_INCLUDES)

# $(1): offload arch. One .s per source under $(ROCM_CHECK_DIR)/$(1)/.
define hip_check_arch
$(ROCM_CHECK_DIR)/$(1)/%.s: $(HIP_DIR)/%.hip $(HIP_DEPS)
	@mkdir -p $$(@D)
	$(CLANG_HIP) $(ROCM_CHECK_FLAGS) --offload-arch=$(1) $$< -o $$@
ROCM_CHECK_ASM += $(patsubst $(HIP_DIR)/%.hip,$(ROCM_CHECK_DIR)/$(1)/%.s,$(HIP_SRCS))
endef
$(foreach a,$(ROCM_CHECK_ARCHS),$(eval $(call hip_check_arch,$(a))))

# Each arch's MFMA route must use the matrix cores for all three dtypes:
# three distinct v_mfma mnemonics (f16, bf16, f32).
check-rocm: $(ROCM_CHECK_ASM)
	@command -v $(CLANG_HIP) >/dev/null || { echo "check-rocm: $(CLANG_HIP) missing; run make rocm-check-deps"; exit 1; }
	@set -e; for a in $(ROCM_CHECK_ARCHS); do \
		s=$(ROCM_CHECK_DIR)/$$a/$(ROCM_CHECK_MFMA).s; \
		ops=$$(grep -o 'v_mfma_[a-z0-9_]*' $$s | sort -u); \
		n=$$(printf '%s\n' $$ops | grep -c . || true); \
		echo "check-rocm: $$a $(ROCM_CHECK_MFMA): $$(echo $$ops)"; \
		if [ "$$n" -lt 3 ]; then echo "check-rocm: FAIL: $$s has $$n distinct v_mfma instructions, want 3 (f16, bf16, f32)"; exit 1; fi; \
	done; echo "check-rocm: OK ($(ROCM_CHECK_ARCHS); $(words $(ROCM_CHECK_ASM)) files under $(ROCM_CHECK_DIR))"

# ---- ROCm libraries without ROCm: clang-19 and Debian's HIP 5.2 runtime ----
# Host and device code, linked against libamdhip64 (make rocm-check-deps
# installs it). Debian's device libraries stop at gfx940 (no gfx942
# bitcode), so these are gfx90a (MI200) and gfx940 (MI300's first ISA)
# libraries: proof that the whole library compiles, links and loads, not an
# MI300X (gfx942) build.
ROCM_CLANG_ARCHS ?= gfx90a gfx940
ROCM_DEVICE_LIB_PATH ?= $(firstword $(wildcard /usr/lib/x86_64-linux-gnu/amdgcn/bitcode \
	$(ROCM_PATH)/amdgcn/bitcode) /usr/lib/x86_64-linux-gnu/amdgcn/bitcode)
ROCM_CLANG_DIR := $(BUILD)/rocm-clang
ROCM_CLANG_WARN := -Wall -Wextra -Wno-unused-parameter -Werror
ROCM_CLANG_HIPFLAGS := -x hip -O2 -ffp-contract=off -fPIC $(ROCM_CLANG_WARN) $(HIP_INCLUDES) \
	--rocm-device-lib-path=$(ROCM_DEVICE_LIB_PATH)
need_clang_hip = $(if $(shell command -v $(CLANG_HIP) 2>/dev/null),,$(error $(CLANG_HIP) not found: run make rocm-check-deps))
rocm_clang_lib = $(BUILD)/libgreta_parity_rocm_$(1).so

# $(1): offload arch. One object per source (make -j), then one link.
define hip_clang_arch
$(ROCM_CLANG_DIR)/$(1)/%.o: $(HIP_DIR)/%.hip $(HIP_DEPS) $(HIP_DIR)/hip.mk
	$$(need_clang_hip)@mkdir -p $$(@D)
	$(CLANG_HIP) $(ROCM_CLANG_HIPFLAGS) --offload-arch=$(1) -DGP_TARGET_NAME='"$(1)"' -c $$< -o $$@
$(ROCM_CLANG_DIR)/$(1)/gp_common.o: $(HIP_COMMON_SRC) $(HIP_DEPS) $(HIP_DIR)/hip.mk
	$$(need_clang_hip)@mkdir -p $$(@D)
	$(CLANG_HIP) -x c -std=c11 -O2 -ffp-contract=off -fPIC $(ROCM_CLANG_WARN) $(HIP_INCLUDES) -c $$< -o $$@
$(call rocm_clang_lib,$(1)): $(patsubst $(HIP_DIR)/%.hip,$(ROCM_CLANG_DIR)/$(1)/%.o,$(HIP_SRCS)) $(ROCM_CLANG_DIR)/$(1)/gp_common.o | $(BUILD)
	$(CLANG_HIP) -shared -fPIC $$^ -o $$@ -lamdhip64
ROCM_CLANG_LIBS += $(call rocm_clang_lib,$(1))
endef
$(foreach a,$(ROCM_CLANG_ARCHS),$(eval $(call hip_clang_arch,$(a))))

kernels-rocm-clang: $(ROCM_CLANG_LIBS)

# Each library must hold its arch's code object and load through the suite
# (-tags rocm, the gpu-bundle-rocm test binary): "no device" is the one
# reason a library that opened, matched the ABI version and resolved every
# symbol can still skip for (the HIP runtime answers hipErrorNoDevice here),
# and -parity.require-device must turn that skip into a failure.
check-rocm-lib: $(ROCM_CLANG_LIBS) gpu-bundle-rocm
	@set -e; for lib in $(ROCM_CLANG_LIBS); do \
		case $$lib in /*) ;; *) lib=$(CURDIR)/$$lib ;; esac; \
		a=$${lib##*_}; a=$${a%.so}; \
		grep -aq "hipv4-amdgcn-amd-amdhsa--$$a" $$lib || { echo "check-rocm-lib: $$lib holds no $$a code object"; exit 1; }; \
		out=$$(cd parity && $(abspath $(BUILD))/parity-rocm.test -test.count=1 -test.run '^TestParity$$' -test.v -parity.lib $$lib 2>&1) || \
			{ echo "$$out"; echo "check-rocm-lib: $$lib: the suite failed"; exit 1; }; \
		echo "$$out" | grep -q -- '--- SKIP: TestParity' || { echo "$$out"; echo "check-rocm-lib: $$lib: TestParity did not skip"; exit 1; }; \
		echo "$$out" | grep -q 'no device' || { echo "$$out"; echo "check-rocm-lib: $$lib: the skip does not say no device"; exit 1; }; \
		if out=$$(cd parity && $(abspath $(BUILD))/parity-rocm.test -test.count=1 -test.run '^TestParity$$' -parity.require-device -parity.lib $$lib 2>&1); then \
			echo "$$out"; echo "check-rocm-lib: $$lib: -parity.require-device did not fail"; exit 1; fi; \
		echo "$$out" | grep -q 'parity.require-device.*no device' || { echo "$$out"; echo "check-rocm-lib: $$lib: the -parity.require-device failure does not say no device"; exit 1; }; \
		echo "check-rocm-lib: $$(basename $$lib) ($$a code object, $$(nm -D --defined-only $$lib | grep -c ' gp_') gp_ symbols): loads, skips with \"$$(echo "$$out" | grep -o 'no device.*' | head -n 1 | cut -c1-160)\", fails with -parity.require-device"; \
	done

# Debian packages of the compile check; idempotent (installs only what is missing).
ROCM_CHECK_PKGS := clang-19 lld-19 clang-tools-19 libamdhip64-dev rocm-device-libs
rocm-check-deps:
	@missing=; for p in $(ROCM_CHECK_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "rocm-check-deps: all installed"; exit 0; fi; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	echo "rocm-check-deps: installing$$missing"; \
	$$sudo apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null

.PHONY: kernels-cuda kernels-rocm check-rocm rocm-check-deps kernels-rocm-clang check-rocm-lib check-toolchain-msg
