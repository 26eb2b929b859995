# PyTorch adapter (adapters/torch): the ABI of kernels/include/greta_parity.h
# on ATen, so the suite tests PyTorch's own kernels. Included by the top
# Makefile with -include; nothing of `make test` depends on it.
#
#   make adapter-torch       $(TORCH_ADAPTER_LIB): g++ against the PyTorch
#                            that `$(PYTHON) -c 'import torch'` finds (CUDA
#                            headers and libcudart from nvcc's folder, or
#                            CUDA_HOME)
#   make adapter-torch-cpu   $(TORCH_ADAPTER_CPU_LIB): the same glue on ATen's
#                            CPU kernels (-DGP_TORCH_CPU_ONLY, no CUDA), for
#                            checking the adapter on a machine without a GPU
#   make adapter-torch-test  build/torch.test, the adapter's own Go tests
#                            (sensitivity under both contracts, AUTO-only
#                            properties; -tags torchadapter)
#
# Run the suite on it (docs/ENGINES.md, scripts/gpu-torch.sh):
#   GRETA_TORCH_SDPA=flash|efficient|cudnn|math build/parity.test \
#       -parity.lib $(TORCH_ADAPTER_LIB) -parity.contract=engine -parity.expect-routes=none
#
# Where PyTorch is missing the build says so and fails. Overrides: PYTHON,
# TORCH_DIR (the torch package folder), TORCH_INC / TORCH_LIBDIR (a libtorch
# laid out otherwise, e.g. Debian's /usr/include and /usr/lib/<triplet>),
# TORCH_CXX11_ABI (0 or 1), CUDA_HOME.

PYTHON ?= python3
TORCH_CXX ?= g++
TORCH_ADAPTER_LIB := $(BUILD)/libgreta_parity_torch.so
TORCH_ADAPTER_CPU_LIB := $(BUILD)/libgreta_parity_torch_cpu.so
TORCH_ADAPTER_DIR := adapters/torch
TORCH_ADAPTER_SRC := $(TORCH_ADAPTER_DIR)/greta_torch.cpp
TORCH_ADAPTER_DEPS := $(TORCH_ADAPTER_SRC) $(TORCH_ADAPTER_DIR)/exports.map $(TORCH_ADAPTER_DIR)/torch.mk \
	kernels/include/greta_parity.h kernels/common/gp_common.h kernels/common/gp_common.c \
	kernels/common/gp_half.h
TORCH_OBJ_DIR := $(BUILD)/torch-obj
# gp_common.c with its fault functions renamed: the adapter exports its own
# (only the faults it implements) and forwards to these.
TORCH_COMMON_RENAME := -Dgp_set_fault=gp_common_set_fault -Dgp_active_fault=gp_common_active_fault \
	-Dgp_fault_count=gp_common_fault_count -Dgp_fault_name=gp_common_fault_name

# The shell that finds PyTorch (one python3 start) and sets TI (include
# flags), TL (library folder), ABI; fails with a message if it cannot.
define torch_find
TD="$(TORCH_DIR)"; \
if [ -z "$(TORCH_INC)$(TORCH_LIBDIR)" ] && [ -z "$$TD" ]; then \
	TD=$$($(PYTHON) -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null); \
fi; \
TI="$(TORCH_INC)"; TL="$(TORCH_LIBDIR)"; \
[ -n "$$TI" ] || TI="$$TD/include"; [ -n "$$TL" ] || TL="$$TD/lib"; \
if [ -z "$(TORCH_INC)$(TORCH_LIBDIR)" ] && [ -z "$$TD" ]; then \
	echo "adapter-torch: PyTorch not found: '$(PYTHON) -c \"import torch\"' failed (set PYTHON, TORCH_DIR or TORCH_INC/TORCH_LIBDIR)." >&2; \
	echo "  The adapter needs PyTorch; nothing else in this repo does (make test does not build it)." >&2; \
	exit 1; \
fi; \
if [ ! -f "$$TI/ATen/ATen.h" ] || ! ls "$$TL"/libtorch_cpu.* >/dev/null 2>&1; then \
	echo "adapter-torch: PyTorch at $$TD has no C++ headers or libraries" >&2; \
	echo "  (looked for $$TI/ATen/ATen.h and $$TL/libtorch_cpu.so; set TORCH_INC/TORCH_LIBDIR)." >&2; \
	echo "  The adapter needs PyTorch; nothing else in this repo does (make test does not build it)." >&2; \
	exit 1; \
fi; \
ABI="$(TORCH_CXX11_ABI)"; \
[ -n "$$ABI" ] || ABI=$$($(PYTHON) -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))' 2>/dev/null); \
[ -n "$$ABI" ] || ABI=1; \
STD=c++17; grep -q 'C++20 or later' "$$TI/ATen/ATen.h" && STD=c++20; \
INC="-isystem $$TI -isystem $$TI/torch/csrc/api/include"; \
[ "$$TI" = /usr/include ] && INC="-isystem $$TI/torch/csrc/api/include"
endef

# -std: c++17 (the brief of ABI adapters), c++20 where the headers demand it
# (PyTorch >= 2.12 or so refuses C++17 in ATen.h).
TORCH_CXXFLAGS := -O2 -fPIC -Wall -Wextra -Wno-unused-parameter -Ikernels/include -Ikernels/common

$(TORCH_OBJ_DIR)/gp_common.o: kernels/common/gp_common.c kernels/common/gp_common.h kernels/common/gp_half.h \
		kernels/include/greta_parity.h $(TORCH_ADAPTER_DIR)/torch.mk
	@mkdir -p $(@D)
	gcc -std=c11 -O2 -fPIC -Wall -Wextra -Ikernels/include -Ikernels/common $(TORCH_COMMON_RENAME) -c $< -o $@

$(TORCH_ADAPTER_LIB): $(TORCH_ADAPTER_DEPS) $(TORCH_OBJ_DIR)/gp_common.o | $(BUILD)
	@$(torch_find); \
	CH="$(CUDA_HOME)"; \
	if [ -z "$$CH" ]; then NV=$$(command -v nvcc || true); [ -n "$$NV" ] && CH=$$(dirname "$$(dirname "$$NV")"); fi; \
	if [ -z "$$CH" ] || [ ! -f "$$CH/include/cuda_runtime_api.h" ]; then \
		echo "adapter-torch: CUDA headers not found (no nvcc on PATH, CUDA_HOME unset); make adapter-torch-cpu builds the CPU-only variant" >&2; exit 1; \
	fi; \
	CL="$$CH/lib64"; [ -d "$$CL" ] || CL="$$CH/lib"; \
	echo "adapter-torch: torch headers $$TI, libs $$TL, _GLIBCXX_USE_CXX11_ABI=$$ABI, CUDA $$CH"; \
	set -x; \
	$(TORCH_CXX) -std=$$STD $(TORCH_CXXFLAGS) -D_GLIBCXX_USE_CXX11_ABI=$$ABI \
		$$INC -isystem "$$CH/include" \
		-shared -o $@ $(TORCH_ADAPTER_SRC) $(TORCH_OBJ_DIR)/gp_common.o \
		-Wl,--version-script=$(TORCH_ADAPTER_DIR)/exports.map \
		-L"$$TL" -L"$$CL" -Wl,-rpath,"$$TL" -Wl,-rpath,"$$CL" \
		-Wl,--no-as-needed -ltorch -ltorch_cpu -ltorch_cuda -lc10 -lc10_cuda -lcudart -Wl,--as-needed

$(TORCH_ADAPTER_CPU_LIB): $(TORCH_ADAPTER_DEPS) $(TORCH_OBJ_DIR)/gp_common.o | $(BUILD)
	@$(torch_find); \
	echo "adapter-torch-cpu: torch headers $$TI, libs $$TL, _GLIBCXX_USE_CXX11_ABI=$$ABI"; \
	set -x; \
	$(TORCH_CXX) -std=$$STD $(TORCH_CXXFLAGS) -DGP_TORCH_CPU_ONLY -D_GLIBCXX_USE_CXX11_ABI=$$ABI \
		$$INC \
		-shared -o $@ $(TORCH_ADAPTER_SRC) $(TORCH_OBJ_DIR)/gp_common.o \
		-Wl,--version-script=$(TORCH_ADAPTER_DIR)/exports.map \
		-L"$$TL" -Wl,-rpath,"$$TL" -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 -Wl,--as-needed

adapter-torch: $(TORCH_ADAPTER_LIB)

adapter-torch-cpu: $(TORCH_ADAPTER_CPU_LIB)

adapter-torch-test: | $(BUILD)
	$(GO) test -c -tags torchadapter -o $(BUILD)/torch.test ./$(TORCH_ADAPTER_DIR)/torchtest

.PHONY: adapter-torch adapter-torch-cpu adapter-torch-test
