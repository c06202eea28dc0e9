package main

import (
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/metric"

	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/config"
)

// leaseRetention names the lease of the retention job.
const leaseRetention = serviceName + "/retention"

// newRetention builds the retention job; Run it on its own goroutine.
func newRetention(pool *pgxpool.Pool, cfg config.Config, log *slog.Logger, meter metric.Meter) (*store.Retention, error) {
	return store.NewRetention(pool, retentionRules(cfg), store.RetentionConfig{Lease: leaseRetention, Logger: log, Meter: meter})
}

// retentionRules lists what the adapter's retention job deletes: dead
// letters an operator replayed (their payload is a referral snapshot or
// command) and the records of notifications whose referral was gone.
// Pending dead letters are kept until replayed or purged; command records
// have their own pruning (pruneCommands).
func retentionRules(cfg config.Config) []store.RetentionRule {
	return []store.RetentionRule{
		{Table: "partnercenter_adapter.dead_letters", TimeColumn: "replayed_at", Where: "replayed_at IS NOT NULL", Retention: cfg.DeadLetterRetention},
		{Table: "partnercenter_adapter.missing_referrals", TimeColumn: "seen_at", Retention: cfg.DeadLetterRetention},
	}
}
