# CI targets, included by the Makefile (`include ci.mk`). The tools are
# pinned and fetched with `go run pkg@version`, so a runner needs nothing but
# Go, and a developer gets the same versions as CI.

GO ?= go
BUILD ?= build

ACTIONLINT := github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
GOTESTSUM := gotest.tools/gotestsum@v1.13.0
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: ci lint-workflows test-junit staticcheck mod-check gpu-test

# Everything CI runs, in one place: .ci/run (a clean clone; as root it
# installs the packages first) and the workflow's hosted job (which runs
# .ci/run) both end here. The suite runs once, in `make test`; with
# JUNIT_DIR=DIR it also leaves JUnit XML there.
CI_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
ci:
	@echo "== go vet, gofmt, clang-format, go mod tidy"
	$(MAKE) --no-print-directory vet fmt-check fmt-check-c mod-check
	@echo "== staticcheck, workflow lint"
	$(MAKE) --no-print-directory staticcheck lint-workflows
	@echo "== ROCm: compile check (gfx942, gfx90a); the whole library with clang-19 ($(ROCM_CLANG_ARCHS)), loaded through the suite"
	$(MAKE) --no-print-directory -j$(CI_JOBS) check-rocm kernels-rocm-clang
	$(MAKE) --no-print-directory check-rocm-lib
	@echo "== GPU tags and toolchain messages without a GPU"
	$(MAKE) --no-print-directory check-gpu-tags check-toolchain-msg
	@echo "== ASan/UBSan: C self-test and the Go suite on the sanitized CPU library"
	$(MAKE) --no-print-directory test-c-asan test-go-asan
	@echo "== tests (the README's test command)"
	$(MAKE) --no-print-directory test

# actionlint checks .github/workflows/*.yml; it runs shellcheck on the run:
# scripts when shellcheck is on PATH (apt-get install shellcheck).
lint-workflows:
	$(GO) run $(ACTIONLINT)

# The suite on a GPU runner (the workflow's mi300x and nvidia jobs, after
# make kernels-rocm / kernels-cuda):
#   make gpu-test TAGS=rocm|cuda [PART=all|rest|shard-I-of-N] [ARTIFACTS=DIR]
# shard-I-of-N runs shard I of TestParity's cases (-parity.shard=I/N; the N
# shards together run every case once), rest every other test, all both.
TAGS ?= rocm
PART ?= all
gpu-test:
	@set -e; case "$(PART)" in \
	all) sel= ;; \
	rest) sel="-skip ^TestParity$$" ;; \
	shard-*-of-*) p=$(PART); p=$${p#shard-}; sel="-run ^TestParity$$ -parity.shard=$${p%-of-*}/$${p#*-of-}" ;; \
	*) echo "gpu-test: PART=$(PART): want all, rest or shard-I-of-N"; exit 1 ;; \
	esac; \
	set -x; $(GO) test ./parity -tags $(TAGS) -count=1 -timeout 55m -parity.require-device \
		$(if $(ARTIFACTS),-parity.artifacts $(ARTIFACTS)) $$sel

# make test, with JUnit XML for a test report under $(BUILD)/junit/.
test-junit:
	$(MAKE) --no-print-directory test JUNIT_DIR=$(BUILD)/junit

# go.mod and go.sum must be what `go mod tidy` makes of them: every module
# the code imports required directly, nothing stale (go mod tidy -diff
# prints the change it would make and exits 1, touching nothing).
mod-check:
	@$(GO) mod tidy -diff || { echo "mod-check: go.mod/go.sum are not tidy: run go mod tidy (the diff above is what it changes)"; exit 1; }

staticcheck:
	$(GO) run $(STATICCHECK) ./...
