package stack

import (
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Span is one span received by a TraceSink, reduced to what tests check.
type Span struct {
	Service    string
	Name       string
	TraceID    string
	SpanID     string
	ParentID   string
	Kind       string
	Start, End time.Time
	Attributes map[string]string
	// LinkedTraces are the trace ids of the span's links (a batched call
	// links the spans of every item it carries).
	LinkedTraces []string
}

// TraceSink is a minimal OTLP/HTTP receiver (protobuf encoding, the
// exporters' default) that keeps every span in memory, so tests can assert
// on the traces the real services export without running Jaeger.
type TraceSink struct {
	URL string // base URL to put in OTEL_EXPORTER_OTLP_ENDPOINT

	srv   *http.Server
	mu    sync.Mutex
	spans []Span
}

// StartTraceSink listens on a free loopback port.
func StartTraceSink() (*TraceSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &TraceSink{URL: "http://" + ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", t.handle)
	// Services export metrics (and may export logs) to the same endpoint;
	// accept and discard them so their exporters see a healthy collector.
	discard := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, 32<<20))
		w.Header().Set("Content-Type", "application/x-protobuf")
	}
	mux.HandleFunc("POST /v1/metrics", discard)
	mux.HandleFunc("POST /v1/logs", discard)
	t.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = t.srv.Serve(ln) }()
	return t, nil
}

// Close stops the receiver.
func (t *TraceSink) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return t.srv.Shutdown(ctx)
}

func (t *TraceSink) handle(w http.ResponseWriter, r *http.Request) {
	var rd io.Reader = http.MaxBytesReader(w, r.Body, 32<<20)
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(rd)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		defer gz.Close()
		rd = gz
	}
	body, err := io.ReadAll(rd)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		http.Error(w, fmt.Sprintf("not an OTLP protobuf trace export: %v", err), http.StatusBadRequest)
		return
	}
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				attrs := map[string]string{}
				for _, a := range sp.GetAttributes() {
					v := a.GetValue()
					switch {
					case v.GetStringValue() != "":
						attrs[a.GetKey()] = v.GetStringValue()
					default:
						attrs[a.GetKey()] = fmt.Sprint(v.GetValue())
					}
				}
				var linked []string
				for _, l := range sp.GetLinks() {
					linked = append(linked, hex.EncodeToString(l.GetTraceId()))
				}
				got = append(got, Span{
					Service: service, Name: sp.GetName(),
					TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
					ParentID: hex.EncodeToString(sp.GetParentSpanId()), Kind: sp.GetKind().String(),
					Start: time.Unix(0, int64(sp.GetStartTimeUnixNano())), End: time.Unix(0, int64(sp.GetEndTimeUnixNano())),
					Attributes: attrs, LinkedTraces: linked,
				})
			}
		}
	}
	t.mu.Lock()
	t.spans = append(t.spans, got...)
	t.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	_, _ = w.Write(out)
}

// Spans returns a copy of every span received so far.
func (t *TraceSink) Spans() []Span {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Span(nil), t.spans...)
}

// Trace returns the spans of one trace.
func (t *TraceSink) Trace(traceID string) []Span {
	var out []Span
	for _, s := range t.Spans() {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}
