# cosell: the one entry point for people and CI.
#   make demo   build everything, run the whole system locally, sync referrals, print a summary
#   make run    the same system, kept running until Ctrl-C
#   make test   unit, integration and end-to-end tests (what CI runs)
#   make bench  the end-to-end benchmark and the emulators' Go benchmarks
SHELL := /bin/bash
export GOTOOLCHAIN := local
GO ?= go
BIN := $(CURDIR)/bin

# Postgres server DSN: DATABASE_URL when set, else the local server (started
# or installed by the script when absent). Evaluated only by targets that use it.
PG_DSN = $(shell scripts/ensure-postgres.sh)

include mk/generate.mk
include mk/jaeger.mk

.PHONY: all build test vet fmt-check demo run bench bench-go clean

all: build

build: ## build every binary into ./bin
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./emulators/cmd/... github.com/nats-io/nats-server/v2

vet:
	$(GO) vet work

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

test: ## unit, Postgres/JetStream integration and end-to-end tests of the whole workspace
	@dsn="$(PG_DSN)"; test -n "$$dsn" || { echo "no Postgres available" >&2; exit 1; }; \
	TEST_DATABASE_URL="$$dsn" $(GO) test -count=1 -timeout 14m work

demo: ## run the whole system on local defaults and sync seeded referrals
	@dsn="$(PG_DSN)"; test -n "$$dsn" || exit 1; \
	$(GO) run ./e2e/cmd/cosell-demo -database-url "$$dsn" -bin $(BIN)

run: ## start the same system and keep it running
	@dsn="$(PG_DSN)"; test -n "$$dsn" || exit 1; \
	$(GO) run ./e2e/cmd/cosell-demo -database-url "$$dsn" -bin $(BIN) -keep

bench: bench-go ## end-to-end benchmark (writes bench/out/latest.json)
	@dsn="$(PG_DSN)"; test -n "$$dsn" || exit 1; \
	$(GO) run ./e2e/cmd/cosell-bench -database-url "$$dsn" -bin $(BIN)

bench-go: ## Go benchmarks of the emulators' hot calls
	$(GO) test -run '^$$' -bench . -benchtime 3s ./emulators/...

clean:
	rm -rf $(BIN) .run bench/out
