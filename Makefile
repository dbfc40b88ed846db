# hermes-s6. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN := bin
CMDS := reconcile-profiles perm-watcher
# The stand-in's setuid helper (test images only; see hermetic/fix-run-owner).
HERMETIC_CMDS := fix-run-owner
FUZZTIME ?= 10s
# Test timeout covers the e2e suite (image builds plus container restarts).
TEST_TIMEOUT ?= 25m

.PHONY: help build test unit vet fuzz bench demo demo-clean e2e e2e-real image dist clean

help: ## list targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

build: ## static binaries in bin/ (CGO_ENABLED=0), as the image needs them
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ $(addprefix ./cmd/,$(CMDS)) $(addprefix ./hermetic/,$(HERMETIC_CMDS))

vet:
	$(GO) vet ./...

test: vet build ## everything: unit, root+s6 integration and Docker e2e tests
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

unit: ## only the fast tests (integration and e2e tests skip with -short)
	$(GO) test -short -count=1 ./...

fuzz: ## run every fuzz target briefly (FUZZTIME=10s)
	@set -e; for f in $$(grep -rlE '^func Fuzz' --include='*_test.go' .); do \
	  pkg=./$$(dirname $$f); \
	  for t in $$(grep -oE '^func Fuzz[A-Za-z0-9_]+' $$f | sed 's/^func //'); do \
	    echo "== fuzz $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg >/tmp/hermes-s6-fuzz.$$$$ 2>&1 && { cat /tmp/hermes-s6-fuzz.$$$$; rm -f /tmp/hermes-s6-fuzz.$$$$; continue; }; \
	    cat /tmp/hermes-s6-fuzz.$$$$; \
	    if grep -q 'context deadline exceeded' /tmp/hermes-s6-fuzz.$$$$ && ! grep -q 'Failing input written' /tmp/hermes-s6-fuzz.$$$$; then \
	      rm -f /tmp/hermes-s6-fuzz.$$$$; \
	      echo "== fuzz $$pkg $$t: the fuzzer's own deadline expired on a loaded machine, without a crasher; once more"; \
	      $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
	    else rm -f /tmp/hermes-s6-fuzz.$$$$; exit 1; fi; \
	  done; \
	done

IMAGE ?= hermes-s6:e2e
# Debian suite of the local base images (scripts/base-image.sh): trixie, the
# hermes image's base; sid has the s6 of s6-overlay 3.2.3.x.
SUITE ?= trixie
BASE_IMAGE ?= hermes-s6-base:$(SUITE)
HERMETIC_BASE_IMAGE ?= hermes-s6-base:$(SUITE)-s6
# The s6-overlay version the stand-in emulates (3.2.3.0: the hermes image's pin).
HERMETIC_S6_OVERLAY_VERSION ?= 3.2.3.0

image: build ## the hermetic test image (local base made by mmdebstrap if missing)
	scripts/base-image.sh $(SUITE)
	DOCKER_BUILDKIT=0 docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg HERMETIC_BASE_IMAGE=$(HERMETIC_BASE_IMAGE) \
	  --build-arg HERMETIC_S6_OVERLAY_VERSION=$(HERMETIC_S6_OVERLAY_VERSION) --target hermetic-test -t $(IMAGE) .

demo: image ## run it: boot a container with sample profiles and show, as hermes, its slots
	HERMES_S6_E2E_IMAGE=$(IMAGE) scripts/demo.sh

demo-clean: ## remove the demo container and its volume
	scripts/demo.sh --clean

e2e: ## only the Docker e2e suite (TestMain builds the images)
	$(GO) test -count=1 -timeout 20m -v ./e2e/

# The real s6-overlay release-style tarballs, one directory per version
# (the three .tar.xz, SHA256SUMS, VERSION), and the images made from them.
S6_OVERLAY_DIST ?= ../shared/s6-overlay-dist
S6_OVERLAY_VERSIONS ?= 3.2.3.0 3.2.3.2
REAL_IMAGE_PREFIX ?= hermes-s6:real

e2e-real: build ## the e2e suite on the production image built from real s6-overlay tarballs in S6_OVERLAY_DIST/<version>/
	S6_OVERLAY_DIST='$(S6_OVERLAY_DIST)' S6_OVERLAY_VERSIONS='$(S6_OVERLAY_VERSIONS)' REAL_IMAGE_PREFIX='$(REAL_IMAGE_PREFIX)' \
	  SUITE=$(SUITE) scripts/e2e-real.sh

dist: ## adopter's tarball dist/hermes-s6-<version>-<arch>.tar.xz (+ .sha256; GOARCH=arm64 for aarch64), see README
	VERSION=$(VERSION) scripts/dist.sh -o dist

# BENCH_BEFORE=<git revision>: also measure that revision's reconcile-profiles
# beside the current one, on the same inputs (built into $(BIN)/before/).
BENCH_BEFORE ?=

bench: build ## reproduce BENCHMARKS.md (needs root and s6; hyperfine for whole-process runs; idle machine)
	$(GO) test -run '^$$' -bench BenchmarkPass -benchtime 10x ./reconcile/
	@if [ -n "$(BENCH_BEFORE)" ]; then \
	  set -e; rm -rf $(BIN)/before-src; mkdir -p $(BIN)/before-src $(BIN)/before; \
	  git archive $(BENCH_BEFORE) | tar -x -C $(BIN)/before-src; \
	  (cd $(BIN)/before-src && CGO_ENABLED=0 $(GO) build -trimpath -ldflags '-s -w' -o ../before/ ./cmd/reconcile-profiles); \
	  rm -rf $(BIN)/before-src; \
	fi
	@if command -v hyperfine >/dev/null; then \
	  $(GO) run ./bench/reconcile -strace -bin $(BIN)/reconcile-profiles $(if $(BENCH_BEFORE),-before $(BIN)/before/reconcile-profiles); \
	else \
	  echo '*** hyperfine is not installed (apt-get install hyperfine):'; \
	  echo '*** the whole-process runs of reconcile-profiles were NOT measured.'; \
	fi
	$(GO) run ./bench/permwatcher -bin $(BIN)/perm-watcher

clean:
	rm -rf $(BIN) dist
