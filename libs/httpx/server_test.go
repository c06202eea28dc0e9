package httpx_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/cosell/cosell/libs/httpx"
)

type readyBody struct {
	Status  string   `json:"status"`
	Failing []string `json:"failing"`
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func ready(t *testing.T, s *httpx.Server) (int, readyBody) {
	t.Helper()
	code, body := get(t, s.Handler(), "/readyz")
	var rb readyBody
	if err := json.Unmarshal([]byte(body), &rb); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	return code, rb
}

func TestReadyzReportsFailingChecks(t *testing.T) {
	s := httpx.New(httpx.Config{ReadyTimeout: 50 * time.Millisecond})
	if code, _ := ready(t, s); code != http.StatusOK {
		t.Fatalf("no checks: /readyz = %d, want 200", code)
	}

	var natsErr error
	s.AddCheck("postgres", func(context.Context) error { return nil })
	s.AddCheck("nats", func(context.Context) error { return natsErr })
	if code, rb := ready(t, s); code != http.StatusOK || rb.Status != "ready" {
		t.Fatalf("all checks pass: /readyz = %d %+v", code, rb)
	}

	natsErr = errors.New("nats: no servers available")
	code, rb := ready(t, s)
	if code != http.StatusServiceUnavailable || strings.Join(rb.Failing, ",") != "nats" {
		t.Fatalf("failing check: /readyz = %d %+v, want 503 naming nats", code, rb)
	}

	// A check that ignores its context counts as failing once the timeout
	// passes, instead of hanging the probe.
	release := make(chan struct{})
	defer close(release)
	s.AddCheck("stuck", func(context.Context) error { <-release; return nil })
	s.AddCheck("panics", func(context.Context) error { panic("boom") })
	code, rb = ready(t, s)
	if code != http.StatusServiceUnavailable || strings.Join(rb.Failing, ",") != "nats,stuck,panics" {
		t.Fatalf("/readyz = %d %+v, want 503 naming nats, stuck and panics", code, rb)
	}
	if code, _ := get(t, s.Handler(), "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d while not ready; liveness must not follow readiness", code)
	}
}

func TestReadyzFlipsOnShutdown(t *testing.T) {
	s := httpx.New(httpx.Config{})
	s.AddCheck("postgres", func(context.Context) error { return nil })
	s.BeginShutdown()
	code, rb := ready(t, s)
	if code != http.StatusServiceUnavailable || rb.Status != "shutting down" {
		t.Fatalf("/readyz after BeginShutdown = %d %+v, want 503 shutting down", code, rb)
	}
	if code, _ := get(t, s.Handler(), "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d during shutdown", code)
	}
}

func TestServeTurnsReadinessOffThenDrainsInFlightRequests(t *testing.T) {
	s := httpx.New(httpx.Config{ShutdownTimeout: time.Minute})
	started, proceed := make(chan struct{}), make(chan struct{})
	s.Router().Post("/work", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-proceed
		w.WriteHeader(http.StatusAccepted)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	base := "http://" + ln.Addr().String()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz while serving = %d", resp.StatusCode)
	}

	inflight := make(chan int, 1)
	go func() {
		resp, err := http.Post(base+"/work", "text/plain", strings.NewReader("x"))
		if err != nil {
			inflight <- -1
			return
		}
		resp.Body.Close()
		inflight <- resp.StatusCode
	}()
	<-started
	cancel()

	// Readiness turns off while the request is still in flight.
	for {
		if code, _ := ready(t, s); code == http.StatusServiceUnavailable {
			break
		}
		select {
		case err := <-served:
			t.Fatalf("Serve returned before the in-flight request finished: %v", err)
		default:
		}
		time.Sleep(time.Millisecond)
	}
	close(proceed)
	if code := <-inflight; code != http.StatusAccepted {
		t.Errorf("in-flight request got %d, want 202: shutdown must let it finish", code)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve after clean shutdown: %v", err)
	}
}

func TestServeGivesUpOnRequestsThatOutliveTheShutdownTimeout(t *testing.T) {
	s := httpx.New(httpx.Config{ShutdownTimeout: 20 * time.Millisecond})
	started, proceed := make(chan struct{}), make(chan struct{})
	defer close(proceed)
	s.Router().Get("/hang", func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-proceed
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/hang")
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-started
	cancel()
	if err := <-served; err == nil {
		t.Fatal("Serve reported a clean shutdown although a request was cut off")
	}
}

func TestRunFailsOnBadAddress(t *testing.T) {
	s := httpx.New(httpx.Config{Addr: "256.0.0.1:http"})
	if err := s.Run(t.Context()); err == nil {
		t.Fatal("Run on an invalid address succeeded")
	}
}

func TestAppRoutesAreTracedHealthRoutesAreNot(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() {
		otel.SetTracerProvider(prevTP)
		otel.SetTextMapPropagator(prevProp)
	})

	s := httpx.New(httpx.Config{Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "cosell_up 1\n")
	})})
	s.Router().Route("/referrals", func(r chi.Router) {
		r.Get("/{id}", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, chi.URLParam(r, "id"))
		})
	})
	s.Router().Get("/boom", func(http.ResponseWriter, *http.Request) { panic("handler bug") })

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req := httptest.NewRequest(http.MethodGet, "/referrals/r-42", nil)
	req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusOK || w.Body.String() != "r-42" {
		t.Fatalf("GET /referrals/r-42 = %d %q", w.Code, w.Body.String())
	}
	if code, _ := get(t, s.Handler(), "/boom"); code != http.StatusInternalServerError {
		t.Errorf("panicking handler: %d, want 500", code)
	}
	get(t, s.Handler(), "/healthz")
	get(t, s.Handler(), "/readyz")
	if code, body := get(t, s.Handler(), "/metrics"); code != http.StatusOK || body != "cosell_up 1\n" {
		t.Errorf("/metrics = %d %q", code, body)
	}

	var names []string
	for _, sp := range rec.Ended() {
		names = append(names, sp.Name())
		if sp.Name() == "GET /referrals/{id}" && sp.SpanContext().TraceID().String() != traceID {
			t.Errorf("span did not continue the caller's trace: %s", sp.SpanContext().TraceID())
		}
	}
	if strings.Join(names, ",") != "GET /referrals/{id},GET /boom" {
		t.Errorf("spans = %v, want one per app request named by route and none for probes", names)
	}
}
