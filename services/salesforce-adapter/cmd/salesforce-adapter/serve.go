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

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/config"
	"github.com/cosell/cosell/libs/httpx"
	"github.com/cosell/cosell/libs/migrate"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/telemetry"
	"github.com/cosell/cosell/migrations"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/accounts"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/accountstore"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/admin"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/consumer"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/cursorstore"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/deadletters"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/poller"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/upsert"
)

// run serves until ctx ends, then shuts down in order: readiness off, HTTP
// shutdown, stop the poller, drain the consumers (their handlers wait for
// their batches), stop the batcher, drain NATS, flush telemetry, close the
// pool.
func run(ctx context.Context) error {
	// Config.
	cfg, err := loadConfig(ctx)
	if err != nil {
		return err
	}
	log := cfg.Logger(service, os.Stdout)
	config.LogEffective(log, &cfg)
	creds, err := cfg.credentials()
	if err != nil {
		return err
	}

	// Telemetry.
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: service, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Warn("flush telemetry", "err", err)
		}
	}()

	// Postgres: account resolution holds one connection per batch in
	// flight, plus cache reads and the poller's cursor (the poller's lease
	// holds a connection of its own, outside the pool).
	pool, err := store.NewPool(ctx, cfg.DatabaseURL.Reveal(),
		store.WithMaxConns(int32(2*cfg.MaxConcurrency+3)), store.WithApplicationName(service),
		store.WithTracerProvider(tel.TracerProvider), store.WithMeterProvider(tel.MeterProvider))
	if err != nil {
		return err
	}
	defer pool.Close()

	// NATS.
	conn, err := bus.Connect(ctx, cfg.NATSURL.Reveal(), service,
		bus.WithLogger(log), bus.WithDeadLetterSink(deadletters.New(pool)),
		bus.WithTracerProvider(tel.TracerProvider), bus.WithMeterProvider(tel.MeterProvider))
	if err != nil {
		return err
	}
	defer conn.Close() // after Drain this is a no-op
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{MaxAge: cfg.StreamMaxAge, DeadLetterMaxAge: cfg.DeadLetterMaxAge}); err != nil {
		return err
	}

	// Wiring.
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = cfg.MaxConcurrency + 2
	httpClient := telemetry.HTTPClient(transport)
	httpClient.Timeout = cfg.HTTPTimeout
	sf, err := sfclient.New(sfclient.Config{
		Credentials:    creds,
		APIVersion:     cfg.APIVersion,
		HTTPClient:     httpClient,
		MaxConcurrency: cfg.MaxConcurrency,
		BudgetPercent:  cfg.BudgetPercent,
		ProbeInterval:  cfg.BudgetProbeInterval,
		Logger:         log,
		Meter:          tel.Meter(service),
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := sf.Close(); err != nil {
			log.Warn("close salesforce client", "err", err)
		}
	}()
	cursors := cursorstore.New(pool)
	batcher := upsert.New(upsert.Config{
		BatchSize: cfg.BatchSize,
		BatchWait: cfg.BatchWait,
		Workers:   cfg.MaxConcurrency,
	}, sf, accounts.NewResolver(accountstore.New(pool), sf),
		upsert.WithTracer(tel.Tracer(service)), upsert.WithLogger(log), upsert.WithMeter(tel.Meter(service)),
		// The results carry what the writes read back to the mapper: the
		// poll need not publish those versions again.
		upsert.WithReadBackSeen(cursors.MarkPublished))

	var poll *poller.Poller
	if cfg.PollEnabled {
		poll, err = poller.New(sf, conn, cursors, poller.Config{
			Interval:       cfg.PollInterval,
			Overlap:        cfg.PollOverlap,
			QuickOverlap:   cfg.PollQuickOverlap,
			OverlapEvery:   cfg.PollOverlapEvery,
			Logger:         log,
			TracerProvider: tel.TracerProvider,
			Meter:          tel.Meter(service),
		})
		if err != nil {
			return err
		}
		defer func() {
			if err := poll.Close(); err != nil {
				log.Warn("close poller", "err", err)
			}
		}()
	}

	srv := httpx.New(httpx.Config{Addr: cfg.HTTPAddr, Logger: log, Metrics: tel.MetricsHandler(), ShutdownTimeout: cfg.ShutdownTimeout / 4})
	srv.AddCheck("postgres", store.Ping(pool))
	srv.AddCheck("nats", conn.Ready)
	srv.AddCheck("salesforce_api_budget", budgetCheck(sf))
	adm := admin.New(sf, admin.DefaultDescribeTTL, log)
	srv.Router().Get("/admin/opportunities/{id}", adm.Opportunity)
	srv.Router().Get("/admin/describe/{object}", adm.Describe)

	// Actors. The batcher outlives the consumer, whose handlers wait for
	// their batches; a consumer that fails stops the whole service.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	batchCtx, stopBatcher := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBatcher()
	batchDone := make(chan error, 1)
	go func() { batchDone <- batcher.Run(batchCtx) }()

	consumeCtx, stopConsuming := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConsuming()
	var consumers sync.WaitGroup
	consumers.Go(func() {
		h := consumer.Handler(batcher, conn, log)
		if err := conn.Consume(consumeCtx, consumer.Spec(cfg.ConsumerConcurrency), h); err != nil {
			cancel(fmt.Errorf("consumer %s: %w", consumer.Durable, err))
		}
	})
	consumers.Go(func() {
		h := consumer.WritebackHandler(batcher, conn, log)
		if err := conn.Consume(consumeCtx, consumer.WritebackSpec(cfg.ConsumerConcurrency), h); err != nil {
			cancel(fmt.Errorf("consumer %s: %w", consumer.WritebackDurable, err))
		}
	})

	// The poller runs on the one replica holding the lease; another takes
	// over when that one dies.
	pollCtx, stopPolling := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPolling()
	var polling sync.WaitGroup
	if poll != nil {
		lease := store.NewLease(pool, poller.LeaseName, store.WithLeaseLogger(log))
		polling.Go(func() {
			if err := lease.Run(pollCtx, poll.Run); err != nil {
				cancel(fmt.Errorf("poller: %w", err))
			}
		})
	}
	retention, err := newRetention(pool, cfg, log, tel.Meter(service))
	if err != nil {
		return err
	}
	polling.Go(func() {
		// Its failures are logged: they must not stop the adapter.
		if err := retention.Run(pollCtx); err != nil {
			log.Warn("retention job stopped", "err", err)
		}
	})
	httpErr := make(chan error, 1)
	go func() { httpErr <- srv.Run(ctx) }()
	log.Info(service+" started", "http_addr", cfg.HTTPAddr, "auth_mode", cfg.AuthMode,
		"batch_size", cfg.BatchSize, "batch_wait", cfg.BatchWait.String(), "api_budget_percent", cfg.BudgetPercent,
		"poll_enabled", cfg.PollEnabled, "poll_interval", cfg.PollInterval.String())

	// Ordered shutdown.
	var httpResult error
	select {
	case <-ctx.Done():
		httpResult = <-httpErr // readiness off, then HTTP shutdown
	case httpResult = <-httpErr:
		cancel(errors.New("http server stopped"))
	}
	cause := context.Cause(ctx)
	if errors.Is(cause, context.Canceled) {
		cause = nil
	}
	log.Info("shutting down", "cause", fmt.Sprint(cause))
	errs := []error{cause, httpResult}
	stopPolling()
	if !waitTimeout(&polling, cfg.ShutdownTimeout/4) {
		errs = append(errs, errors.New("poller did not stop in time"))
	}
	stopConsuming()
	if !waitTimeout(&consumers, cfg.ShutdownTimeout/2) {
		errs = append(errs, errors.New("consumer did not drain in time"))
	}
	stopBatcher()
	if err := <-batchDone; err != nil {
		errs = append(errs, err)
	}
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer dcancel()
	if err := conn.Drain(dctx); err != nil {
		errs = append(errs, err)
	}
	log.Info(service + " stopped")
	return errors.Join(errs...)
}

// budgetCheck fails readiness while the API budget is exhausted, so
// operators and dashboards see that the adapter is holding commands back.
func budgetCheck(sf *sfclient.Client) httpx.Check {
	return func(context.Context) error {
		if u := sf.Usage(); u.Exhausted {
			return fmt.Errorf("salesforce api budget exhausted: %d of %d calls used, budget %d", u.Used, u.Limit, u.Budget)
		}
		return nil
	}
}

// waitTimeout waits for wg at most d and reports whether it finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// migrateUp applies the service's migrations to DATABASE_URL.
func migrateUp(ctx context.Context, log *slog.Logger) error {
	cfg := Config{}
	if err := config.Load(ctx, &cfg); err != nil {
		return err
	}
	fsys, err := migrations.FS(service)
	if err != nil {
		return err
	}
	if err := migrate.Up(ctx, cfg.DatabaseURL.Reveal(), service, fsys); err != nil {
		return err
	}
	log.Info("migrations applied")
	return nil
}
