// Package pgstore is the adapter's own Postgres state (schema
// partnercenter_adapter): the sweep's durable watermark and the outcome of
// its last run, the notifications dropped because Partner Center had no
// such referral, and the idempotency record of every create and patch
// command (with the per-opportunity lock that serialises creates).
package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cosell/cosell/libs/store"
)

// Store reads and writes the adapter's tables.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// RecordMissing records a notification for a referral Partner Center
// answered 404 for; a redelivery of the same message is recorded once.
func (s *Store) RecordMissing(ctx context.Context, referralID, eventName, msgID, traceID string) error {
	if msgID == "" {
		msgID = "unknown"
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO partnercenter_adapter.missing_referrals (referral_id, event_name, msg_id, trace_id)
		VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, referralID, eventName, msgID, traceID)
	if err != nil {
		return fmt.Errorf("record missing referral: %w", store.MapError(err))
	}
	return nil
}

// Watermark returns the named cursor's watermark; ok is false when the
// cursor has none yet.
func (s *Store) Watermark(ctx context.Context, name string) (wm time.Time, ok bool, err error) {
	var t *time.Time
	err = s.pool.QueryRow(ctx, `SELECT watermark FROM partnercenter_adapter.cursors WHERE name = $1`, name).Scan(&t)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && t == nil) {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("read cursor %s: %w", name, store.MapError(err))
	}
	return t.UTC(), true, nil
}

// Advance moves the named cursor's watermark forward to wm; it never moves
// it back, so a slow run cannot undo a faster one. Postgres keeps
// microseconds and Partner Center's timestamps have 100 ns, so wm is
// truncated down: the watermark errs on the side of sweeping a little more.
func (s *Store) Advance(ctx context.Context, name string, wm time.Time) error {
	wm = wm.Truncate(time.Microsecond)
	_, err := s.pool.Exec(ctx, `INSERT INTO partnercenter_adapter.cursors (name, watermark) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET
			watermark = GREATEST(COALESCE(cursors.watermark, EXCLUDED.watermark), EXCLUDED.watermark),
			updated_at = now()`, name, wm)
	if err != nil {
		return fmt.Errorf("advance cursor %s: %w", name, store.MapError(err))
	}
	return nil
}

// Run is the outcome of one run of a loop, for operators.
type Run struct {
	// StartedAt and FinishedAt bound the run.
	StartedAt, FinishedAt time.Time
	// Outcome is "ok", "initialized" or "failed".
	Outcome string
	// Error is the failure, empty on success.
	Error string
	// Seen counts referrals read, Published those published, Pages the
	// list pages fetched.
	Seen, Published, Pages int
}

// RecordRun stores the outcome of the named loop's last run.
func (s *Store) RecordRun(ctx context.Context, name string, r Run) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO partnercenter_adapter.cursors
			(name, last_started_at, last_finished_at, last_outcome, last_error, last_seen, last_published, last_pages)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (name) DO UPDATE SET
			last_started_at = EXCLUDED.last_started_at, last_finished_at = EXCLUDED.last_finished_at,
			last_outcome = EXCLUDED.last_outcome, last_error = EXCLUDED.last_error,
			last_seen = EXCLUDED.last_seen, last_published = EXCLUDED.last_published,
			last_pages = EXCLUDED.last_pages, updated_at = now()`,
		name, r.StartedAt, r.FinishedAt, r.Outcome, r.Error, r.Seen, r.Published, r.Pages)
	if err != nil {
		return fmt.Errorf("record run of %s: %w", name, store.MapError(err))
	}
	return nil
}

// LastRun returns the outcome of the named loop's last run; ok is false
// when it never ran.
func (s *Store) LastRun(ctx context.Context, name string) (r Run, ok bool, err error) {
	var started, finished *time.Time
	err = s.pool.QueryRow(ctx, `SELECT last_started_at, last_finished_at, last_outcome, last_error, last_seen, last_published, last_pages
		FROM partnercenter_adapter.cursors WHERE name = $1`, name).
		Scan(&started, &finished, &r.Outcome, &r.Error, &r.Seen, &r.Published, &r.Pages)
	if errors.Is(err, pgx.ErrNoRows) {
		return Run{}, false, nil
	}
	if err != nil {
		return Run{}, false, fmt.Errorf("read last run of %s: %w", name, store.MapError(err))
	}
	if started != nil {
		r.StartedAt = started.UTC()
	}
	if finished != nil {
		r.FinishedAt = finished.UTC()
	}
	return r, finished != nil, nil
}
