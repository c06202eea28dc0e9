package main

import (
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"

	"github.com/cosell/cosell/libs/store"
)

// leaseRetention names the lease of the retention job.
const leaseRetention = service + "/retention"

// newRetention builds the retention job; Run it on its own goroutine.
func newRetention(pool *pgxpool.Pool, cfg Config, log *slog.Logger, meter metric.Meter) (*store.Retention, error) {
	return store.NewRetention(pool, retentionRules(cfg), store.RetentionConfig{Lease: leaseRetention, Logger: log, Meter: meter})
}

// retentionRules lists what the adapter's retention job deletes: dead
// letters an operator replayed (their payload is an opportunity command)
// and cached accounts (keyed by the customer's name) not resolved again
// for the cache retention; a forgotten account costs one query when that
// customer comes back. Pending dead letters are kept until replayed;
// published opportunity versions (observed) are pruned by the poller.
func retentionRules(cfg Config) []store.RetentionRule {
	return []store.RetentionRule{
		{Table: "salesforce_adapter.dead_letters", TimeColumn: "replayed_at", Where: "replayed_at IS NOT NULL", Retention: cfg.DeadLetterRetention},
		{Table: "salesforce_adapter.accounts", TimeColumn: "resolved_at", Retention: cfg.AccountCacheRetention},
	}
}
