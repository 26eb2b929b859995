# ggml adapter (adapters/ggml): the ABI of kernels/include/greta_parity.h on
# ggml's public API (ggml-backend), so the suite tests llama.cpp's kernels.
# Included by the top Makefile with -include; nothing of `make test` depends
# on it. Works alone too: make -f adapters/ggml/ggml.mk adapter-ggml.
#
#   adapters/ggml/export-ggml.sh GGML_GIT_DIR
#                            the pinned ggml commit -> $(BUILD)/ggml-src
#                            (ignored; travels with build/ to a GPU machine)
#   make adapter-ggml [GGML_DIR=/path/to/ggml] [GGML_BACKEND=cpu|cuda]
#                            CMake build of ggml into $(BUILD)/ggml-$(GGML_BACKEND)
#                            (shared libraries in its lib/), then
#                            $(GGML_ADAPTER_LIB) (g++ -std=c++17, rpath
#                            $ORIGIN/ggml-$(GGML_BACKEND)/lib, only gp_*
#                            exported). cpu: ggml's CPU backend (development
#                            and tests without a GPU); cuda: GGML_CUDA=ON for
#                            CMAKE_CUDA_ARCHITECTURES=$(GGML_CUDA_ARCH); hip:
#                            GGML_HIP=ON for $(GGML_HIP_ARCH) (untested here:
#                            Debian's HIP 5.2 is too old for ggml-hip).
#   make adapter-ggml-test   $(BUILD)/ggml.test, the adapter's own Go tests
#                            (-tags ggmladapter)
#
# Run the suite on it (docs/ENGINES.md, scripts/gpu-ggml.sh):
#   cd parity && go test -run '^TestParity$$' -parity.lib ../$(GGML_ADAPTER_LIB) \
#       -parity.contract=engine -parity.expect-routes=none
#
# The CMake build is incremental: a build cut short (a 10-minute limit) goes
# on where it stopped when the same command runs again. Only what the
# adapter needs is built: no tests, examples, BLAS, other backends, no
# -march=native (GGML_NATIVE=OFF), no flash-attention instances of
# quantized K/V (GGML_CUDA_FA_ALL_QUANTS=OFF). A missing ggml tree, cmake or
# compiler is an error with a message, never a silent pass.

BUILD ?= build
GGML_DIR ?= $(BUILD)/ggml-src
GGML_BACKEND ?= cpu
GGML_CUDA_ARCH ?= 90
GGML_HIP_ARCH ?= gfx942
GGML_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
GGML_CMAKE ?= cmake
GGML_CXX ?= g++
GGML_ADAPTER_DIR := adapters/ggml
GGML_ADAPTER_LIB := $(BUILD)/libgreta_parity_ggml.so
GGML_BUILD_DIR := $(BUILD)/ggml-$(GGML_BACKEND)
GGML_OBJ_DIR := $(BUILD)/ggml-obj
GGML_ADAPTER_SRCS := $(GGML_ADAPTER_DIR)/greta_ggml.cpp $(GGML_ADAPTER_DIR)/ggml_glue.cpp $(GGML_ADAPTER_DIR)/ggml_dispatch.cpp \
	$(GGML_ADAPTER_DIR)/ggml_mlp.cpp
# gp_common.c with its fault functions renamed, as torch.mk does it
# (TORCH_COMMON_RENAME): the adapter exports its own fault list and
# forwards to these.
GGML_COMMON_RENAME := -Dgp_set_fault=gp_common_set_fault -Dgp_active_fault=gp_common_active_fault \
	-Dgp_fault_count=gp_common_fault_count -Dgp_fault_name=gp_common_fault_name

# Ninja where there is one (the GPU image has it): faster to resume.
GGML_GENERATOR := $(if $(shell command -v ninja 2>/dev/null),-G Ninja,)
GGML_CMAKE_FLAGS := -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON \
	-DCMAKE_LIBRARY_OUTPUT_DIRECTORY=$(abspath $(GGML_BUILD_DIR))/lib \
	-DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF -DGGML_NATIVE=OFF -DGGML_CCACHE=OFF \
	-DGGML_BLAS=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_RPC=OFF -DGGML_BACKEND_DL=OFF
ifeq ($(GGML_BACKEND),cuda)
GGML_CMAKE_FLAGS += -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$(GGML_CUDA_ARCH) \
	-DGGML_CUDA_FA=ON -DGGML_CUDA_FA_ALL_QUANTS=OFF -DGGML_CUDA_GRAPHS=OFF
GGML_ADAPTER_DEFS := -DGP_GGML_CUDA
GGML_LINK_LIBS := -lggml-cuda
else ifeq ($(GGML_BACKEND),hip)
# ROCm (ggml-hip: the CUDA sources through HIP; needs ROCm >= 6.1 with
# hipBLAS and rocBLAS). Not run by this repository (see docs/ENGINES.md).
GGML_CMAKE_FLAGS += -DGGML_HIP=ON -DGPU_TARGETS=$(GGML_HIP_ARCH) -DGGML_CUDA_FA=ON
GGML_ADAPTER_DEFS := -DGP_GGML_CUDA -DGP_GGML_HIP
GGML_LINK_LIBS := -lggml-hip
else ifeq ($(GGML_BACKEND),cpu)
GGML_CMAKE_FLAGS += -DGGML_CUDA=OFF
GGML_ADAPTER_DEFS :=
GGML_LINK_LIBS :=
else
$(error GGML_BACKEND=$(GGML_BACKEND): want cpu, cuda or hip)
endif
GGML_LINK_LIBS += -lggml-cpu -lggml -lggml-base

GGML_CXXFLAGS := -std=c++17 -O2 -fPIC -Wall -Wextra -Wno-unused-parameter -Ikernels/include -Ikernels/common

# The CMake build of ggml (configure until a build system exists, then an
# incremental build; phony so that a partial build always goes on).
ggml-lib:
	@test -f "$(GGML_DIR)/include/ggml.h" && test -f "$(GGML_DIR)/CMakeLists.txt" || { \
		echo "adapter-ggml: no ggml sources at GGML_DIR=$(GGML_DIR) (include/ggml.h, CMakeLists.txt)." >&2; \
		echo "  Export the pinned commit: adapters/ggml/export-ggml.sh /path/to/ggml/.git, or set GGML_DIR to a checkout." >&2; \
		exit 1; }
	@command -v $(GGML_CMAKE) >/dev/null || { \
		echo "adapter-ggml: $(GGML_CMAKE) not found (apt-get install cmake)" >&2; exit 1; }
	@command -v $(GGML_CXX) >/dev/null || { \
		echo "adapter-ggml: $(GGML_CXX) not found (apt-get install g++)" >&2; exit 1; }
	@if [ "$(GGML_BACKEND)" = cuda ] && ! command -v nvcc >/dev/null && [ -z "$(CUDACXX)" ]; then \
		echo "adapter-ggml: GGML_BACKEND=cuda needs nvcc on PATH (or CUDACXX); GGML_BACKEND=cpu builds the CPU variant" >&2; exit 1; fi
	@mkdir -p $(GGML_BUILD_DIR)
	@if [ ! -f $(GGML_BUILD_DIR)/build.ninja ] && [ ! -f $(GGML_BUILD_DIR)/Makefile ]; then \
		echo "adapter-ggml: configure ggml ($(GGML_BACKEND)) from $(GGML_DIR)"; \
		rm -f $(GGML_BUILD_DIR)/CMakeCache.txt; \
		set -x; $(GGML_CMAKE) -S $(GGML_DIR) -B $(GGML_BUILD_DIR) $(GGML_GENERATOR) $(GGML_CMAKE_FLAGS) || exit 1; fi
	$(GGML_CMAKE) --build $(GGML_BUILD_DIR) -j$(GGML_JOBS)

$(GGML_OBJ_DIR)/gp_common.o: kernels/common/gp_common.c kernels/common/gp_common.h kernels/common/gp_half.h \
		kernels/include/greta_parity.h $(GGML_ADAPTER_DIR)/ggml.mk
	@mkdir -p $(@D)
	gcc -std=c11 -O2 -fPIC -Wall -Wextra -Ikernels/include -Ikernels/common $(GGML_COMMON_RENAME) -c $< -o $@

# The adapter is relinked on every make adapter-ggml (a few seconds): the
# same file name serves both backends, so it must follow GGML_BACKEND.
adapter-ggml: ggml-lib $(GGML_OBJ_DIR)/gp_common.o
	@commit=$$(cat "$(GGML_DIR)/GGML_COMMIT" 2>/dev/null); \
	if [ -z "$$commit" ] && [ "$$(git -C "$(GGML_DIR)" rev-parse --show-toplevel 2>/dev/null)" = "$$(cd "$(GGML_DIR)" && pwd -P)" ]; then \
		commit=$$(git -C "$(GGML_DIR)" rev-parse HEAD); fi; \
	[ -n "$$commit" ] || commit=unknown; \
	set -x; \
	$(GGML_CXX) $(GGML_CXXFLAGS) $(GGML_ADAPTER_DEFS) -DGP_GGML_COMMIT="\"$$commit\"" \
		-isystem $(GGML_DIR)/include -shared -o $(GGML_ADAPTER_LIB) $(GGML_ADAPTER_SRCS) \
		$(GGML_OBJ_DIR)/gp_common.o -Wl,--version-script=$(GGML_ADAPTER_DIR)/exports.map \
		-L$(GGML_BUILD_DIR)/lib -Wl,-rpath,'$$ORIGIN/ggml-$(GGML_BACKEND)/lib' \
		-Wl,--no-as-needed $(GGML_LINK_LIBS) -Wl,--as-needed

adapter-ggml-test:
	@mkdir -p $(BUILD)
	$(GO) test -c -tags ggmladapter -o $(BUILD)/ggml.test ./$(GGML_ADAPTER_DIR)/ggmltest

.PHONY: ggml-lib adapter-ggml adapter-ggml-test
