# Code generation: protobuf event schemas in proto/ -> Go in libs/events.
# Included by the root Makefile. The tools are pinned in tools/go.mod (a
# module of its own, outside go.work) and built from source into bin/tools,
# so every machine generates the same bytes without a system protoc.
#
#   make generate        build the pinned tools, lint proto/, regenerate libs/events
#   make generate-check  fail when the committed libs/events differs from what proto/ generates

GEN_TOOLS := $(CURDIR)/bin/tools
GEN_BUF := $(GEN_TOOLS)/buf
GEN_PATH := $(GEN_TOOLS):$(PATH)
# buf keeps its cache beside the tools rather than in $HOME.
export BUF_CACHE_DIR := $(GEN_TOOLS)/.cache
GEN_OUT := libs/events
GEN_TEMPLATE := proto/buf.gen.yaml

.PHONY: generate generate-check generate-tools

generate-tools: ## build the pinned code-generation tools into bin/tools
	@mkdir -p $(GEN_TOOLS)
	cd tools && GOWORK=off GOFLAGS=-mod=readonly $(GO) build -o $(GEN_TOOLS)/ tool

generate: generate-tools ## regenerate libs/events from proto/
	@echo "buf lint, format check, generate -> $(GEN_OUT)"
	@PATH="$(GEN_PATH)" $(GEN_BUF) lint proto
	@PATH="$(GEN_PATH)" $(GEN_BUF) format --diff --exit-code proto
	@rm -f $(GEN_OUT)/*/*.pb.go
	@PATH="$(GEN_PATH)" $(GEN_BUF) generate proto --template $(GEN_TEMPLATE)

generate-check: generate-tools ## fail if the committed generated code is out of date
	@set -euo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	PATH="$(GEN_PATH)" $(GEN_BUF) lint proto; \
	PATH="$(GEN_PATH)" $(GEN_BUF) format --diff --exit-code proto; \
	PATH="$(GEN_PATH)" $(GEN_BUF) generate proto --template $(GEN_TEMPLATE) -o "$$tmp"; \
	want=$$(cd "$$tmp/$(GEN_OUT)" && find . -name '*.pb.go' | sort); \
	have=$$(cd $(GEN_OUT) && find . -name '*.pb.go' | sort); \
	if [ "$$want" != "$$have" ]; then echo "generate-check: generated file set differs; run 'make generate'" >&2; diff <(echo "$$have") <(echo "$$want") >&2 || true; exit 1; fi; \
	for f in $$want; do cmp -s "$$tmp/$(GEN_OUT)/$$f" "$(GEN_OUT)/$$f" || { echo "generate-check: $(GEN_OUT)/$$f is out of date; run 'make generate'" >&2; exit 1; }; done; \
	echo "generate-check: $(GEN_OUT) is up to date"
