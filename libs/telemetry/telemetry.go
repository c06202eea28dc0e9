// Package telemetry sets up OpenTelemetry for a cosell service: traces
// exported over OTLP, metrics served at /metrics for Prometheus and exported
// over OTLP, W3C trace-context propagation, JSON logs that carry the trace
// id, and an instrumented HTTP client for calls to external APIs.
//
// OTLP export is configured only through the standard OTEL_EXPORTER_OTLP_*
// variables (endpoint, headers, timeout, TLS, and protocol: http/protobuf,
// the default, or grpc) and is off unless an endpoint is set. Without one
// the service's spans record nothing but still get ids, so trace context
// propagates to the next service and every log line has a trace_id.
//
// What never goes on spans, metrics or logs: access and refresh tokens,
// client secrets, private keys, Authorization and Cookie headers, passwords
// in connection strings, query-string values of outbound calls (redacted by
// HTTPClient), SQL parameter values (pgx tracing records statement text
// only), and customer contact details (names, e-mail addresses, phone
// numbers of referral contacts). Record identifiers (referral id,
// opportunity id, message id) are fine and are what makes traces useful.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Config says who the service is; everything about where telemetry goes
// comes from the standard OTEL_* environment variables.
type Config struct {
	// ServiceName becomes service.name on every span and metric
	// (OTEL_SERVICE_NAME overrides it).
	ServiceName string
	// Version becomes service.version.
	Version string
	// Logger receives OpenTelemetry's own errors (a collector that cannot be
	// reached, a dropped export); nil discards them.
	Logger *slog.Logger
	// MetricInterval is how often metrics are pushed over OTLP when that is
	// enabled; zero means OTEL_METRIC_EXPORT_INTERVAL or the SDK default (60s).
	MetricInterval time.Duration
	// Getenv reads the variables that decide whether OTLP export is on;
	// nil means os.Getenv. The exporters themselves always read the process
	// environment.
	Getenv func(string) string
}

// Telemetry owns the service's tracer and meter providers. Setup also
// installs them as the OpenTelemetry globals, because instrumentation
// libraries (otelhttp, otelpgx) find their providers there.
type Telemetry struct {
	// TracerProvider is the SDK tracer provider when traces are exported,
	// and otherwise a provider of spans that propagate trace context
	// without recording anything; use Tracer for spans.
	TracerProvider trace.TracerProvider
	// MeterProvider is the SDK meter provider; use Meter for instruments.
	MeterProvider *sdkmetric.MeterProvider
	// Registry is the private Prometheus registry behind MetricsHandler: OTel
	// metrics plus Go runtime and process collectors. It is not the
	// Prometheus global registry, so two Setups in one test binary never
	// collide.
	Registry *prometheus.Registry

	// TracesExported and MetricsExported report whether OTLP export is on.
	TracesExported, MetricsExported bool

	sdkTracer      *sdktrace.TracerProvider // nil when traces are not exported
	metricsHandler http.Handler
	stopPprof      func(context.Context) error
}

// Setup builds the providers, installs them and the W3C TraceContext and
// Baggage propagators as globals, and returns the Telemetry whose Shutdown
// flushes them.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	if cfg.ServiceName == "" {
		return nil, errors.New("telemetry: service name is required")
	}
	getenv := cfg.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	if cfg.Logger != nil {
		logger := cfg.Logger
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
			logger.Warn("opentelemetry error", "err", err)
		}))
	}

	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t := &Telemetry{}

	t.TracerProvider = propagatingProvider{}
	if exportEnabled(getenv, "TRACES") {
		exp, err := newTraceExporter(ctx, protocol(getenv, "TRACES"))
		if err != nil {
			return nil, fmt.Errorf("telemetry: trace exporter: %w", err)
		}
		// Defaults of the batch processor: 2048 queued spans, batches of
		// 512, every 5s. Spans beyond the queue are dropped, keeping memory
		// bounded when the collector is down.
		t.sdkTracer = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp))
		t.TracerProvider = t.sdkTracer
		t.TracesExported = true
	}

	t.Registry = prometheus.NewRegistry()
	if err := t.Registry.Register(collectors.NewGoCollector()); err != nil {
		return nil, errors.Join(fmt.Errorf("telemetry: register go collector: %w", err), t.shutdownTracer(ctx))
	}
	if err := t.Registry.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, errors.Join(fmt.Errorf("telemetry: register process collector: %w", err), t.shutdownTracer(ctx))
	}
	promExp, err := otelprom.New(otelprom.WithRegisterer(t.Registry))
	if err != nil {
		return nil, errors.Join(fmt.Errorf("telemetry: prometheus exporter: %w", err), t.shutdownTracer(ctx))
	}
	mpOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExp)}
	if exportEnabled(getenv, "METRICS") {
		exp, err := newMetricExporter(ctx, protocol(getenv, "METRICS"))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("telemetry: metric exporter: %w", err), t.shutdownTracer(ctx))
		}
		var readerOpts []sdkmetric.PeriodicReaderOption
		if cfg.MetricInterval > 0 {
			readerOpts = append(readerOpts, sdkmetric.WithInterval(cfg.MetricInterval))
		}
		mpOpts = append(mpOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, readerOpts...)))
		t.MetricsExported = true
	}
	t.MeterProvider = sdkmetric.NewMeterProvider(mpOpts...)
	t.metricsHandler = promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{})

	if addr := getenv(EnvPprofAddr); addr != "" {
		stop, err := startPprof(addr, cfg.Logger)
		if err != nil {
			return nil, errors.Join(err, t.shutdownTracer(ctx), t.MeterProvider.Shutdown(ctx))
		}
		t.stopPprof = stop
	}

	otel.SetTracerProvider(t.TracerProvider)
	otel.SetMeterProvider(t.MeterProvider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{},
	))
	return t, nil
}

// Tracer returns a named tracer from the service's provider.
func (t *Telemetry) Tracer(name string) trace.Tracer { return t.TracerProvider.Tracer(name) }

// Meter returns a named meter from the service's provider; its instruments
// show up at /metrics and, when configured, over OTLP.
func (t *Telemetry) Meter(name string) metric.Meter { return t.MeterProvider.Meter(name) }

// MetricsHandler serves the Prometheus text exposition of the private
// registry, for /metrics.
func (t *Telemetry) MetricsHandler() http.Handler { return t.metricsHandler }

// Shutdown flushes pending spans and metrics and stops the providers. It is
// the last-but-one step of a service's shutdown (before closing the pool),
// and ctx bounds how long a slow collector can delay exit.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	if t.stopPprof != nil {
		if err := t.stopPprof(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop pprof server: %w", err))
		}
	}
	if err := t.shutdownTracer(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shut down tracer provider: %w", err))
	}
	if err := t.MeterProvider.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("shut down meter provider: %w", err))
	}
	return errors.Join(errs...)
}

// shutdownTracer flushes and stops the SDK tracer provider, if any.
func (t *Telemetry) shutdownTracer(ctx context.Context) error {
	if t.sdkTracer == nil {
		return nil
	}
	return t.sdkTracer.Shutdown(ctx)
}

func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	attrs := []resource.Option{
		resource.WithAttributes(semconv.ServiceName(cfg.ServiceName)),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithProcessPID(),
		// Last, so OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win.
		resource.WithFromEnv(),
	}
	if cfg.Version != "" {
		attrs = append([]resource.Option{resource.WithAttributes(semconv.ServiceVersion(cfg.Version))}, attrs...)
	}
	res, err := resource.New(ctx, append(attrs, resource.WithSchemaURL(semconv.SchemaURL))...)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// exportEnabled applies the standard variables: OTEL_SDK_DISABLED turns all
// export off, OTEL_<SIGNAL>_EXPORTER=none turns one signal off, and
// otherwise a signal is exported when a generic or signal-specific OTLP
// endpoint is set.
func exportEnabled(getenv func(string) string, signal string) bool {
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_SDK_DISABLED")), "true") {
		return false
	}
	if strings.EqualFold(strings.TrimSpace(getenv("OTEL_"+signal+"_EXPORTER")), "none") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// newTraceExporter builds the OTLP trace exporter for the configured
// protocol; the exporter reads endpoint, headers, TLS and timeout from the
// environment itself.
func newTraceExporter(ctx context.Context, proto string) (sdktrace.SpanExporter, error) {
	switch proto {
	case "http/protobuf":
		return otlptracehttp.New(ctx)
	case "grpc":
		return otlptracegrpc.New(ctx)
	}
	return nil, fmt.Errorf("OTLP protocol %q is not supported; use http/protobuf or grpc", proto)
}

// newMetricExporter is newTraceExporter for metrics.
func newMetricExporter(ctx context.Context, proto string) (sdkmetric.Exporter, error) {
	switch proto {
	case "http/protobuf":
		return otlpmetrichttp.New(ctx)
	case "grpc":
		return otlpmetricgrpc.New(ctx)
	}
	return nil, fmt.Errorf("OTLP protocol %q is not supported; use http/protobuf or grpc", proto)
}

func protocol(getenv func(string) string, signal string) string {
	if p := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL")); p != "" {
		return p
	}
	if p := strings.TrimSpace(getenv("OTEL_EXPORTER_OTLP_PROTOCOL")); p != "" {
		return p
	}
	return "http/protobuf"
}
