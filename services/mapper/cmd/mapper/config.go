package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/config"
)

// service names the mapper on the bus, in telemetry and in Postgres.
const service = "mapper"

// Config is the mapper's configuration, from the environment.
type Config struct {
	config.Common
	// MappingFile is the YAML mapping; empty means the embedded default.
	MappingFile string `env:"MAPPING_FILE"`
	// MaxConcurrency bounds the snapshots handled at once by one replica.
	// Their transactions share the group commit's connections, so it is
	// set well above MAPPER_GROUP_COMMIT_WORKERS: the more messages wait
	// when a group transaction starts, the fewer transactions carry them.
	MaxConcurrency int `env:"MAPPER_MAX_CONCURRENCY, default=48"`
	// OpportunityConcurrency bounds the observed opportunities handled at
	// once. Lower than MaxConcurrency: a burst of sellers' opt-ins then
	// leaves in small transactions, so the first referral creates reach
	// Partner Center sooner instead of waiting for a large shared commit.
	OpportunityConcurrency int `env:"MAPPER_OPPORTUNITY_CONCURRENCY, default=16"`
	// PCResultConcurrency bounds the partnercenter-adapter's results
	// handled at once. Each starts the write-back of a referral's id and
	// status to Salesforce; kept low, a burst of opt-ins gets its referrals
	// created first and the write-backs follow, instead of every create
	// competing for the CPU with the bookkeeping of the ones before it.
	PCResultConcurrency int `env:"MAPPER_PC_RESULT_CONCURRENCY, default=2"`
	// GroupCommitWorkers is how many transactions the message handlers
	// run at once; GroupCommitBatch how many messages one of them may hold
	// (1: each message commits alone).
	GroupCommitWorkers int `env:"MAPPER_GROUP_COMMIT_WORKERS, default=8"`
	GroupCommitBatch   int `env:"MAPPER_GROUP_COMMIT_BATCH, default=16"`
	// AuditRetention is how long audit events are kept (0: forever). 400
	// days cover a co-sell deal's usual life plus a yearly review.
	AuditRetention time.Duration `env:"MAPPER_AUDIT_RETENTION, default=9600h"`
	// InboxRetention is how long processed message ids are kept; it must
	// outlive every redelivery, so it must exceed the streams' max age.
	InboxRetention time.Duration `env:"MAPPER_INBOX_RETENTION, default=336h"`
	// DeadLetterRetention is how long replayed dead letters are kept after
	// their replay (0: forever); pending ones are kept until replayed.
	DeadLetterRetention time.Duration `env:"MAPPER_DEAD_LETTER_RETENTION, default=720h"`
	// RetentionInterval is the pause between two runs of the retention job.
	RetentionInterval time.Duration `env:"MAPPER_RETENTION_INTERVAL, default=1h"`
}

// inboxMargin is how much longer than the streams' max age inbox rows must
// be kept: the redelivery backoff and a day of slack.
const inboxMargin = 24 * time.Hour

// loadConfig reads the environment over the mapper's defaults.
func loadConfig(ctx context.Context) (Config, error) {
	cfg := Config{Common: config.Common{HTTPAddr: ":8092"}}
	if err := config.Load(ctx, &cfg); err != nil {
		return Config{}, err
	}
	if cfg.MaxConcurrency < 1 {
		return Config{}, fmt.Errorf("load config: MAPPER_MAX_CONCURRENCY must be at least 1, got %d", cfg.MaxConcurrency)
	}
	if cfg.OpportunityConcurrency < 1 {
		return Config{}, fmt.Errorf("load config: MAPPER_OPPORTUNITY_CONCURRENCY must be at least 1, got %d", cfg.OpportunityConcurrency)
	}
	if cfg.PCResultConcurrency < 1 {
		return Config{}, fmt.Errorf("load config: MAPPER_PC_RESULT_CONCURRENCY must be at least 1, got %d", cfg.PCResultConcurrency)
	}
	if cfg.GroupCommitWorkers < 1 || cfg.GroupCommitBatch < 1 {
		return Config{}, fmt.Errorf("load config: MAPPER_GROUP_COMMIT_WORKERS and MAPPER_GROUP_COMMIT_BATCH must be at least 1, got %d and %d",
			cfg.GroupCommitWorkers, cfg.GroupCommitBatch)
	}
	streamAge := cfg.StreamMaxAge
	if streamAge <= 0 {
		streamAge = bus.DefaultMaxAge
	}
	switch {
	case cfg.AuditRetention < 0 || cfg.DeadLetterRetention < 0:
		return Config{}, fmt.Errorf("load config: MAPPER_AUDIT_RETENTION and MAPPER_DEAD_LETTER_RETENTION must not be negative (0 keeps rows forever)")
	case cfg.InboxRetention < streamAge+inboxMargin:
		return Config{}, fmt.Errorf("load config: MAPPER_INBOX_RETENTION %v must be at least the streams' max age %v plus %v, or a late redelivery would be processed twice",
			cfg.InboxRetention, streamAge, inboxMargin)
	case cfg.RetentionInterval <= 0:
		return Config{}, fmt.Errorf("load config: MAPPER_RETENTION_INTERVAL must be positive")
	}
	return cfg, nil
}

// withSearchPath points dsn's sessions at the mapper's schema, so the bus
// library's dead-letter sink (which names its table without a schema)
// writes mapper.dead_letters. The mapper's own SQL names its schema.
func withSearchPath(dsn string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse DATABASE_URL: %w", err)
		}
		q := u.Query()
		if q.Get("search_path") == "" {
			q.Set("search_path", "mapper,public")
		}
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	if strings.Contains(dsn, "search_path=") {
		return dsn, nil
	}
	return strings.TrimSpace(dsn + " search_path=mapper,public"), nil
}
