// Package cursorstore keeps the opportunity poller's durable state in
// Postgres: the watermark and last outcome of each cursor
// (salesforce_adapter.cursors) and the (opportunity, SystemModstamp)
// versions already published (salesforce_adapter.observed), which make
// the poll's overlap window free of repeats, also across restarts.
package cursorstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cosell/cosell/libs/store"
)

// Store reads and writes the poller's tables.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Version is one published version of an opportunity.
type Version struct {
	OpportunityID  string
	SystemModstamp time.Time
}

// Run is the outcome of one poll, recorded on its cursor row.
type Run struct {
	StartedAt, FinishedAt time.Time
	// Outcome is "ok", "failed" or "deferred" (API budget exhausted).
	Outcome string
	// Error explains a failed or deferred poll.
	Error string
	// Seen, Published and Pages count records returned, records published
	// and query pages read.
	Seen, Published, Pages int
	// Full reports a poll that asked from the watermark minus the whole
	// overlap window (not stored).
	Full bool
}

// Watermark returns the cursor's watermark, and false when it has none
// yet.
func (s *Store) Watermark(ctx context.Context, name string) (time.Time, bool, error) {
	var wm *time.Time
	err := s.pool.QueryRow(ctx, `SELECT watermark FROM salesforce_adapter.cursors WHERE name = $1`, name).Scan(&wm)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && wm == nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read watermark %s: %w", name, store.MapError(err))
	}
	return wm.UTC(), true, nil
}

// Published returns which of vs were published already.
func (s *Store) Published(ctx context.Context, vs []Version) (map[Version]bool, error) {
	out := make(map[Version]bool)
	if len(vs) == 0 {
		return out, nil
	}
	ids := make([]string, len(vs))
	stamps := make([]time.Time, len(vs))
	for i, v := range vs {
		ids[i], stamps[i] = v.OpportunityID, v.SystemModstamp
	}
	rows, err := s.pool.Query(ctx, `SELECT o.opportunity_id, o.system_modstamp
		FROM salesforce_adapter.observed o
		JOIN unnest($1::text[], $2::timestamptz[]) AS v(id, ts) ON o.opportunity_id = v.id AND o.system_modstamp = v.ts`,
		ids, stamps)
	if err != nil {
		return nil, fmt.Errorf("read published versions: %w", store.MapError(err))
	}
	defer rows.Close()
	for rows.Next() {
		var v Version
		if err := rows.Scan(&v.OpportunityID, &v.SystemModstamp); err != nil {
			return nil, fmt.Errorf("read published versions: %w", store.MapError(err))
		}
		v.SystemModstamp = v.SystemModstamp.UTC()
		out[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read published versions: %w", store.MapError(err))
	}
	return out, nil
}

// MarkPublished records vs as published without moving any watermark:
// versions that reached the mapper another way (read back with a write)
// and that a poll therefore skips.
func (s *Store) MarkPublished(ctx context.Context, vs []Version) error {
	return insertVersions(ctx, s.pool, vs)
}

// insertVersions records vs as published.
func insertVersions(ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, vs []Version) error {
	if len(vs) == 0 {
		return nil
	}
	ids := make([]string, len(vs))
	stamps := make([]time.Time, len(vs))
	for i, v := range vs {
		ids[i], stamps[i] = v.OpportunityID, v.SystemModstamp
	}
	if _, err := db.Exec(ctx, `INSERT INTO salesforce_adapter.observed (opportunity_id, system_modstamp)
		SELECT * FROM unnest($1::text[], $2::timestamptz[])
		ON CONFLICT DO NOTHING`, ids, stamps); err != nil {
		return fmt.Errorf("record published versions: %w", store.MapError(err))
	}
	return nil
}

// Commit records vs as published and moves the cursor's watermark up to
// wm (never down), in one transaction.
func (s *Store) Commit(ctx context.Context, name string, vs []Version, wm time.Time) error {
	err := store.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := insertVersions(ctx, tx, vs); err != nil {
			return err
		}
		if wm.IsZero() {
			return nil
		}
		if _, err := tx.Exec(ctx, `INSERT INTO salesforce_adapter.cursors (name, watermark, updated_at) VALUES ($1, $2, now())
			ON CONFLICT (name) DO UPDATE SET
				watermark = GREATEST(COALESCE(cursors.watermark, EXCLUDED.watermark), EXCLUDED.watermark),
				updated_at = now()`, name, wm); err != nil {
			return fmt.Errorf("advance watermark %s: %w", name, store.MapError(err))
		}
		return nil
	})
	return err
}

// Prune forgets published versions older than before: a poll never asks
// for them again.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM salesforce_adapter.observed WHERE system_modstamp < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("prune published versions: %w", store.MapError(err))
	}
	return tag.RowsAffected(), nil
}

// RecordRun stores the outcome of a poll on the cursor's row.
func (s *Store) RecordRun(ctx context.Context, name string, r Run) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO salesforce_adapter.cursors
			(name, last_started_at, last_finished_at, last_outcome, last_error, last_seen, last_published, last_pages, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now())
		ON CONFLICT (name) DO UPDATE SET
			last_started_at = EXCLUDED.last_started_at, last_finished_at = EXCLUDED.last_finished_at,
			last_outcome = EXCLUDED.last_outcome, last_error = EXCLUDED.last_error,
			last_seen = EXCLUDED.last_seen, last_published = EXCLUDED.last_published,
			last_pages = EXCLUDED.last_pages, updated_at = now()`,
		name, r.StartedAt, r.FinishedAt, r.Outcome, r.Error, r.Seen, r.Published, r.Pages)
	if err != nil {
		return fmt.Errorf("record poll of %s: %w", name, store.MapError(err))
	}
	return nil
}

// Cursor is a cursor row, for operators and tests.
type Cursor struct {
	Name      string
	Watermark *time.Time
	Last      Run
}

// Get reads a cursor row.
func (s *Store) Get(ctx context.Context, name string) (Cursor, error) {
	c := Cursor{Name: name}
	var started, finished *time.Time
	err := s.pool.QueryRow(ctx, `SELECT watermark, last_started_at, last_finished_at, last_outcome, last_error,
			last_seen, last_published, last_pages
		FROM salesforce_adapter.cursors WHERE name = $1`, name).
		Scan(&c.Watermark, &started, &finished, &c.Last.Outcome, &c.Last.Error, &c.Last.Seen, &c.Last.Published, &c.Last.Pages)
	if errors.Is(err, pgx.ErrNoRows) {
		return Cursor{}, fmt.Errorf("cursor %s: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return Cursor{}, fmt.Errorf("read cursor %s: %w", name, store.MapError(err))
	}
	if started != nil {
		c.Last.StartedAt = started.UTC()
	}
	if finished != nil {
		c.Last.FinishedAt = finished.UTC()
	}
	return c, nil
}
