package telemetry

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Log attribute keys every cosell service uses, so logs from all services
// can be searched the same way.
const (
	LogKeyService = "service"
	LogKeyTraceID = "trace_id"
	LogKeySpanID  = "span_id"
)

// NewLogger returns the JSON logger a service uses everywhere: every record
// carries service, and, when logged with a context holding a span
// (logger.InfoContext(ctx, …)), trace_id and span_id at the top level, so a
// log line leads straight to its trace in Jaeger.
func NewLogger(service string, level slog.Leveler, w io.Writer) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(NewTraceHandler(h)).With(LogKeyService, service)
}

// NewTraceHandler wraps h so that each record gets trace_id and span_id from
// its context. They stay at the top level of the record even under
// Logger.WithGroup, where plain attributes would be nested.
func NewTraceHandler(h slog.Handler) slog.Handler {
	return &traceHandler{base: h}
}

// traceHandler keeps the groups opened on it (and the attributes added
// inside them) itself, instead of opening them on base, so that it can still
// add the trace ids outside every group when a record is handled.
type traceHandler struct {
	base   slog.Handler
	groups []group
}

type group struct {
	name  string
	attrs []slog.Attr
}

func (h *traceHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.base.Enabled(ctx, level)
}

func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if len(h.groups) > 0 {
		attrs := make([]slog.Attr, 0, r.NumAttrs())
		r.Attrs(func(a slog.Attr) bool {
			attrs = append(attrs, a)
			return true
		})
		// Nest from the innermost group outwards.
		for i := len(h.groups) - 1; i >= 0; i-- {
			g := h.groups[i]
			inner := append(append([]slog.Attr{}, g.attrs...), attrs...)
			attrs = []slog.Attr{slog.Attr{Key: g.name, Value: slog.GroupValue(inner...)}}
		}
		nr := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
		nr.AddAttrs(attrs...)
		r = nr
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(
			slog.String(LogKeyTraceID, sc.TraceID().String()),
			slog.String(LogKeySpanID, sc.SpanID().String()),
		)
	}
	return h.base.Handle(ctx, r)
}

func (h *traceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	if len(h.groups) == 0 {
		return &traceHandler{base: h.base.WithAttrs(attrs)}
	}
	groups := append([]group{}, h.groups...)
	last := &groups[len(groups)-1]
	last.attrs = append(append([]slog.Attr{}, last.attrs...), attrs...)
	return &traceHandler{base: h.base, groups: groups}
}

func (h *traceHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	groups := append(append([]group{}, h.groups...), group{name: name})
	return &traceHandler{base: h.base, groups: groups}
}
