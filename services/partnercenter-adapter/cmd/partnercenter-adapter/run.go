package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/propagation"

	"github.com/cosell/cosell/libs/bus"
	libconfig "github.com/cosell/cosell/libs/config"
	"github.com/cosell/cosell/libs/httpx"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/telemetry"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/admin"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/command"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/config"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/consumer"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/observe"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pgstore"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/registration"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/sweep"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/tokenstore"
)

// serviceName names the service in logs, traces, metrics, its NATS
// connection, its Postgres application_name and its migrations.
const serviceName = "partnercenter-adapter"

// Lease names: one replica sweeps, one replica registers the webhook.
const (
	leaseSweep        = serviceName + "/sweep"
	leaseRegistration = serviceName + "/registration"
)

// consumerPerCall is how many notification handlers run per allowed
// Partner Center call: handlers also wait on the publish, so a few more
// handlers than calls keep the call slots busy.
const consumerPerCall = 4

// run serves until ctx is cancelled, then shuts down in order: readiness
// off and HTTP shutdown, drain the notification and command consumers,
// stop the sweep, registration and pruning loops, drain NATS, flush
// telemetry, close the pool.
func run(ctx context.Context, log *slog.Logger, env map[string]string) error {
	// Configuration.
	cfg, err := config.Load(ctx, env)
	if err != nil {
		return err
	}
	log = cfg.Logger(serviceName, os.Stdout)
	libconfig.LogEffective(log, cfg)

	// Telemetry.
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: serviceName, Logger: log})
	if err != nil {
		return err
	}
	var deadline time.Time // set when shutdown starts; the whole shutdown shares SHUTDOWN_TIMEOUT
	shutdownCtx := func() (context.Context, context.CancelFunc) {
		if deadline.IsZero() {
			deadline = time.Now().Add(cfg.ShutdownTimeout)
		}
		return context.WithDeadline(context.Background(), deadline)
	}
	telFlushed := false
	defer func() {
		if telFlushed {
			return
		}
		sctx, cancel := shutdownCtx()
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Error("flushing telemetry", "err", err)
		}
	}()

	// Postgres. Deferred before telemetry's flush runs, so it closes last.
	// Each create in flight holds a connection for its per-opportunity
	// lock, on top of what everything else needs.
	pool, err := store.NewPool(ctx, cfg.DatabaseURL.Reveal(), store.WithApplicationName(serviceName),
		store.WithMaxConns(int32(store.DefaultMaxConns+cfg.CommandConcurrency)),
		store.WithTracerProvider(tel.TracerProvider), store.WithMeterProvider(tel.MeterProvider))
	if err != nil {
		return err
	}
	poolClosed := false
	defer func() {
		if !poolClosed {
			pool.Close()
		}
	}()
	st := pgstore.New(pool)

	// NATS.
	propagator := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	conn, err := bus.Connect(ctx, cfg.NATSURL.Reveal(), serviceName, bus.WithLogger(log),
		bus.WithTracerProvider(tel.TracerProvider), bus.WithMeterProvider(tel.MeterProvider),
		bus.WithPropagator(propagator), bus.WithDeadLetterSink(st.DeadLetters()))
	if err != nil {
		return err
	}
	defer conn.Close() // a no-op after the drain below
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{MaxAge: cfg.StreamMaxAge, DeadLetterMaxAge: cfg.DeadLetterMaxAge}); err != nil {
		return err
	}

	// Wiring.
	pc, err := newPartnerCenter(cfg, pool, log, tel)
	if err != nil {
		return err
	}
	meter := tel.Meter(serviceName)
	obs, err := observe.New(pc, conn, log, meter)
	if err != nil {
		return err
	}
	cons, err := consumer.New(obs, st, log, meter)
	if err != nil {
		return err
	}
	sweeper, err := sweep.New(pc, obs, st, sweep.Config{Overlap: cfg.SweepOverlap, Logger: log, TracerProvider: tel.TracerProvider, Meter: meter})
	if err != nil {
		return err
	}
	own := observe.NewOwnCreates(observe.DefaultOwnCreatesTTL, observe.DefaultOwnCreatesMax)
	obs.SkipOwnCreates(own)
	executor, err := command.New(pc, st, conn, command.Config{Created: own.Add, Logger: log, TracerProvider: tel.TracerProvider, Meter: meter})
	if err != nil {
		return err
	}
	srv := httpx.New(httpx.Config{Addr: cfg.HTTPAddr, Logger: log, Metrics: tel.MetricsHandler(), ShutdownTimeout: cfg.ShutdownTimeout / 4})
	srv.AddCheck("postgres", store.Ping(pool))
	srv.AddCheck("nats", conn.Ready)
	admin.Routes(srv.Router(), pc, log)
	// The operator's register and test run the start-up registration's
	// code under its lease, so two replicas never write at once.
	webhookAdmin := &admin.Webhook{
		API: pc, URL: cfg.WebhookURL, Mode: cfg.Mode,
		RegisterAtStart: cfg.WebhookRegister, OverwriteAtStart: cfg.WebhookOverwrite,
		Lease:  store.NewLease(pool, leaseRegistration, store.WithLeaseLogger(log)),
		Logger: log,
	}
	webhookAdmin.Routes(srv.Router())

	// Actors. Each group has its own stop so shutdown can go in order; a
	// failing actor stops the service.
	failed := make(chan error, 8)
	consCtx, stopCons := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCons()
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	var consumers, loops sync.WaitGroup
	consumers.Go(func() {
		if err := conn.Consume(consCtx, command.Spec(cfg.CommandConcurrency), executor.Handle); err != nil {
			failed <- fmt.Errorf("command consumer: %w", err)
		}
	})
	loops.Go(func() { pruneCommands(loopCtx, st, log) })
	retention, err := newRetention(pool, cfg, log, meter)
	if err != nil {
		return err
	}
	loops.Go(func() {
		// Its failures are logged: they must not stop the adapter.
		if err := retention.Run(loopCtx); err != nil {
			log.Warn("retention job stopped", "err", err)
		}
	})
	if cfg.Mode == config.ModeWebhook {
		consumers.Go(func() {
			if err := conn.Consume(consCtx, consumer.Spec(consumerPerCall*cfg.MaxConcurrency), cons.Handle); err != nil {
				failed <- fmt.Errorf("notification consumer: %w", err)
			}
		})
	}
	loops.Go(func() {
		lease := store.NewLease(pool, leaseSweep, store.WithLeaseLogger(log))
		if err := lease.Run(loopCtx, func(ctx context.Context) error { return sweeper.Loop(ctx, cfg.SweepInterval) }); err != nil {
			failed <- err
		}
	})
	switch {
	case cfg.Mode == config.ModePollOnly:
		log.Info("poll-only mode: not consuming notifications and never touching the webhook registration")
	case cfg.WebhookRegister:
		loops.Go(func() {
			lease := store.NewLease(pool, leaseRegistration, store.WithLeaseLogger(log))
			err := lease.Run(loopCtx, func(ctx context.Context) error {
				_, err := registration.EnsureWithRetry(ctx, pc, cfg.WebhookURL, cfg.WebhookOverwrite, log)
				return err
			})
			if err != nil {
				failed <- err
			}
		})
	default:
		log.Info("webhook registration not managed (PC_WEBHOOK_REGISTER=false)")
	}

	// Serve.
	srvCtx, stopSrv := context.WithCancel(ctx)
	defer stopSrv()
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(srvCtx) }()

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-failed:
		log.Error("an actor failed; shutting down", "err", runErr)
	case runErr = <-srvDone:
		srvDone <- nil // so the shutdown below does not wait for it
		log.Error("http server failed; shutting down", "err", runErr)
	}

	// Ordered shutdown within one budget.
	sctx, cancel := shutdownCtx()
	defer cancel()
	errs := []error{runErr}
	stopSrv() // readiness off, then HTTP shutdown
	if err := <-srvDone; err != nil {
		errs = append(errs, err)
	}
	stopCons()
	if err := wait(sctx, &consumers); err != nil {
		errs = append(errs, fmt.Errorf("drain consumer: %w", err))
	}
	stopLoops()
	if err := wait(sctx, &loops); err != nil {
		errs = append(errs, fmt.Errorf("stop loops: %w", err))
	}
	if err := conn.Drain(sctx); err != nil {
		errs = append(errs, err)
	}
	telFlushed = true
	if err := tel.Shutdown(sctx); err != nil {
		// A collector that is down must not turn a clean stop into a
		// failure: the spans are lost either way.
		log.Error("flushing telemetry", "err", err)
	}
	pool.Close()
	poolClosed = true
	log.Info("stopped")
	return errors.Join(errs...)
}

// commandRetention is how long command records are kept: far beyond the
// command stream's retention (bus.DefaultMaxAge), after which no delivery
// of a command can come back.
const commandRetention = 30 * 24 * time.Hour

// pruneCommands deletes old command records hourly until ctx ends. Every
// replica may run it: the DELETE is idempotent.
func pruneCommands(ctx context.Context, st *pgstore.Store, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := st.PruneCommands(ctx, commandRetention)
		if err != nil {
			if ctx.Err() == nil {
				log.WarnContext(ctx, "pruning command records failed", "err", err)
			}
			continue
		}
		if n > 0 {
			log.InfoContext(ctx, "pruned command records", "deleted", n)
		}
	}
}

// wait waits for wg or until ctx ends.
func wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// newPartnerCenter builds the Partner Center client and its token source
// for the configured auth mode. Every token grant is counted
// (auth.MetricTokenRefreshes), so a refresh that fails before any API call
// is made still shows in the metrics.
func newPartnerCenter(cfg config.Config, pool *pgxpool.Pool, log *slog.Logger, tel *telemetry.Telemetry) (*pcclient.Client, error) {
	httpClient := newHTTPClient(cfg)
	ep := endpoint(cfg, httpClient)
	var grant auth.Grant
	switch cfg.AuthMode {
	case config.AuthPassword:
		grant = auth.PasswordGrant(ep, cfg.Username, cfg.Password.Reveal())
	default:
		ts, err := newTokenStore(cfg, pool)
		if err != nil {
			return nil, err
		}
		grant = auth.SAMGrant(ep, ts)
	}
	grant, err := auth.Metered(grant, tel.Meter(serviceName))
	if err != nil {
		return nil, err
	}
	return pcclient.New(pcclient.Config{
		APIBaseURL:        cfg.APIBaseURL,
		WebhookAPIBaseURL: cfg.WebhookAPIBaseURL,
		Tokens:            auth.NewSource(grant),
		HTTPClient:        httpClient,
		MaxConcurrency:    cfg.MaxConcurrency,
		AttemptTimeout:    cfg.HTTPTimeout,
		Logger:            log,
		TracerProvider:    tel.TracerProvider,
		MeterProvider:     tel.MeterProvider,
	})
}

// newHTTPClient is the instrumented client for every Partner Center and
// Entra ID call, with enough idle connections for the concurrency bound.
func newHTTPClient(cfg config.Config) *http.Client {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConns = 2 * cfg.MaxConcurrency
	base.MaxIdleConnsPerHost = cfg.MaxConcurrency
	c := telemetry.HTTPClient(base)
	c.Timeout = cfg.HTTPTimeout + time.Second // backstop; each attempt has its own deadline
	return c
}

func endpoint(cfg config.Config, httpClient *http.Client) *auth.Endpoint {
	return &auth.Endpoint{
		TokenURL:      cfg.TokenEndpoint(),
		DeviceCodeURL: cfg.DeviceCodeEndpoint(),
		ClientID:      cfg.ClientID,
		ClientSecret:  cfg.ClientSecret.Reveal(),
		HTTP:          httpClient,
	}
}

func newTokenStore(cfg config.Config, pool *pgxpool.Pool) (*tokenstore.Store, error) {
	key, err := cfg.TokenKeyBytes()
	if err != nil {
		return nil, err
	}
	return tokenstore.New(pool, key, cfg.TenantID, cfg.ClientID)
}
