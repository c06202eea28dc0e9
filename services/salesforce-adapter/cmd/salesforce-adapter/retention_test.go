package main

import (
	"testing"
	"time"

	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/store/storetest"
)

// TestRetentionRules: replayed dead letters past the retention and
// accounts not resolved for the cache retention go; pending dead letters
// and recent rows stay.
func TestRetentionRules(t *testing.T) {
	pool := storetest.NewDB(t, service, storetest.RepoMigrations(t, service))
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `
		INSERT INTO salesforce_adapter.dead_letters (service, consumer, stream, stream_seq, subject, deliveries, reason, permanent, payload, failed_at, replayed_at) VALUES
		 ('salesforce-adapter', 'c', 'S', 1, 's', 5, 'x', false, '\x01', now() - interval '90 days', now() - interval '31 days'),
		 ('salesforce-adapter', 'c', 'S', 2, 's', 5, 'x', false, '\x01', now() - interval '90 days', now() - interval '1 day'),
		 ('salesforce-adapter', 'c', 'S', 3, 's', 5, 'x', false, '\x01', now() - interval '900 days', NULL);
		INSERT INTO salesforce_adapter.accounts (match_key, account_id, resolved_at) VALUES
		 ('old co|de|', '001A', now() - interval '401 days'), ('new co|de|', '001B', now() - interval '10 days')`); err != nil {
		t.Fatal(err)
	}
	cfg := Config{DeadLetterRetention: 30 * 24 * time.Hour, AccountCacheRetention: 400 * 24 * time.Hour}
	job, err := store.NewRetention(pool, retentionRules(cfg), store.RetentionConfig{Lease: leaseRetention})
	if err != nil {
		t.Fatal(err)
	}
	got, err := job.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got["salesforce_adapter.dead_letters"] != 1 || got["salesforce_adapter.accounts"] != 1 {
		t.Errorf("deleted %v, want one dead letter and one account", got)
	}
	var left string
	if err := pool.QueryRow(ctx, `SELECT string_agg(match_key, ',') FROM salesforce_adapter.accounts`).Scan(&left); err != nil || left != "new co|de|" {
		t.Errorf("accounts left: %q %v", left, err)
	}
}
