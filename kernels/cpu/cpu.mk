# CPU backend of the kernel ABI (kernels/include/greta_parity.h), its
# sanitizer build, and the C self-test (kernels/tests/abi_selftest.c), which
# dlopens a library and drives it only through the ABI.
#
#   make kernels-cpu       $(CPU_LIB)
#   make kernels-cpu-asan  $(CPU_ASAN_LIB) (ASan + UBSan, -O1)
#   make test-c            self-test against $(CPU_LIB)
#   make test-c-asan       self-test (itself sanitized) against $(CPU_ASAN_LIB)
#   make kernels-cpu-core  $(CPU_CORE_LIB): the same sources exporting only
#                          the ABI's core and gp_attention (core_only.map)
#   make test-c-core       its exported symbols, then the self-test against it
#                          (the optional capabilities' tests skip)
#
# The self-test runs against any backend: $(ABI_SELFTEST) path/to/lib.so
.PHONY: kernels-cpu kernels-cpu-asan kernels-cpu-core test-c test-c-asan test-c-core test-go-asan

CPU_CC ?= gcc
CPU_ASAN_LIB := $(BUILD)/libgreta_parity_cpu_asan.so
CPU_CORE_LIB := $(BUILD)/libgreta_parity_cpu_core.so
CPU_CORE_MAP := kernels/cpu/core_only.map
ABI_SELFTEST := $(BUILD)/abi_selftest
ABI_SELFTEST_ASAN := $(BUILD)/abi_selftest_asan

CPU_SRCS := $(sort $(wildcard kernels/cpu/*.c)) kernels/common/gp_common.c
CPU_HDRS := kernels/include/greta_parity.h $(wildcard kernels/common/*.h) \
	$(wildcard kernels/cpu/*.h)
# -Wno-unknown-pragmas: the OpenMP pragmas are ignored where -fopenmp is not
# used (the sanitizer build, compilers without OpenMP).
CPU_WARN := -Wall -Wextra -Werror -Wno-unknown-pragmas
CPU_INC := -Ikernels/include -Ikernels/common
# -ffp-contract=off: the code's fmaf calls are the only fused operations, so
# the reduction order is exactly what the source says.
# -mfma where the host has it turns each fmaf into one instruction instead
# of a libm call (same result: fmaf is exact either way); -fopenmp spreads
# independent output elements over the cores (each element's reduction
# order is unchanged, so results are identical with any thread count).
CPU_ARCH := $(shell grep -qw fma /proc/cpuinfo 2>/dev/null && echo -mfma)
CPU_OMP := $(shell echo 'int main(void){return 0;}' | $(CPU_CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo -fopenmp)
CPU_CFLAGS := -std=c11 -O2 -fPIC -shared -ffp-contract=off $(CPU_ARCH) $(CPU_OMP) $(CPU_WARN) $(CPU_INC)
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	-fno-omit-frame-pointer
CPU_ASAN_CFLAGS := -std=c11 -O1 -g -fPIC -shared -ffp-contract=off $(SAN_FLAGS) \
	$(CPU_WARN) $(CPU_INC)
SELFTEST_CFLAGS := -std=c11 -O2 -g $(CPU_WARN) $(CPU_INC)
SELFTEST_DEPS := kernels/tests/abi_selftest.c kernels/include/greta_parity.h \
	kernels/common/gp_half.h

kernels-cpu: $(CPU_LIB)

kernels-cpu-asan: $(CPU_ASAN_LIB)

$(CPU_LIB): $(CPU_SRCS) $(CPU_HDRS) kernels/cpu/cpu.mk | $(BUILD)
	$(CPU_CC) $(CPU_CFLAGS) -o $@ $(CPU_SRCS) -lm

$(CPU_ASAN_LIB): $(CPU_SRCS) $(CPU_HDRS) kernels/cpu/cpu.mk | $(BUILD)
	$(CPU_CC) $(CPU_ASAN_CFLAGS) -o $@ $(CPU_SRCS) -lm

# A library with no optional capability but "fused": the linker version
# script keeps every other symbol local.
kernels-cpu-core: $(CPU_CORE_LIB)

$(CPU_CORE_LIB): $(CPU_SRCS) $(CPU_HDRS) $(CPU_CORE_MAP) kernels/cpu/cpu.mk | $(BUILD)
	$(CPU_CC) $(CPU_CFLAGS) -Wl,--version-script=$(CPU_CORE_MAP) -o $@ $(CPU_SRCS) -lm

$(ABI_SELFTEST): $(SELFTEST_DEPS) kernels/cpu/cpu.mk | $(BUILD)
	$(CPU_CC) $(SELFTEST_CFLAGS) -o $@ kernels/tests/abi_selftest.c -ldl -lm

# The sanitized self-test loads the sanitizer runtimes itself, so the
# sanitized library can be dlopened without LD_PRELOAD.
$(ABI_SELFTEST_ASAN): $(SELFTEST_DEPS) kernels/cpu/cpu.mk | $(BUILD)
	$(CPU_CC) $(SELFTEST_CFLAGS) $(SAN_FLAGS) -o $@ kernels/tests/abi_selftest.c -ldl -lm

test-c: $(ABI_SELFTEST) $(CPU_LIB)
	$(ABI_SELFTEST) $(CPU_LIB)

test-c-asan: $(ABI_SELFTEST_ASAN) $(CPU_ASAN_LIB)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(ABI_SELFTEST_ASAN) $(CPU_ASAN_LIB)

# The core library must export exactly the symbols of core_only.map (nm -D),
# then pass the self-test, which skips the capabilities it lacks.
test-c-core: $(ABI_SELFTEST) $(CPU_CORE_LIB)
	@want=$$(sed -n 's/^ *\(gp_[a-z0-9_]*\);$$/\1/p' $(CPU_CORE_MAP) | sort); \
	got=$$(nm -D --defined-only $(CPU_CORE_LIB) | awk '$$3 ~ /^gp_/ {print $$3}' | sort); \
	if [ "$$want" != "$$got" ]; then \
		echo "test-c-core: $(CPU_CORE_LIB) exports:"; echo "$$got"; \
		echo "test-c-core: want (from $(CPU_CORE_MAP)):"; echo "$$want"; exit 1; fi; \
	echo "test-c-core: $(CPU_CORE_LIB) exports exactly the $$(echo "$$want" | wc -l) symbols of $(CPU_CORE_MAP)"
	$(ABI_SELFTEST) $(CPU_CORE_LIB)

# The Go suite against the ASan+UBSan library (debug shapes only: -O1 and
# the sanitizers make the 4096-wide shapes slow). The Go test binary is not
# sanitized itself, so the runtimes are preloaded; leak checking is off
# because the Go runtime's own allocations are not ours to judge.
ASAN_RT := $(shell $(CPU_CC) -print-file-name=libasan.so):$(shell $(CPU_CC) -print-file-name=libubsan.so)
test-go-asan: $(CPU_ASAN_LIB) | $(BUILD)
	$(GO) test -c -o $(BUILD)/parity-asan.test ./parity
	cd parity && LD_PRELOAD=$(ASAN_RT) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
		UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		$(abspath $(BUILD))/parity-asan.test -parity.lib $(abspath $(CPU_ASAN_LIB)) -parity.models tiny-k90,tiny-qwen
