package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/cosell/cosell/libs/bus"
	libconfig "github.com/cosell/cosell/libs/config"
	"github.com/cosell/cosell/libs/migrate"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/telemetry"
	"github.com/cosell/cosell/migrations"
	"github.com/cosell/cosell/services/ingress/internal/config"
	"github.com/cosell/cosell/services/ingress/internal/signature"
	"github.com/cosell/cosell/services/ingress/internal/testevents"
	"github.com/cosell/cosell/services/ingress/internal/webhook"
)

// serviceName names the service in logs, traces, metrics, its NATS
// connection, its Postgres application_name and its migrations.
const serviceName = "ingress"

// certMaxBytes bounds a certificate download; a DER certificate is ~1.5 KiB.
const certMaxBytes = 64 << 10

// readyTimeout bounds one readiness probe.
const readyTimeout = 2 * time.Second

// run serves until ctx is cancelled, then shuts down in order: readiness
// off, HTTP shutdown (in-flight deliveries finish their publish), NATS
// drain, Postgres pool, telemetry flush.
func run(ctx context.Context, log *slog.Logger) error {
	// Configuration.
	cfg, err := config.Load(ctx, nil)
	if err != nil {
		return err
	}
	log = cfg.Logger(serviceName, os.Stdout)
	libconfig.LogEffective(log, cfg)
	roots, err := loadRoots(cfg.TrustedCAFile)
	if err != nil {
		return err
	}

	// Telemetry.
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: serviceName, Logger: log})
	if err != nil {
		return err
	}
	// SHUTDOWN_TIMEOUT bounds the whole shutdown; the budget starts when
	// shutdown does (or now, if start-up fails before serving).
	var deadline time.Time
	defer func() {
		if deadline.IsZero() {
			deadline = time.Now().Add(cfg.ShutdownTimeout)
		}
		sctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Error("flushing telemetry", "err", err)
		}
	}()

	propagator := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

	// Postgres: only test-created events need it, so ingress starts (and
	// accepts referral events) while the database is down.
	pool, err := store.NewPool(ctx, cfg.DatabaseURL.Reveal(), store.WithoutPing(), store.WithMaxConns(2),
		store.WithApplicationName(serviceName),
		store.WithTracerProvider(tel.TracerProvider), store.WithMeterProvider(tel.MeterProvider))
	if err != nil {
		return err
	}
	defer pool.Close()

	// NATS and the notifications stream.
	conn, err := bus.Connect(ctx, cfg.NATSURL.Reveal(), serviceName, bus.WithLogger(log),
		bus.WithTracerProvider(tel.TracerProvider), bus.WithMeterProvider(tel.MeterProvider), bus.WithPropagator(propagator))
	if err != nil {
		return err
	}
	defer conn.Close() // a no-op after the drain below
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{MaxAge: cfg.StreamMaxAge, DeadLetterMaxAge: cfg.DeadLetterMaxAge}); err != nil {
		return err
	}

	// Wiring.
	certs, err := signature.NewCertStore(signature.CertStoreConfig{
		Fetcher:      signature.NewHTTPFetcher(nil, cfg.CertFetchTimeout, certMaxBytes),
		Roots:        roots,
		Organization: cfg.RequiredOrg,
	})
	if err != nil {
		return err
	}
	hook, err := webhook.New(
		webhook.Config{MaxBodyBytes: cfg.MaxBodyBytes, PublishTimeout: cfg.PublishTimeout},
		webhook.Deps{
			Verifier:  signature.NewVerifier(signature.URLPolicy{Hosts: cfg.CertHosts, AllowHTTP: cfg.CertAllowHTTP}, certs),
			Publisher: conn,
			Tests:     testevents.New(pool),
			Subject:   bus.NotificationSubject,
			Logger:    log,
			Meter:     tel.MeterProvider.Meter(serviceName),
			Tracer:    tel.TracerProvider.Tracer(serviceName),
		})
	if err != nil {
		return err
	}
	var shuttingDown atomic.Bool
	mux := http.NewServeMux()
	mux.Handle("POST "+webhook.Path, webhook.Instrument(hook, tel.TracerProvider, tel.MeterProvider, propagator))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { writeStatus(w, nil) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		writeStatus(w, ready(r.Context(), &shuttingDown, conn))
	})
	mux.Handle("GET /metrics", tel.MetricsHandler())
	srv := &http.Server{
		Addr:              cfg.HTTPAddr,
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15*time.Second + cfg.PublishTimeout,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}

	// Serve.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("serving", "addr", ln.Addr().String())

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	}

	// Ordered shutdown within one budget.
	shuttingDown.Store(true)
	deadline = time.Now().Add(cfg.ShutdownTimeout)
	sctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var errs []error
	step := func(name string, f func(context.Context) error) {
		if err := f(sctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	step("http shutdown", srv.Shutdown)
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("http server: %w", err))
	}
	step("nats drain", conn.Drain)
	log.Info("stopped")
	return errors.Join(errs...)
}

// ready reports whether ingress can accept deliveries: not shutting down,
// connected to NATS, and the notifications stream exists.
func ready(ctx context.Context, shuttingDown *atomic.Bool, conn *bus.Conn) error {
	if shuttingDown.Load() {
		return errors.New("shutting down")
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	if err := conn.Ready(ctx); err != nil {
		return err
	}
	if _, err := conn.JetStream().Stream(ctx, bus.StreamNotifications); err != nil {
		return fmt.Errorf("stream %s: %w", bus.StreamNotifications, err)
	}
	return nil
}

func writeStatus(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json")
	body := map[string]string{"status": "ok"}
	if err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		body = map[string]string{"status": "unavailable", "error": err.Error()}
	}
	_ = json.NewEncoder(w).Encode(body) // the prober may be gone
}

// loadRoots returns the trust anchors in the PEM file at path, or nil (the
// system roots) when path is empty.
func loadRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("WEBHOOK_TRUSTED_CA_FILE: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("WEBHOOK_TRUSTED_CA_FILE %s holds no PEM certificate", path)
	}
	return pool, nil
}

// migrateUp applies the ingress migrations to DATABASE_URL.
func migrateUp(ctx context.Context, log *slog.Logger) error {
	cfg, err := config.Load(ctx, nil)
	if err != nil {
		return err
	}
	fsys, err := migrations.FS(serviceName)
	if err != nil {
		return err
	}
	if err := migrate.Up(ctx, cfg.DatabaseURL.Reveal(), serviceName, fsys); err != nil {
		return err
	}
	log.Info("migrations applied")
	return nil
}
