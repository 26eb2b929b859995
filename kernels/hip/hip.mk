# HIP kernels (kernels/hip): one HIP-dialect source tree, built for
#   CUDA   make kernels-cuda   nvcc -x cu through hip_to_cuda.h  -> $(CUDA_LIB)
#   ROCm   make kernels-rocm   hipcc                             -> $(ROCM_LIB)
# and compile-checked for AMD targets without a GPU or ROCm install:
#   make rocm-check-deps       apt-get the Debian clang-19 + HIP 5.2 headers
#   make check-rocm            device assembly for gfx942 and gfx90a under
#                              $(BUILD)/rocm-check/, fails without v_mfma
# Included by the top Makefile (BUILD, CUDA_LIB, ROCM_LIB and the $(BUILD) rule).

HIP_DIR := kernels/hip
HIP_SRCS := $(sort $(wildcard $(HIP_DIR)/*.hip))
HIP_DEPS := $(HIP_SRCS) $(wildcard $(HIP_DIR)/*.h) kernels/include/greta_parity.h \
	kernels/common/gp_common.h kernels/common/gp_common.c kernels/common/gp_half.h
HIP_COMMON_SRC := kernels/common/gp_common.c
HIP_INCLUDES := -Ikernels/include -Ikernels/common -I$(HIP_DIR)

# ---- CUDA (nvcc) ----
NVCC ?= nvcc
CUDA_ARCH ?= sm_90
NVCC_FLAGS ?= -O2
CUDA_OBJ_DIR := $(BUILD)/cuda-obj
CUDA_OBJS := $(patsubst $(HIP_DIR)/%.hip,$(CUDA_OBJ_DIR)/%.o,$(HIP_SRCS)) $(CUDA_OBJ_DIR)/gp_common.o
# -fmad=false: no FMA contraction, the kernels write fmaf() where they mean it.
# GP_BLAS_CUBLAS: route 3 (GP_ROUTE_BLAS) is cuBLAS (blas.hip), linked below.
CUDA_BLAS_LIBS ?= -lcublas
CUDA_CFLAGS = $(NVCC_FLAGS) -arch=$(CUDA_ARCH) -fmad=false -x cu -Xcompiler -fPIC \
	$(HIP_INCLUDES) -DGP_TARGET_NAME='"$(CUDA_ARCH)"' -DGP_BLAS_CUBLAS=1
# One object per source (make -j compiles them in parallel), then one link.
$(CUDA_OBJ_DIR)/%.o: $(HIP_DIR)/%.hip $(HIP_DEPS)
	@mkdir -p $(@D)
	$(NVCC) $(CUDA_CFLAGS) -c $< -o $@
$(CUDA_OBJ_DIR)/gp_common.o: $(HIP_COMMON_SRC) $(HIP_DEPS)
	@mkdir -p $(@D)
	$(NVCC) $(CUDA_CFLAGS) -c $< -o $@
$(CUDA_LIB): $(CUDA_OBJS) | $(BUILD)
	$(NVCC) -arch=$(CUDA_ARCH) -shared $(CUDA_OBJS) -o $@ $(CUDA_BLAS_LIBS)

kernels-cuda: $(CUDA_LIB)

# ---- ROCm (hipcc) ----
ROCM_PATH ?= /opt/rocm
HIPCC ?= $(ROCM_PATH)/bin/hipcc
OFFLOAD_ARCH ?= gfx942
HIPCC_FLAGS ?= -O2
hip_space := $(subst ,, )
$(ROCM_LIB): $(HIP_DEPS) | $(BUILD)
	$(HIPCC) $(HIPCC_FLAGS) $(addprefix --offload-arch=,$(OFFLOAD_ARCH)) -ffp-contract=off \
		-fPIC -shared $(HIP_INCLUDES) -DGP_TARGET_NAME='"$(subst $(hip_space),+,$(strip $(OFFLOAD_ARCH)))"' \
		-x hip $(HIP_SRCS) $(HIP_COMMON_SRC) -o $@

kernels-rocm: $(ROCM_LIB)

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

.PHONY: kernels-cuda kernels-rocm check-rocm rocm-check-deps
