// Package accountstore keeps the salesforce-adapter's cache of customer
// Accounts in Postgres (table salesforce_adapter.accounts): match key →
// Salesforce Account Id.
package accountstore

import (
	"context"
	"fmt"
	"sort"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/accounts"
)

// lockNamespace prefixes the advisory-lock names of match keys, so they
// cannot collide with other locks in the shared database.
const lockNamespace = "salesforce-adapter/account:"

// Store is the accounts cache.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Get returns the cached Account Ids of those keys that have one.
func (s *Store) Get(ctx context.Context, keys []string) (map[string]string, error) {
	out := make(map[string]string, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx,
		`SELECT match_key, account_id FROM salesforce_adapter.accounts WHERE match_key = ANY($1)`, keys)
	if err != nil {
		return nil, fmt.Errorf("get cached accounts: %w", store.MapError(err))
	}
	if err := scanInto(rows, out); err != nil {
		return nil, fmt.Errorf("get cached accounts: %w", err)
	}
	return out, nil
}

// Fill takes a transaction-scoped advisory lock per key (in sorted order,
// so two callers never deadlock), reads what is cached by then, runs fn and
// stores what it found. Replicas resolving the same new customer at once
// therefore create it once: the second waits for the first's commit and
// then finds the Id cached.
//
// The transaction stays open while fn calls Salesforce; that is one pooled
// connection per batch being resolved, bounded by the adapter's call
// concurrency.
func (s *Store) Fill(ctx context.Context, keys []string, fn func(cached map[string]string) (map[string]accounts.Found, error)) error {
	sorted := append([]string(nil), keys...)
	sort.Strings(sorted)
	locks := make([]string, len(sorted))
	for i, k := range sorted {
		locks[i] = lockNamespace + k
	}
	return store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx,
			`SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n`,
			locks); err != nil {
			return fmt.Errorf("lock account keys: %w", store.MapError(err))
		}
		rows, err := tx.Query(ctx,
			`SELECT match_key, account_id FROM salesforce_adapter.accounts WHERE match_key = ANY($1)`, sorted)
		if err != nil {
			return fmt.Errorf("read cached accounts: %w", store.MapError(err))
		}
		cached := map[string]string{}
		if err := scanInto(rows, cached); err != nil {
			return fmt.Errorf("read cached accounts: %w", err)
		}
		found, err := fn(cached)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			return nil
		}
		ks, ids, created := make([]string, 0, len(found)), make([]string, 0, len(found)), make([]bool, 0, len(found))
		for k, f := range found {
			ks, ids, created = append(ks, k), append(ids, f.ID), append(created, f.Created)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO salesforce_adapter.accounts (match_key, account_id, created)
			SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[])
			ON CONFLICT (match_key) DO UPDATE SET account_id = EXCLUDED.account_id, created = EXCLUDED.created, resolved_at = now()`,
			ks, ids, created); err != nil {
			return fmt.Errorf("cache accounts: %w", store.MapError(err))
		}
		return nil
	}, store.Attempts(1))
}

// Forget removes key from the cache.
func (s *Store) Forget(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM salesforce_adapter.accounts WHERE match_key = $1`, key); err != nil {
		return fmt.Errorf("forget cached account: %w", store.MapError(err))
	}
	return nil
}

func scanInto(rows pgx.Rows, out map[string]string) error {
	defer rows.Close()
	for rows.Next() {
		var k, id string
		if err := rows.Scan(&k, &id); err != nil {
			return store.MapError(err)
		}
		out[k] = id
	}
	return store.MapError(rows.Err())
}
