package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	collmetric "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	colltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/telemetry"
)

// noEnv keeps OTLP export off whatever the machine's environment says.
func noEnv(string) string { return "" }

func setup(t *testing.T, service string) *telemetry.Telemetry {
	t.Helper()
	tel, err := telemetry.Setup(t.Context(), telemetry.Config{ServiceName: service, Version: "1.2.3", Getenv: noEnv})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	t.Cleanup(func() {
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return tel
}

func decodeLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestTraceIDLandsInJSONLogs(t *testing.T) {
	tel := setup(t, "mapper")
	if tel.TracesExported || tel.MetricsExported {
		t.Fatal("OTLP export on without an endpoint")
	}
	var buf bytes.Buffer
	logger := telemetry.NewLogger("mapper", slog.LevelInfo, &buf)

	ctx, span := tel.Tracer("test").Start(t.Context(), "work")
	sc := span.SpanContext()
	if !sc.IsValid() {
		t.Fatal("span without ids although no exporter is configured")
	}
	logger.InfoContext(ctx, "in span", "referral", "r-1")
	logger.WithGroup("req").With("method", "POST").InfoContext(ctx, "grouped", "status", 200)
	span.End()
	logger.InfoContext(t.Context(), "no span")
	logger.DebugContext(ctx, "filtered by level")

	lines := decodeLines(t, &buf)
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3 (debug filtered):\n%s", len(lines), buf.String())
	}
	for i, l := range lines {
		if l["service"] != "mapper" {
			t.Errorf("line %d: service = %v", i, l["service"])
		}
	}
	for _, l := range lines[:2] {
		if l["trace_id"] != sc.TraceID().String() || l["span_id"] != sc.SpanID().String() {
			t.Errorf("line %v: trace_id/span_id = %v/%v, want %s/%s", l["msg"], l["trace_id"], l["span_id"], sc.TraceID(), sc.SpanID())
		}
	}
	if lines[0]["referral"] != "r-1" {
		t.Errorf("attribute lost: %v", lines[0])
	}
	req, ok := lines[1]["req"].(map[string]any)
	if !ok || req["method"] != "POST" || req["status"] != float64(200) {
		t.Errorf("group not nested as slog would: %v", lines[1])
	}
	if _, ok := lines[2]["trace_id"]; ok {
		t.Errorf("trace_id on a line logged without a span: %v", lines[2])
	}
}

func TestMetricsEndpointExposesCountersFromTheMeterProvider(t *testing.T) {
	tel := setup(t, "ingress")
	other := setup(t, "mapper") // a second Setup must not collide
	counter, err := tel.Meter("test").Int64Counter("cosell.test.widgets")
	if err != nil {
		t.Fatalf("counter: %v", err)
	}
	counter.Add(t.Context(), 3, metric.WithAttributes(attribute.String("outcome", "ok")))

	body := scrape(t, tel.MetricsHandler())
	for _, want := range []string{
		`cosell_test_widgets_total{`,
		`outcome="ok"`,
		`service_name="ingress"`,
		"process_resident_memory_bytes",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if !strings.Contains(lineWith(body, "cosell_test_widgets_total{"), "} 3") {
		t.Errorf("counter value wrong: %q", lineWith(body, "cosell_test_widgets_total{"))
	}
	if strings.Contains(scrape(t, other.MetricsHandler()), "cosell_test_widgets_total") {
		t.Error("another Telemetry's registry shows this one's counter")
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics status %d", rec.Code)
	}
	return rec.Body.String()
}

func lineWith(body, prefix string) string {
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func TestSetupInstallsW3CPropagators(t *testing.T) {
	setup(t, "ingress")
	fields := strings.Join(otel.GetTextMapPropagator().Fields(), ",")
	for _, want := range []string{"traceparent", "tracestate", "baggage"} {
		if !strings.Contains(fields, want) {
			t.Errorf("global propagator fields %q lack %s", fields, want)
		}
	}
}

// collector is a minimal OTLP/HTTP receiver.
type collector struct {
	mu      sync.Mutex
	traces  []*colltrace.ExportTraceServiceRequest
	metrics []*collmetric.ExportMetricsServiceRequest
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch r.URL.Path {
	case "/v1/traces":
		var req colltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.traces = append(c.traces, &req)
	case "/v1/metrics":
		var req collmetric.ExportMetricsServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		c.metrics = append(c.metrics, &req)
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func TestExportsOverOTLPWhenEndpointIsSet(t *testing.T) {
	coll := &collector{}
	srv := httptest.NewServer(coll)
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")

	tel, err := telemetry.Setup(t.Context(), telemetry.Config{ServiceName: "salesforce-adapter", Version: "0.1.0"})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if !tel.TracesExported || !tel.MetricsExported {
		t.Fatalf("export not enabled: traces=%v metrics=%v", tel.TracesExported, tel.MetricsExported)
	}
	_, span := tel.Tracer("test").Start(t.Context(), "upsert opportunity")
	span.End()
	counter, err := tel.Meter("test").Int64Counter("cosell.test.exported")
	if err != nil {
		t.Fatalf("counter: %v", err)
	}
	counter.Add(t.Context(), 1)
	if err := tel.Shutdown(t.Context()); err != nil { // flushes both signals
		t.Fatalf("Shutdown: %v", err)
	}

	coll.mu.Lock()
	defer coll.mu.Unlock()
	var spanNames, services []string
	for _, req := range coll.traces {
		for _, rs := range req.ResourceSpans {
			for _, a := range rs.Resource.Attributes {
				if a.Key == "service.name" {
					services = append(services, a.Value.GetStringValue())
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					spanNames = append(spanNames, s.Name)
				}
			}
		}
	}
	if strings.Join(spanNames, ",") != "upsert opportunity" || strings.Join(services, ",") != "salesforce-adapter" {
		t.Errorf("exported spans %v from services %v", spanNames, services)
	}
	var metricNames []string
	for _, req := range coll.metrics {
		for _, rm := range req.ResourceMetrics {
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					metricNames = append(metricNames, m.Name)
				}
			}
		}
	}
	if !strings.Contains(strings.Join(metricNames, ","), "cosell.test.exported") {
		t.Errorf("exported metrics %v lack cosell.test.exported", metricNames)
	}
}

func TestSetupRejectsUnknownProtocolAndMissingName(t *testing.T) {
	env := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}
	if _, err := telemetry.Setup(t.Context(), telemetry.Config{ServiceName: "x", Getenv: func(k string) string { return env[k] }}); err == nil {
		t.Error("unknown protocol accepted")
	}
	if _, err := telemetry.Setup(t.Context(), telemetry.Config{Getenv: noEnv}); err == nil {
		t.Error("missing service name accepted")
	}
}

func TestExportSwitches(t *testing.T) {
	tests := []struct {
		env             map[string]string
		traces, metrics bool
	}{
		{map[string]string{}, false, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, true, true},
		{map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, true, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_METRICS_EXPORTER": "none"}, true, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"}, false, false},
	}
	for _, tc := range tests {
		tel, err := telemetry.Setup(t.Context(), telemetry.Config{ServiceName: "x", Getenv: func(k string) string { return tc.env[k] }})
		if err != nil {
			t.Fatalf("%v: Setup: %v", tc.env, err)
		}
		if tel.TracesExported != tc.traces || tel.MetricsExported != tc.metrics {
			t.Errorf("%v: traces=%v metrics=%v, want %v %v", tc.env, tel.TracesExported, tel.MetricsExported, tc.traces, tc.metrics)
		}
		// Nothing listens at c:4318; a cancelled context keeps the final
		// flush from retrying.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_ = tel.Shutdown(ctx)
	}
}

func TestHTTPClientTracesWithoutLeakingSecrets(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevTP := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prevTP) })
	setup(t, "partnercenter-adapter") // installs the propagator
	otel.SetTracerProvider(tp)

	type seen struct{ query, auth, traceparent string }
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("traceparent")}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	ctx, parent := tp.Tracer("test").Start(t.Context(), "sweep")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/query?q=SELECT+Id+FROM+Account+WHERE+Name='Contoso'&access_token=s3cret", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer s3cret-token")
	resp, err := telemetry.HTTPClient(nil).Do(req)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	resp.Body.Close()
	parent.End()

	s := <-got
	if !strings.Contains(s.query, "access_token=s3cret") || !strings.Contains(s.query, "Contoso") {
		t.Errorf("server received query %q: the real URL was not sent", s.query)
	}
	if s.auth != "Bearer s3cret-token" {
		t.Errorf("server received Authorization %q", s.auth)
	}
	if !strings.Contains(s.traceparent, parent.SpanContext().TraceID().String()) {
		t.Errorf("traceparent %q does not carry the caller's trace", s.traceparent)
	}

	var client sdktrace.ReadOnlySpan
	for _, sp := range rec.Ended() {
		if sp.SpanKind().String() == "client" {
			client = sp
		}
	}
	if client == nil {
		t.Fatal("no client span recorded")
	}
	if client.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Error("client span is not a child of the caller's span")
	}
	var urlFull string
	for _, a := range client.Attributes() {
		v := a.Value.Emit()
		if strings.Contains(v, "s3cret") || strings.Contains(v, "Contoso") || strings.Contains(v, "Bearer") {
			t.Errorf("span attribute %s leaks a secret: %s", a.Key, v)
		}
		if a.Key == "url.full" {
			urlFull = v
		}
	}
	if !strings.Contains(urlFull, "/v1/query?") || !strings.Contains(urlFull, "access_token="+telemetry.Redacted) {
		t.Errorf("url.full = %q, want the path with redacted query values", urlFull)
	}
}

func TestPprofServedOnlyWhenAsked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{telemetry.EnvPprofAddr: addr}
	tel, err := telemetry.Setup(t.Context(), telemetry.Config{ServiceName: "x", Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatalf("GET pprof: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("pprof status %d", resp.StatusCode)
	}
	if err := tel.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if _, err := http.Get("http://" + addr + "/debug/pprof/cmdline"); err == nil {
		t.Fatal("pprof still served after Shutdown")
	}
}
