package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Retention defaults.
const (
	// DefaultRetentionInterval is the pause between two retention runs.
	DefaultRetentionInterval = time.Hour
	// DefaultRetentionBatch is the most rows one DELETE removes: small
	// enough that a batch holds its row locks and WAL for milliseconds,
	// large enough that a backlog of millions clears in one run.
	DefaultRetentionBatch = 1000
)

// RetentionRule says which rows of one table expire.
type RetentionRule struct {
	// Table is the schema-qualified table, e.g. "mapper.audit_events".
	Table string
	// TimeColumn is the timestamptz column rows expire by.
	TimeColumn string
	// Where is an optional further condition, constant SQL written by the
	// service (never input), e.g. "replayed_at IS NOT NULL".
	Where string
	// Retention is how long rows are kept; zero disables the rule (rows
	// are kept forever).
	Retention time.Duration
	// AllowSetting names a custom setting (e.g. "cosell.audit_delete") set
	// to "retention" for each batch's transaction: the way a table whose
	// trigger refuses deletes lets the retention job through.
	AllowSetting string
}

// Retention deletes expired rows on a schedule, on one replica at a time
// (it holds a Lease while it runs), in bounded batches so that a large
// backlog never becomes one long transaction.
type Retention struct {
	pool     *pgxpool.Pool
	rules    []RetentionRule
	lease    *Lease
	interval time.Duration
	batch    int
	log      *slog.Logger
	deleted  metric.Int64Counter
}

// RetentionConfig configures NewRetention.
type RetentionConfig struct {
	// Lease names the lease, e.g. "mapper/retention".
	Lease string
	// Interval is the pause between runs (DefaultRetentionInterval).
	Interval time.Duration
	// Batch is the most rows one DELETE removes (DefaultRetentionBatch).
	Batch int
	// Logger receives one line per run with the rows removed per table.
	Logger *slog.Logger
	// Meter records cosell.retention.deleted{table}; nil records nothing.
	Meter metric.Meter
}

// settingName is what a custom setting name must look like (two
// identifiers joined by a dot), so it can be passed to set_config safely.
var settingName = regexp.MustCompile(`^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$`)

// NewRetention checks rules and returns the job; rules whose Retention is
// zero are dropped.
func NewRetention(pool *pgxpool.Pool, rules []RetentionRule, cfg RetentionConfig) (*Retention, error) {
	if cfg.Lease == "" {
		return nil, errors.New("retention: a lease name is required")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultRetentionInterval
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultRetentionBatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Meter == nil {
		cfg.Meter = noop.NewMeterProvider().Meter("")
	}
	r := &Retention{pool: pool, interval: cfg.Interval, batch: cfg.Batch, log: cfg.Logger,
		lease: NewLease(pool, cfg.Lease, WithLeaseLogger(cfg.Logger))}
	for _, rule := range rules {
		if rule.Retention < 0 {
			return nil, fmt.Errorf("retention of %s: must not be negative, got %v", rule.Table, rule.Retention)
		}
		if rule.Retention == 0 {
			continue
		}
		if _, err := tableIdent(rule.Table); err != nil {
			return nil, fmt.Errorf("retention: %w", err)
		}
		if !identPart.MatchString(rule.TimeColumn) {
			return nil, fmt.Errorf("retention of %s: column %q is not a lower-case identifier", rule.Table, rule.TimeColumn)
		}
		if rule.AllowSetting != "" && !settingName.MatchString(rule.AllowSetting) {
			return nil, fmt.Errorf("retention of %s: setting %q is not of the form prefix.name", rule.Table, rule.AllowSetting)
		}
		r.rules = append(r.rules, rule)
	}
	var err error
	r.deleted, err = cfg.Meter.Int64Counter("cosell.retention.deleted",
		metric.WithDescription("rows deleted by the retention job because they outlived their retention"),
		metric.WithUnit("{row}"))
	if err != nil {
		return nil, fmt.Errorf("retention: metric: %w", err)
	}
	return r, nil
}

// Run holds the lease and runs the job at once and then every interval
// until ctx ends. A failed run is logged and retried at the next interval.
func (r *Retention) Run(ctx context.Context) error {
	if len(r.rules) == 0 {
		return nil
	}
	return r.lease.Run(ctx, func(ctx context.Context) error {
		t := time.NewTicker(r.interval)
		defer t.Stop()
		for {
			if _, err := r.RunOnce(ctx); err != nil && ctx.Err() == nil {
				r.log.WarnContext(ctx, "retention run failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
		}
	})
}

// RunOnce deletes every expired row now, rule by rule in batches, and
// returns the rows removed per table. It does not take the lease: callers
// other than Run (tests, a one-off command) decide that themselves.
func (r *Retention) RunOnce(ctx context.Context) (map[string]int64, error) {
	counts := make(map[string]int64, len(r.rules))
	var errs []error
	for _, rule := range r.rules {
		n, err := r.prune(ctx, rule)
		counts[rule.Table] = n
		if n > 0 {
			r.deleted.Add(ctx, n, metric.WithAttributes(attribute.String("table", rule.Table)))
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	args := make([]any, 0, 2*len(counts))
	var total int64
	for _, rule := range r.rules {
		args = append(args, rule.Table, counts[rule.Table])
		total += counts[rule.Table]
	}
	r.log.InfoContext(ctx, "retention run", append([]any{"deleted", total}, args...)...)
	return counts, errors.Join(errs...)
}

// prune deletes one rule's expired rows in batches until a batch comes
// back short. Each batch is its own transaction.
func (r *Retention) prune(ctx context.Context, rule RetentionRule) (int64, error) {
	ident, _ := tableIdent(rule.Table) // checked in NewRetention
	col := pgx.Identifier{rule.TimeColumn}.Sanitize()
	cond := col + ` < now() - make_interval(secs => $1)`
	if rule.Where != "" {
		cond += ` AND (` + rule.Where + `)`
	}
	// ctid = ANY(ARRAY(...)) is a TID scan: the subquery picks a bounded
	// batch by the time column's index and the DELETE touches only those.
	q := `DELETE FROM ` + ident + ` WHERE ctid = ANY(ARRAY(SELECT ctid FROM ` + ident +
		` WHERE ` + cond + ` LIMIT $2))`
	var total int64
	for {
		var n int64
		err := InTx(ctx, r.pool, func(tx pgx.Tx) error {
			if rule.AllowSetting != "" {
				if _, err := tx.Exec(ctx, `SELECT set_config($1, 'retention', true)`, rule.AllowSetting); err != nil {
					return err
				}
			}
			tag, err := tx.Exec(ctx, q, rule.Retention.Seconds(), r.batch)
			if err != nil {
				return err
			}
			n = tag.RowsAffected()
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("retention of %s: %w", rule.Table, MapError(err))
		}
		total += n
		if n < int64(r.batch) || ctx.Err() != nil {
			return total, ctx.Err()
		}
	}
}
