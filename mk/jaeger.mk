# Jaeger for local tracing. Included by the root Makefile. The Jaeger v2
# all-in-one binary is pinned in tools/jaeger/go.mod (a module of its own,
# outside go.work, with Jaeger's replace directives and a complete go.sum)
# and built from source, so no image or prebuilt download is needed. Built
# from the Go module it has no web UI: `cosellctl trace <referral-id>` reads
# its query API instead.
#
#   make jaeger          build bin/jaeger (rebuilt only when the pin changes)
#   make run JAEGER=1    also start Jaeger (free ports, tools/jaeger/config.yaml)
#   make demo JAEGER=1   and point every service's OTLP exporter at it

JAEGER_BIN := $(BIN)/jaeger

.PHONY: jaeger

jaeger: $(JAEGER_BIN) ## build the pinned Jaeger v2 all-in-one into bin/jaeger

$(JAEGER_BIN): tools/jaeger/go.mod tools/jaeger/go.sum
	@mkdir -p $(BIN)
	cd tools/jaeger && GOWORK=off $(GO) build -mod=readonly -o $(JAEGER_BIN) github.com/jaegertracing/jaeger/cmd/jaeger

# make run JAEGER=1 / make demo JAEGER=1: build Jaeger first and hand its
# path to cosell-demo (its -jaeger flag defaults to $COSELL_DEMO_JAEGER).
ifneq ($(filter 1 true yes,$(JAEGER)),)
run demo: $(JAEGER_BIN)
export COSELL_DEMO_JAEGER := $(JAEGER_BIN)
endif
