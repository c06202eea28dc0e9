package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"go.opentelemetry.io/otel/propagation"

	"github.com/cosell/cosell/libs/bus"
	libconfig "github.com/cosell/cosell/libs/config"
	"github.com/cosell/cosell/libs/migrate"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/telemetry"
	"github.com/cosell/cosell/migrations"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/config"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/observe"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pgstore"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/sweep"
)

// migrateUp applies the adapter's migrations to DATABASE_URL. It reads
// only the common settings: a migration Job has no Partner Center
// credentials, and needs none.
func migrateUp(ctx context.Context, log *slog.Logger, env map[string]string) error {
	var cfg libconfig.Common
	var err error
	if env == nil {
		err = libconfig.Load(ctx, &cfg)
	} else {
		err = libconfig.LoadFrom(ctx, &cfg, env)
	}
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

// login runs the one-time device-code consent and stores the refresh
// token, encrypted, for the serving replicas.
func login(ctx context.Context, log *slog.Logger, env map[string]string, out io.Writer) error {
	cfg, err := config.Load(ctx, env)
	if err != nil {
		return err
	}
	if cfg.AuthMode != config.AuthSAM {
		return errors.New("login: PC_AUTH_MODE must be sam (the password grant needs no consent)")
	}
	pool, err := store.NewPool(ctx, cfg.DatabaseURL.Reveal(), store.WithApplicationName(serviceName+"-login"), store.WithMaxConns(2))
	if err != nil {
		return err
	}
	defer pool.Close()
	ts, err := newTokenStore(cfg, pool)
	if err != nil {
		return err
	}
	if err := auth.Login(ctx, endpoint(cfg, newHTTPClient(cfg)), ts, pcclient.ResourceReferrals, out); err != nil {
		return err
	}
	log.Info("consent stored; the adapter can now obtain tokens", "tenant_id", cfg.TenantID, "client_id", cfg.ClientID)
	return nil
}

// backfill publishes a snapshot of every referral updated since --since.
func backfill(ctx context.Context, log *slog.Logger, env map[string]string, args []string) error {
	fs := flag.NewFlagSet("backfill", flag.ContinueOnError)
	sinceFlag := fs.String("since", "", "publish referrals updated at or after this date (YYYY-MM-DD, UTC, or RFC 3339)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("backfill: %w", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("backfill: unexpected arguments %q", fs.Args())
	}
	since, err := parseSince(*sinceFlag)
	if err != nil {
		return err
	}
	cfg, err := config.Load(ctx, env)
	if err != nil {
		return err
	}
	log = cfg.Logger(serviceName, os.Stdout)
	tel, err := telemetry.Setup(ctx, telemetry.Config{ServiceName: serviceName, Logger: log})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Error("flushing telemetry", "err", err)
		}
	}()
	pool, err := store.NewPool(ctx, cfg.DatabaseURL.Reveal(), store.WithApplicationName(serviceName+"-backfill"), store.WithMaxConns(2),
		store.WithTracerProvider(tel.TracerProvider), store.WithMeterProvider(tel.MeterProvider))
	if err != nil {
		return err
	}
	defer pool.Close()
	conn, err := bus.Connect(ctx, cfg.NATSURL.Reveal(), serviceName, bus.WithLogger(log),
		bus.WithTracerProvider(tel.TracerProvider), bus.WithMeterProvider(tel.MeterProvider),
		bus.WithPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})))
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{MaxAge: cfg.StreamMaxAge, DeadLetterMaxAge: cfg.DeadLetterMaxAge}); err != nil {
		return err
	}
	pc, err := newPartnerCenter(cfg, pool, log, tel)
	if err != nil {
		return err
	}
	obs, err := observe.New(pc, conn, log, nil)
	if err != nil {
		return err
	}
	sweeper, err := sweep.New(pc, obs, pgstore.New(pool), sweep.Config{Logger: log, TracerProvider: tel.TracerProvider})
	if err != nil {
		return err
	}
	log.Info("backfill starting", "since", since)
	run, err := sweeper.Backfill(ctx, since)
	if err != nil {
		return err
	}
	log.Info("backfill done", "published", run.Published, "pages", run.Pages)
	dctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	return conn.Drain(dctx)
}

// parseSince accepts a date (midnight UTC) or an RFC 3339 time.
func parseSince(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("backfill: --since is required (e.g. --since 2026-01-01)")
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("backfill: --since %q: want YYYY-MM-DD or RFC 3339", s)
}
