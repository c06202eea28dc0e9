package telemetry

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// TestPropagatingProviderKeepsTraceContext checks what a service without a
// trace exporter still owes the next hop: ids on every span, a child in
// its parent's trace with the parent's flags, a new sampled trace for a
// root, and the context crossing a W3C traceparent header, while nothing
// is recorded.
func TestPropagatingProviderKeepsTraceContext(t *testing.T) {
	tr := propagatingProvider{}.Tracer("test")

	rootCtx, root := tr.Start(context.Background(), "root")
	rsc := root.SpanContext()
	if !rsc.IsValid() || !rsc.IsSampled() {
		t.Fatalf("root span context %v: want valid and sampled", rsc)
	}
	if root.IsRecording() {
		t.Error("a span records although nothing exports it")
	}
	root.SetAttributes() // a noop, and must not panic
	root.End()

	_, child := tr.Start(rootCtx, "child")
	if got := child.SpanContext(); got.TraceID() != rsc.TraceID() || got.SpanID() == rsc.SpanID() || !got.IsSampled() {
		t.Errorf("child %v of %v: want the parent's trace, a new span id, sampled", got, rsc)
	}

	_, other := tr.Start(context.Background(), "another root")
	if other.SpanContext().TraceID() == rsc.TraceID() {
		t.Error("two roots share a trace id")
	}

	_, fresh := tr.Start(rootCtx, "new root", trace.WithNewRoot())
	if fresh.SpanContext().TraceID() == rsc.TraceID() {
		t.Error("WithNewRoot continued the parent's trace")
	}

	// An unsampled parent from upstream keeps its flag: this service does
	// not turn on sampling the caller decided against.
	unsampled := trace.NewSpanContext(trace.SpanContextConfig{TraceID: rsc.TraceID(), SpanID: rsc.SpanID(), Remote: true})
	_, c2 := tr.Start(trace.ContextWithRemoteSpanContext(context.Background(), unsampled), "child of unsampled")
	if c2.SpanContext().IsSampled() || c2.SpanContext().TraceID() != rsc.TraceID() {
		t.Errorf("child of an unsampled parent: %v", c2.SpanContext())
	}

	// Across a hop: inject on one side, extract on the other.
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(rootCtx, carrier)
	next := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
	if next.TraceID() != rsc.TraceID() || next.SpanID() != rsc.SpanID() || !next.IsSampled() {
		t.Errorf("traceparent %q carried %v, want %v", carrier.Get("traceparent"), next, rsc)
	}
}

func BenchmarkPropagatingSpan(b *testing.B) {
	tr := propagatingProvider{}.Tracer("bench")
	ctx, root := tr.Start(context.Background(), "root")
	defer root.End()
	b.ReportAllocs()
	for b.Loop() {
		_, s := tr.Start(ctx, "child")
		s.End()
	}
}
