// Package httpx is the small HTTP server every cosell service runs: /healthz
// (the process is alive), /readyz (its dependencies answer, and it is not
// shutting down), /metrics (Prometheus), and the service's own routes, traced
// with OpenTelemetry. Run serves until its context ends and then shuts down
// in the order Kubernetes needs: readiness fails first so no new traffic is
// routed here, then in-flight requests finish within a time box.
package httpx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Defaults for Config's zero values.
const (
	DefaultReadyTimeout    = 2 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
)

// Check reports whether one dependency is usable; a nil error means ready.
// Checks run concurrently on every /readyz request, bounded by the ready
// timeout, so they must be cheap (a ping, a connection status).
type Check func(ctx context.Context) error

// Config configures a Server.
type Config struct {
	// Addr is the listen address, e.g. ":8080".
	Addr string
	// Logger receives server errors and readiness changes; nil discards them.
	Logger *slog.Logger
	// Metrics serves /metrics (telemetry.Telemetry.MetricsHandler); nil
	// leaves the route out.
	Metrics http.Handler
	// ReadyTimeout bounds one /readyz evaluation (default 2s).
	ReadyTimeout time.Duration
	// ShutdownDelay is how long Run keeps serving after readiness turned
	// not-ready, so load balancers stop routing here before connections are
	// refused (a few seconds under Kubernetes; zero elsewhere).
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds waiting for in-flight requests (default 10s);
	// connections still open after it are closed.
	ShutdownTimeout time.Duration
}

// Server is the service's HTTP server. Register routes and checks before Run.
type Server struct {
	cfg    Config
	logger *slog.Logger
	mux    *chi.Mux
	app    chi.Router

	shuttingDown atomic.Bool

	mu          sync.Mutex
	checks      []namedCheck
	lastFailing string // for logging readiness changes only once
}

type namedCheck struct {
	name  string
	check Check
}

// New returns a Server with the health, readiness and metrics routes in
// place.
func New(cfg Config) *Server {
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, logger: logger, mux: chi.NewRouter()}
	// Probes and scrapes are not traced: they would drown the traces that
	// matter and carry no trace context anyway.
	s.mux.Get("/healthz", s.healthz)
	s.mux.Get("/readyz", s.readyz)
	if cfg.Metrics != nil {
		s.mux.Method(http.MethodGet, "/metrics", cfg.Metrics)
	}
	s.app = s.mux.With(
		otelhttp.NewMiddleware("http.server",
			otelhttp.WithSpanNameFormatter(spanName),
			otelhttp.WithMetricAttributesFn(routeAttrs),
		),
		nameSpanByRoute,
		recoverer(logger),
	)
	return s
}

// Router is where the service adds its own routes (and route middleware such
// as MaxBytes). Every request to them gets a server span named after its
// route pattern, continuing the caller's trace, and a recovered panic
// becomes a 500.
func (s *Server) Router() chi.Router { return s.app }

// Handler returns the full handler, for tests and for callers that serve it
// themselves.
func (s *Server) Handler() http.Handler { return s.mux }

// AddCheck registers a readiness check under name; /readyz reports the
// names of failing checks.
func (s *Server) AddCheck(name string, check Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, namedCheck{name: name, check: check})
}

// BeginShutdown makes /readyz answer 503 from now on. Run calls it first
// thing when its context ends; a service calls it itself when it starts
// shutting down some other way.
func (s *Server) BeginShutdown() {
	if !s.shuttingDown.Swap(true) {
		s.logger.Info("readiness off: shutting down")
	}
}

// Run listens on Config.Addr and serves until ctx ends, then shuts down (see
// Serve).
func (s *Server) Run(ctx context.Context) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends. Then it turns readiness off, keeps
// serving for ShutdownDelay, and shuts the server down, waiting up to
// ShutdownTimeout for in-flight requests before closing what is left. It
// returns nil after a clean shutdown and an error if serving failed or the
// wait timed out.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.logger.Info("http server listening", "addr", ln.Addr().String())

	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}

	s.BeginShutdown()
	if s.cfg.ShutdownDelay > 0 {
		t := time.NewTimer(s.cfg.ShutdownDelay)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return fmt.Errorf("serve http: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	shutdownErr := srv.Shutdown(sctx)
	if shutdownErr != nil {
		shutdownErr = errors.Join(fmt.Errorf("shut down http: %w", shutdownErr), srv.Close())
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return errors.Join(shutdownErr, fmt.Errorf("serve http: %w", err))
	}
	s.logger.Info("http server stopped")
	return shutdownErr
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.shuttingDown.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "shutting down"})
		return
	}
	s.mu.Lock()
	checks := slices.Clone(s.checks)
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { errs[i] = runCheck(ctx, c.check) })
	}
	wg.Wait()

	var failing []string
	for i, err := range errs {
		if err != nil {
			failing = append(failing, checks[i].name)
		}
	}
	s.noteReadiness(r.Context(), checks, errs, failing)
	if len(failing) > 0 {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "not ready", "failing": failing})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready"})
}

// runCheck runs one check, turning a panic into a failure and a check that
// ignores its context into a timeout.
func runCheck(ctx context.Context, c Check) (err error) {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		done <- c(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("check timed out: %w", ctx.Err())
	}
}

// noteReadiness logs when the set of failing checks changes, with the
// errors, which the HTTP response leaves out (they may name internal hosts).
func (s *Server) noteReadiness(ctx context.Context, checks []namedCheck, errs []error, failing []string) {
	key := strings.Join(failing, ",")
	s.mu.Lock()
	changed := key != s.lastFailing
	s.lastFailing = key
	s.mu.Unlock()
	if !changed {
		return
	}
	if len(failing) == 0 {
		s.logger.InfoContext(ctx, "ready")
		return
	}
	attrs := make([]any, 0, len(failing))
	for i, err := range errs {
		if err != nil {
			attrs = append(attrs, slog.String(checks[i].name, err.Error()))
		}
	}
	s.logger.WarnContext(ctx, "not ready", slog.Group("failing", attrs...))
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	// The client may be gone; nothing useful to do with the error.
	_ = json.NewEncoder(w).Encode(body)
}

// spanName names server spans "METHOD /route/{pattern}" so that span names
// stay few however many ids appear in paths.
func spanName(_ string, r *http.Request) string {
	if p := chi.RouteContext(r.Context()).RoutePattern(); p != "" {
		return r.Method + " " + p
	}
	return r.Method
}

func routeAttrs(r *http.Request) []attribute.KeyValue {
	if p := chi.RouteContext(r.Context()).RoutePattern(); p != "" {
		return []attribute.KeyValue{attribute.String("http.route", p)}
	}
	return nil
}

// nameSpanByRoute sets the final route pattern on the span once routing is
// complete, which matters for mounted sub-routers whose pattern is only
// partly known when the span starts.
func nameSpanByRoute(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if p := chi.RouteContext(r.Context()).RoutePattern(); p != "" {
			span := trace.SpanFromContext(r.Context())
			span.SetName(r.Method + " " + p)
			span.SetAttributes(attribute.String("http.route", p))
		}
	})
}

// recoverer turns a handler panic into a logged 500 instead of a dropped
// connection, keeping the span and metrics of the request intact.
func recoverer(logger *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer func() {
				p := recover()
				if p == nil {
					return
				}
				if p == http.ErrAbortHandler {
					panic(p)
				}
				logger.ErrorContext(r.Context(), "handler panicked", "panic", fmt.Sprint(p), "method", r.Method, "route", chi.RouteContext(r.Context()).RoutePattern())
				http.Error(w, http.StatusText(http.StatusInternalServerError), http.StatusInternalServerError)
			}()
			next.ServeHTTP(w, r)
		})
	}
}
