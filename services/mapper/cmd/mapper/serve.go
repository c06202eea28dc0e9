package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/config"
	"github.com/cosell/cosell/libs/httpx"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/telemetry"
	"github.com/cosell/cosell/services/mapper/internal/admin"
	"github.com/cosell/cosell/services/mapper/internal/consumers"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
	"github.com/cosell/cosell/services/mapper/internal/syncer"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// run serves until ctx ends, then shuts down in order: readiness off, HTTP
// shutdown, drain consumers, drain NATS, flush telemetry, close the pool.
func run(ctx context.Context) error {
	// Config.
	cfg, err := loadConfig(ctx)
	if err != nil {
		return err
	}
	log := cfg.Logger(service, os.Stdout)
	config.LogEffective(log, &cfg)
	m, err := mapping.LoadFile(cfg.MappingFile)
	if err != nil {
		return err
	}
	outboundRules := 0
	if m.Outbound != nil {
		outboundRules = len(m.Outbound.Fields)
	}
	log.Info("mapping loaded", "file", m.File, "version", m.Version, "inbound_rules", len(m.Inbound.Fields),
		"outbound_rules", outboundRules, "ignore_rules", len(m.Inbound.Ignore))

	// Telemetry.
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: service, Logger: log})
	if err != nil {
		return err
	}
	flushTelemetry := sync.OnceValue(func() error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		return tel.Shutdown(sctx)
	})
	defer func() {
		if err := flushTelemetry(); err != nil {
			log.Warn("flush telemetry", "err", err)
		}
	}()

	// Postgres.
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close() // on early returns; the ordered shutdown closes it last

	// NATS.
	conn, err := bus.Connect(ctx, cfg.NATSURL.Reveal(), service,
		bus.WithLogger(log), bus.WithDeadLetterSink(bus.NewPgDeadLetterSink(pool)),
		bus.WithTracerProvider(tel.TracerProvider), bus.WithMeterProvider(tel.MeterProvider))
	if err != nil {
		return err
	}
	defer conn.Close() // after Drain this is a no-op
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{MaxAge: cfg.StreamMaxAge, DeadLetterMaxAge: cfg.DeadLetterMaxAge}); err != nil {
		return err
	}

	// Wiring.
	svc, err := syncer.New(pool, conn, m, log, tel.TracerProvider, tel.MeterProvider, service)
	if err != nil {
		return err
	}
	group := store.NewGroup(pool, cfg.GroupCommitWorkers, cfg.GroupCommitBatch, store.WithGroupLogger(log))
	defer group.Close() // on early returns; the ordered shutdown closes it after the consumers
	if err := group.RegisterMetrics(tel.Meter(service)); err != nil {
		return fmt.Errorf("group commit metrics: %w", err)
	}
	svc.UseGroup(group)
	srv := httpx.New(httpx.Config{Addr: cfg.HTTPAddr, Logger: log, Metrics: tel.MetricsHandler(), ShutdownTimeout: cfg.ShutdownTimeout / 2})
	srv.AddCheck("postgres", store.Ping(pool))
	srv.AddCheck("nats", conn.Ready)
	admin.New(svc, pool, log).Routes(srv.Router())

	// Actors. A consumer that fails stops the whole service, so a replica
	// that cannot consume does not pretend to be healthy.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	consumeCtx, stopConsuming := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConsuming()
	var consumersWG sync.WaitGroup
	for _, c := range []struct {
		spec bus.ConsumerSpec
		h    bus.Handler
	}{
		{consumers.Referrals(cfg.MaxConcurrency), consumers.ObservedHandler(svc)},
		{consumers.Results(max(cfg.MaxConcurrency/2, 1)), consumers.ResultHandler(svc)},
		{consumers.Opportunities(cfg.OpportunityConcurrency), consumers.OpportunityHandler(svc)},
		{consumers.PartnerCenterResults(cfg.PCResultConcurrency), consumers.PartnerCenterResultHandler(svc)},
	} {
		consumersWG.Go(func() {
			if err := conn.Consume(consumeCtx, c.spec, c.h); err != nil {
				cancel(fmt.Errorf("consumer %s: %w", c.spec.Durable, err))
			}
		})
	}
	retention, err := newRetention(pool, cfg, log, tel.Meter(service))
	if err != nil {
		return err
	}
	consumersWG.Go(func() {
		if err := retention.Run(consumeCtx); err != nil {
			log.Warn("retention job stopped", "err", err)
		}
	})
	httpErr := make(chan error, 1)
	go func() { httpErr <- srv.Run(ctx) }()
	log.Info("mapper started", "http_addr", cfg.HTTPAddr, "max_concurrency", cfg.MaxConcurrency)

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
	stopConsuming()
	if !waitTimeout(&consumersWG, cfg.ShutdownTimeout/2) {
		errs = append(errs, errors.New("consumers did not drain in time"))
	}
	group.Close()
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer dcancel()
	if err := conn.Drain(dctx); err != nil {
		errs = append(errs, err)
	}
	log.Info("mapper stopped")
	if err := flushTelemetry(); err != nil {
		errs = append(errs, fmt.Errorf("flush telemetry: %w", err))
	}
	pool.Close()
	return errors.Join(errs...)
}

// openPool opens the Postgres pool with the mapper's schema on the search
// path and room for every handler in flight.
func openPool(ctx context.Context, cfg Config) (*pgxpool.Pool, error) {
	dsn, err := withSearchPath(cfg.DatabaseURL.Reveal())
	if err != nil {
		return nil, err
	}
	// The handlers' transactions all run through the group commit, one
	// connection per worker; the rest serve the retention job, dead
	// letters and the admin endpoints.
	conns := int32(min(cfg.GroupCommitWorkers+4, 64))
	return store.NewPool(ctx, dsn, store.WithMaxConns(conns), store.WithApplicationName(service))
}

// newRetention builds the job that deletes expired audit events, inbox
// rows and replayed dead letters, on one replica at a time.
func newRetention(pool *pgxpool.Pool, cfg Config, log *slog.Logger, meter metric.Meter) (*store.Retention, error) {
	return store.NewRetention(pool, retentionRules(cfg), store.RetentionConfig{
		Lease: service + "/retention", Interval: cfg.RetentionInterval, Logger: log, Meter: meter,
	})
}

// retentionRules lists what the mapper's retention job deletes. Links are
// not among them: a link is the live state of a referral (deleting it would
// let a later snapshot create a second opportunity or referral), so links
// go only with cosellctl purge.
func retentionRules(cfg Config) []store.RetentionRule {
	return []store.RetentionRule{
		{Table: "mapper.audit_events", TimeColumn: "at", Retention: cfg.AuditRetention, AllowSetting: "cosell.audit_delete"},
		{Table: linkstore.InboxTable, TimeColumn: "processed_at", Retention: cfg.InboxRetention},
		{Table: "mapper.dead_letters", TimeColumn: "replayed_at", Where: "replayed_at IS NOT NULL", Retention: cfg.DeadLetterRetention},
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
