package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/libs/config"
	"github.com/cosell/cosell/libs/store/storetest"
)

// TestRetentionRules runs the mapper's retention job against its real
// schema: expired audit events (through the append-only trigger), inbox
// rows and replayed dead letters go; recent rows, pending dead letters,
// links and purge records stay.
func TestRetentionRules(t *testing.T) {
	pool := storetest.NewDB(t, service, storetest.RepoMigrations(t, service))
	ctx := t.Context()
	for _, q := range []string{
		`INSERT INTO mapper.links (referral_id, opportunity_id, created_at, updated_at)
		 VALUES ('R-old', '006old', now() - interval '3 years', now() - interval '3 years')`,
		`INSERT INTO mapper.audit_events (referral_id, kind, message, at)
		 SELECT 'R-old', 'upsert_sent', 'old', now() - interval '401 days' FROM generate_series(1, 1500)`,
		`INSERT INTO mapper.audit_events (referral_id, kind, message, at)
		 SELECT 'R-new', 'upsert_sent', 'new', now() - interval '399 days' FROM generate_series(1, 3)`,
		`INSERT INTO mapper.inbox (consumer, msg_id, processed_at) VALUES
		 ('c', 'old', now() - interval '15 days'), ('c', 'new', now() - interval '13 days')`,
		`INSERT INTO mapper.dead_letters (service, consumer, stream, stream_seq, subject, deliveries, reason, permanent, payload, failed_at, replayed_at) VALUES
		 ('mapper', 'c', 'S', 1, 's', 5, 'x', false, '\x01', now() - interval '90 days', now() - interval '31 days'),
		 ('mapper', 'c', 'S', 2, 's', 5, 'x', false, '\x01', now() - interval '90 days', now() - interval '29 days'),
		 ('mapper', 'c', 'S', 3, 's', 5, 'x', false, '\x01', now() - interval '90 days', NULL)`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := pool.Exec(ctx, `DELETE FROM mapper.audit_events`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("a plain DELETE of audit events was allowed: %v", err)
	}

	var cfg Config
	if err := config.LoadFrom(ctx, &cfg, map[string]string{}); err != nil {
		t.Fatal(err)
	}
	job, err := newRetention(pool, cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := job.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"mapper.audit_events": 1500, "mapper.inbox": 1, "mapper.dead_letters": 1}
	for table, n := range want {
		if got[table] != n {
			t.Errorf("%s: deleted %d, want %d (all: %v)", table, got[table], n, got)
		}
	}
	for q, n := range map[string]int{
		`SELECT count(*) FROM mapper.audit_events`:                           3,
		`SELECT count(*) FROM mapper.inbox`:                                  1,
		`SELECT count(*) FROM mapper.dead_letters`:                           2,
		`SELECT count(*) FROM mapper.dead_letters WHERE replayed_at IS NULL`: 1,
		`SELECT count(*) FROM mapper.links`:                                  1,
	} {
		var got int
		if err := pool.QueryRow(ctx, q).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Errorf("%s = %d, want %d", q, got, n)
		}
	}
}

func TestRetentionConfig(t *testing.T) {
	load := func(env map[string]string) (Config, error) {
		for k, v := range env {
			t.Setenv(k, v)
		}
		return loadConfig(t.Context())
	}
	cfg, err := load(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AuditRetention != 400*24*time.Hour || cfg.InboxRetention != 14*24*time.Hour ||
		cfg.DeadLetterRetention != 30*24*time.Hour || cfg.RetentionInterval != time.Hour {
		t.Errorf("defaults: audit %v, inbox %v, dead letters %v, interval %v",
			cfg.AuditRetention, cfg.InboxRetention, cfg.DeadLetterRetention, cfg.RetentionInterval)
	}
	if _, err := load(map[string]string{"STREAM_MAX_AGE": "336h"}); err == nil || !strings.Contains(err.Error(), "MAPPER_INBOX_RETENTION") {
		t.Errorf("an inbox retention shorter than the stream max age was accepted: %v", err)
	}
	if _, err := load(map[string]string{"MAPPER_INBOX_RETENTION": "720h", "MAPPER_AUDIT_RETENTION": "0"}); err != nil {
		t.Errorf("a longer inbox and audit kept forever: %v", err)
	}
}

func TestConcurrencyConfig(t *testing.T) {
	cfg, err := loadConfig(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MaxConcurrency != 48 || cfg.OpportunityConcurrency != 16 || cfg.PCResultConcurrency != 2 {
		t.Errorf("defaults: max %d, opportunities %d, partner center results %d; want 48, 16 and 2",
			cfg.MaxConcurrency, cfg.OpportunityConcurrency, cfg.PCResultConcurrency)
	}
	t.Setenv("MAPPER_OPPORTUNITY_CONCURRENCY", "0")
	if _, err := loadConfig(t.Context()); err == nil || !strings.Contains(err.Error(), "MAPPER_OPPORTUNITY_CONCURRENCY") {
		t.Errorf("an opportunity concurrency of 0 was accepted: %v", err)
	}
	t.Setenv("MAPPER_OPPORTUNITY_CONCURRENCY", "16")
	t.Setenv("MAPPER_PC_RESULT_CONCURRENCY", "0")
	if _, err := loadConfig(t.Context()); err == nil || !strings.Contains(err.Error(), "MAPPER_PC_RESULT_CONCURRENCY") {
		t.Errorf("a concurrency of 0 was accepted: %v", err)
	}
}
