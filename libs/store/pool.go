// Package store is cosell's thin layer over Postgres (pgx v5): a traced
// connection pool, closures for transactions with bounded retries, the mapping
// of Postgres error codes to sentinels, an advisory-lock lease for loops that
// must run on exactly one replica, and the inbox helper that makes message
// handling idempotent.
//
// Services keep their SQL in their own store packages; this package only
// holds what every one of them would otherwise rewrite.
package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/exaring/otelpgx"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Pool defaults chosen for cosell's services: enough connections for batched
// consumers on a small machine, connections recycled often enough that a
// failover or a PgBouncer restart is absorbed within minutes, and a connect
// timeout so a dead server fails readiness instead of hanging it.
const (
	DefaultMaxConns          = 8
	DefaultMaxConnLifetime   = 30 * time.Minute
	DefaultMaxConnIdleTime   = 5 * time.Minute
	DefaultHealthCheckPeriod = 30 * time.Second
	DefaultConnectTimeout    = 5 * time.Second
)

// Option adjusts how NewPool builds the pool.
type Option func(*poolOptions)

type poolOptions struct {
	maxConns       int32
	appName        string
	tracerProvider trace.TracerProvider
	meterProvider  metric.MeterProvider
	skipPing       bool
}

// WithMaxConns overrides the pool size; a pool_max_conns parameter in the DSN
// still wins so operators can tune a deployment without a rebuild.
func WithMaxConns(n int32) Option {
	return func(o *poolOptions) { o.maxConns = n }
}

// WithApplicationName sets application_name so pg_stat_activity shows which
// service holds a connection.
func WithApplicationName(name string) Option {
	return func(o *poolOptions) { o.appName = name }
}

// WithTracerProvider traces queries with tp instead of the global provider.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *poolOptions) { o.tracerProvider = tp }
}

// WithMeterProvider records query and pool metrics with mp instead of the
// global provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *poolOptions) { o.meterProvider = mp }
}

// WithoutPing skips the startup ping, for callers that want the service to
// come up before Postgres does and report it through readiness instead.
func WithoutPing() Option {
	return func(o *poolOptions) { o.skipPing = true }
}

// NewPool builds a pgx pool from dsn with cosell's defaults and OpenTelemetry
// query tracing (statement text, never parameter values, which may hold
// customer data), records pool statistics as metrics, and pings the server so
// a wrong DSN fails at startup rather than on the first message.
func NewPool(ctx context.Context, dsn string, opts ...Option) (*pgxpool.Pool, error) {
	o := poolOptions{maxConns: DefaultMaxConns}
	for _, opt := range opts {
		opt(&o)
	}
	if o.tracerProvider == nil {
		o.tracerProvider = otel.GetTracerProvider()
	}
	if o.meterProvider == nil {
		o.meterProvider = otel.GetMeterProvider()
	}

	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgconn's parse errors redact the password, so the error is safe to log.
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	applyDefaults(cfg, dsn, o)

	// The connection's details go in as fixed tracer attributes: left to
	// otelpgx they are rebuilt for every span from conn.Config(), which
	// deep-copies the ConnConfig on each query, and from pool.Config(),
	// which copies the pool's config three times on each acquire. The
	// attributes are the same (pgx never changes these values).
	cc := cfg.ConnConfig
	cfg.ConnConfig.Tracer = otelpgx.NewTracer(
		otelpgx.WithTracerProvider(o.tracerProvider),
		otelpgx.WithMeterProvider(o.meterProvider),
		otelpgx.WithTrimSQLInSpanName(),
		otelpgx.WithDisableConnectionDetailsInAttributes(),
		otelpgx.WithTracerAttributes(
			semconv.ServerAddress(cc.Host),
			semconv.ServerPort(int(cc.Port)),
			semconv.UserName(cc.User),
			semconv.DBNamespace(cc.Database),
		),
	)

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	if err := otelpgx.RecordStats(pool, otelpgx.WithStatsMeterProvider(o.meterProvider)); err != nil {
		pool.Close()
		return nil, fmt.Errorf("record pool stats: %w", err)
	}
	if !o.skipPing {
		pctx, cancel := context.WithTimeout(ctx, cfg.ConnConfig.ConnectTimeout+time.Second)
		defer cancel()
		if err := pool.Ping(pctx); err != nil {
			pool.Close()
			return nil, fmt.Errorf("ping postgres: %w", err)
		}
	}
	return pool, nil
}

// applyDefaults fills in cosell's pool settings wherever the DSN left the
// pgxpool defaults in place.
func applyDefaults(cfg *pgxpool.Config, dsn string, o poolOptions) {
	set := func(param string) bool { return strings.Contains(dsn, param) }
	if !set("pool_max_conns") && o.maxConns > 0 {
		cfg.MaxConns = o.maxConns
	}
	if !set("pool_max_conn_lifetime") {
		cfg.MaxConnLifetime = DefaultMaxConnLifetime
	}
	if !set("pool_max_conn_lifetime_jitter") {
		// Spread reconnections so replicas started together do not reconnect
		// together.
		cfg.MaxConnLifetimeJitter = DefaultMaxConnLifetime / 10
	}
	if !set("pool_max_conn_idle_time") {
		cfg.MaxConnIdleTime = DefaultMaxConnIdleTime
	}
	if !set("pool_health_check_period") {
		cfg.HealthCheckPeriod = DefaultHealthCheckPeriod
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	if o.appName != "" {
		if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
			cfg.ConnConfig.RuntimeParams["application_name"] = o.appName
		}
	}
}

// Ping returns a readiness check for the pool, suitable for httpx.
func Ping(pool *pgxpool.Pool) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		if err := pool.Ping(ctx); err != nil {
			return fmt.Errorf("ping postgres: %w", err)
		}
		return nil
	}
}
