package main

import (
	"testing"
	"time"

	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/config"
)

// TestRetentionRules: replayed dead letters and missing-referral records
// past the retention go; pending dead letters and recent rows stay.
func TestRetentionRules(t *testing.T) {
	pool := storetest.NewDB(t, serviceName, storetest.RepoMigrations(t, serviceName))
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `
		INSERT INTO partnercenter_adapter.dead_letters (service, consumer, stream, stream_seq, subject, deliveries, reason, permanent, payload, failed_at, replayed_at) VALUES
		 ('partnercenter-adapter', 'c', 'S', 1, 's', 5, 'x', false, '\x01', now() - interval '90 days', now() - interval '31 days'),
		 ('partnercenter-adapter', 'c', 'S', 2, 's', 5, 'x', false, '\x01', now() - interval '90 days', now() - interval '1 day'),
		 ('partnercenter-adapter', 'c', 'S', 3, 's', 5, 'x', false, '\x01', now() - interval '900 days', NULL);
		INSERT INTO partnercenter_adapter.missing_referrals (referral_id, event_name, msg_id, seen_at) VALUES
		 ('R-1', 'referral-updated', 'm1', now() - interval '31 days'), ('R-2', 'referral-updated', 'm2', now())`); err != nil {
		t.Fatal(err)
	}
	cfg := config.Config{DeadLetterRetention: 30 * 24 * time.Hour}
	job, err := store.NewRetention(pool, retentionRules(cfg), store.RetentionConfig{Lease: leaseRetention})
	if err != nil {
		t.Fatal(err)
	}
	got, err := job.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got["partnercenter_adapter.dead_letters"] != 1 || got["partnercenter_adapter.missing_referrals"] != 1 {
		t.Errorf("deleted %v, want one dead letter and one missing referral", got)
	}
	var pending int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM partnercenter_adapter.dead_letters WHERE replayed_at IS NULL`).Scan(&pending); err != nil || pending != 1 {
		t.Errorf("pending dead letters left: %d %v", pending, err)
	}
}
