# The float64 reference on the GPU (kernels/refdev, gp_refdev.h): a library
# of its own, beside the one under test, that the suite loads to run the
# projections' float64 passes on the device (-parity.refdev):
#   CUDA   make refdev-cuda   -> $(REFDEV_CUDA_LIB)   (kernels-cuda builds it too)
#   ROCm   make refdev-rocm   -> $(REFDEV_ROCM_LIB)   (kernels-rocm builds it too)
# check-rocm compile-checks it for $(ROCM_CHECK_ARCHS) (no FMA contraction:
# its sums must be the host's, bit for bit). Included by the top Makefile
# after kernels/hip/hip.mk (NVCC, CUDA_GENCODE, HIPCC, CLANG_HIP, ...).

REFDEV_DIR := kernels/refdev
REFDEV_SRC := $(REFDEV_DIR)/refdev.hip
REFDEV_DEPS := $(REFDEV_SRC) $(REFDEV_DIR)/gp_refdev.h $(HIP_DIR)/hip_to_cuda.h $(REFDEV_DIR)/refdev.mk
REFDEV_INCLUDES := -I$(REFDEV_DIR) -I$(HIP_DIR)
REFDEV_CUDA_LIB := $(BUILD)/libgreta_parity_refdev_cuda.so
REFDEV_ROCM_LIB := $(BUILD)/libgreta_parity_refdev_rocm.so

$(REFDEV_CUDA_LIB): $(REFDEV_DEPS) | $(BUILD)
	$(need_nvcc)$(NVCC) $(NVCC_FLAGS) $(CUDA_GENCODE) -fmad=false -x cu -Xcompiler -fPIC -shared \
		$(REFDEV_INCLUDES) -DGPRD_TARGET_NAME='"$(CUDA_ARCH)"' $(REFDEV_SRC) -o $@
$(REFDEV_ROCM_LIB): $(REFDEV_DEPS) | $(BUILD)
	$(need_hipcc)$(HIPCC) $(HIPCC_FLAGS) $(addprefix --offload-arch=,$(OFFLOAD_ARCH)) -ffp-contract=off \
		-fPIC -shared $(REFDEV_INCLUDES) -DGPRD_TARGET_NAME='"$(subst $(hip_space),+,$(strip $(OFFLOAD_ARCH)))"' \
		-x hip $(REFDEV_SRC) -o $@

refdev-cuda: $(REFDEV_CUDA_LIB)
refdev-rocm: $(REFDEV_ROCM_LIB)
kernels-cuda: $(REFDEV_CUDA_LIB)
kernels-rocm: $(REFDEV_ROCM_LIB)

# Device assembly per checked arch; the check fails on a fused f64 multiply-add.
define refdev_check_arch
$(ROCM_CHECK_DIR)/$(1)/refdev.s: $(REFDEV_DEPS)
	@mkdir -p $$(@D)
	$(CLANG_HIP) -x hip -nogpulib --offload-device-only -S -O2 -ffp-contract=off -Wall -Wextra \
		-Wno-unused-parameter -Werror $(REFDEV_INCLUDES) --offload-arch=$(1) $$< -o $$@
	@! grep -q 'v_fma_f64\|v_fmac_f64' $$@ || { echo "check-rocm: $$@ fuses a float64 multiply-add"; exit 1; }
REFDEV_CHECK_ASM += $(ROCM_CHECK_DIR)/$(1)/refdev.s
endef
$(foreach a,$(ROCM_CHECK_ARCHS),$(eval $(call refdev_check_arch,$(a))))
check-rocm: $(REFDEV_CHECK_ASM)

.PHONY: refdev-cuda refdev-rocm
