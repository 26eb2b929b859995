# CI targets, included by the Makefile (`include ci.mk`). The tools are
# pinned and fetched with `go run pkg@version`, so a runner needs nothing but
# Go, and a developer gets the same versions as CI.

GO ?= go
BUILD ?= build

ACTIONLINT := github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
GOTESTSUM := gotest.tools/gotestsum@v1.13.0
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: lint-workflows test-junit staticcheck

# actionlint checks .github/workflows/*.yml; it runs shellcheck on the run:
# scripts when shellcheck is on PATH (apt-get install shellcheck).
lint-workflows:
	$(GO) run $(ACTIONLINT)

# Every Go test, as JUnit XML for CI's test report (build/junit.xml).
test-junit: kernels-cpu
	mkdir -p $(BUILD)
	$(GO) run $(GOTESTSUM) --junitfile $(BUILD)/junit.xml -- $(GOFLAGS_TEST) ./...

staticcheck:
	$(GO) run $(STATICCHECK) ./...
