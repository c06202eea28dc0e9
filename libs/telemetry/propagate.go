package telemetry

import (
	"context"
	"encoding/binary"
	"math/rand/v2"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
	"go.opentelemetry.io/otel/trace/noop"
)

// propagatingProvider is the tracer provider of a service that exports no
// traces. Its spans record nothing (no attributes, events or timings are
// kept, so instrumentation that checks IsRecording skips its work) but each
// has a real span context: a child continues its parent's trace with the
// parent's flags, and a root starts a new trace marked sampled. So trace
// context still flows to the next service, a downstream service that does
// export still records its part of the journey, and every log line and
// audit entry still carries a trace id. An SDK provider without an exporter
// would give the same ids at the cost of building every span only to drop
// it: about a tenth of each service's CPU under load.
type propagatingProvider struct {
	embedded.TracerProvider
}

// Tracer returns the one tracer; names and options do not matter when
// nothing is recorded.
func (p propagatingProvider) Tracer(string, ...trace.TracerOption) trace.Tracer {
	return propagatingTracer{}
}

type propagatingTracer struct {
	embedded.Tracer
}

// Start returns ctx with a non-recording span whose context continues the
// parent's trace, or starts a new sampled one (also when the start options
// ask for a new root).
func (propagatingTracer) Start(ctx context.Context, _ string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	parent := trace.SpanContextFromContext(ctx)
	if start := trace.NewSpanStartConfig(opts...); start.NewRoot() {
		parent = trace.SpanContext{}
	}
	cfg := trace.SpanContextConfig{SpanID: newSpanID(), TraceFlags: trace.FlagsSampled}
	if parent.IsValid() {
		cfg.TraceID, cfg.TraceFlags, cfg.TraceState = parent.TraceID(), parent.TraceFlags(), parent.TraceState()
	} else {
		cfg.TraceID = newTraceID()
	}
	s := propagatingSpan{sc: trace.NewSpanContext(cfg)}
	return trace.ContextWithSpan(ctx, s), s
}

// propagatingSpan is a noop span that reports its own span context.
type propagatingSpan struct {
	noop.Span
	sc trace.SpanContext
}

func (s propagatingSpan) SpanContext() trace.SpanContext { return s.sc }

func (propagatingSpan) TracerProvider() trace.TracerProvider { return propagatingProvider{} }

// newTraceID and newSpanID draw random ids as the SDK does: ids need to be
// unique, not secret, so the runtime's fast generator is enough.
func newTraceID() trace.TraceID {
	var id trace.TraceID
	for !id.IsValid() {
		binary.NativeEndian.PutUint64(id[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(id[8:], rand.Uint64())
	}
	return id
}

func newSpanID() trace.SpanID {
	var id trace.SpanID
	for !id.IsValid() {
		binary.NativeEndian.PutUint64(id[:], rand.Uint64())
	}
	return id
}
