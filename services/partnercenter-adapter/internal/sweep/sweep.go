// Package sweep is the reconciliation sweep: it lists referrals newest
// first (updatedDateTime desc, following @odata.nextLink) down to a
// durable watermark and publishes a snapshot of each, so a lost webhook
// heals by itself within one interval. The same walk, down to a given date
// instead of the watermark, is the operator's backfill.
package sweep

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pgstore"
)

// Cursor names in the cursors table.
const (
	// CursorSweep is the reconciliation sweep's watermark and last run.
	CursorSweep = "sweep"
	// CursorBackfill records the last backfill's run (it has no watermark).
	CursorBackfill = "backfill"
)

// Lister lists referrals page by page (pcclient.Client).
type Lister interface {
	ListReferrals(ctx context.Context, q pcclient.ListQuery, fn func(page []pcclient.Referral) (bool, error)) error
}

// Publisher publishes a referral's snapshot (observe.Observer).
type Publisher interface {
	Publish(ctx context.Context, ref pcclient.Referral, source cosellv1.ObservationSource, eventName string) error
}

// Cursors keeps watermarks and run outcomes (pgstore.Store).
type Cursors interface {
	Watermark(ctx context.Context, name string) (time.Time, bool, error)
	Advance(ctx context.Context, name string, wm time.Time) error
	RecordRun(ctx context.Context, name string, r pgstore.Run) error
}

// Config configures a Sweeper.
type Config struct {
	// Overlap is how far below the watermark a sweep pages.
	Overlap time.Duration
	// Logger, TracerProvider and Meter may be nil.
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	Meter          metric.Meter
}

// Sweeper runs sweeps and backfills.
type Sweeper struct {
	list    Lister
	pub     Publisher
	cursors Cursors
	overlap time.Duration
	log     *slog.Logger
	tracer  trace.Tracer
	now     func() time.Time

	runs        metric.Int64Counter
	lastSuccess atomic.Int64 // UnixNano of the last successful sweep
	lastFailure atomic.Int64 // UnixNano of the last failed sweep
}

// New returns a Sweeper.
func New(list Lister, pub Publisher, cursors Cursors, cfg Config) (*Sweeper, error) {
	s := &Sweeper{list: list, pub: pub, cursors: cursors, overlap: cfg.Overlap, log: cfg.Logger, now: time.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	s.tracer = tp.Tracer("github.com/cosell/cosell/services/partnercenter-adapter/internal/sweep")
	if cfg.Meter != nil {
		var err error
		if s.runs, err = cfg.Meter.Int64Counter("partnercenter_adapter.sweep.runs",
			metric.WithDescription("reconciliation sweeps and backfills, by kind and outcome")); err != nil {
			return nil, fmt.Errorf("sweep: metric: %w", err)
		}
		if _, err = cfg.Meter.Float64ObservableGauge("partnercenter_adapter.sweep.last_success",
			metric.WithUnit("s"), metric.WithDescription("Unix time of the last successful sweep (0 = none yet)"),
			metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
				o.Observe(unixSeconds(s.lastSuccess.Load()))
				return nil
			})); err != nil {
			return nil, fmt.Errorf("sweep: metric: %w", err)
		}
		if _, err = cfg.Meter.Float64ObservableGauge("partnercenter_adapter.sweep.last_failure",
			metric.WithUnit("s"), metric.WithDescription("Unix time of the last failed sweep (0 = none yet)"),
			metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
				o.Observe(unixSeconds(s.lastFailure.Load()))
				return nil
			})); err != nil {
			return nil, fmt.Errorf("sweep: metric: %w", err)
		}
	}
	return s, nil
}

func unixSeconds(nanos int64) float64 {
	if nanos == 0 {
		return 0
	}
	return float64(nanos) / 1e9
}

// Sweep runs one reconciliation sweep. The first sweep of a fresh install
// has no watermark: it sets one at now minus the overlap and publishes
// nothing (history is for `backfill`, on purpose: an operator decides how
// far back opportunities should be created).
func (s *Sweeper) Sweep(ctx context.Context) (pgstore.Run, error) {
	ctx, span := s.tracer.Start(ctx, "sweep")
	defer span.End()
	run := pgstore.Run{StartedAt: s.now().UTC()}
	wm, ok, err := s.cursors.Watermark(ctx, CursorSweep)
	if err == nil && !ok {
		start := run.StartedAt.Add(-s.overlap)
		if err = s.cursors.Advance(ctx, CursorSweep, start); err == nil {
			run.Outcome = "initialized"
			s.log.InfoContext(ctx, "sweep: no watermark yet; starting from now (use `backfill --since` for older referrals)", "watermark", start)
		}
	} else if err == nil {
		var newest time.Time
		newest, err = s.walk(ctx, wm.Add(-s.overlap), cosellv1.ObservationSource_OBSERVATION_SOURCE_SWEEP, &run)
		if err == nil && newest.After(wm) {
			err = s.cursors.Advance(ctx, CursorSweep, newest)
		}
		if err == nil {
			run.Outcome = "ok"
		}
	}
	return run, s.finish(ctx, CursorSweep, "sweep", run, err)
}

// Backfill publishes every referral updated at or after since (source
// backfill), newest first. It leaves the sweep's watermark alone.
func (s *Sweeper) Backfill(ctx context.Context, since time.Time) (pgstore.Run, error) {
	ctx, span := s.tracer.Start(ctx, "backfill")
	defer span.End()
	run := pgstore.Run{StartedAt: s.now().UTC()}
	_, err := s.walk(ctx, since, cosellv1.ObservationSource_OBSERVATION_SOURCE_BACKFILL, &run)
	if err == nil {
		run.Outcome = "ok"
	}
	return run, s.finish(ctx, CursorBackfill, "backfill", run, err)
}

// finish records the run's outcome (row, metric, log) and returns err.
func (s *Sweeper) finish(ctx context.Context, cursor, kind string, run pgstore.Run, err error) error {
	run.FinishedAt = s.now().UTC()
	if err != nil {
		run.Outcome, run.Error = "failed", err.Error()
	}
	trace.SpanFromContext(ctx).SetAttributes(attribute.String("cosell.sweep.outcome", run.Outcome),
		attribute.Int("cosell.sweep.published", run.Published), attribute.Int("cosell.sweep.pages", run.Pages))
	if s.runs != nil {
		s.runs.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", kind), attribute.String("outcome", run.Outcome)))
	}
	if kind == "sweep" {
		if err != nil {
			s.lastFailure.Store(run.FinishedAt.UnixNano())
		} else {
			s.lastSuccess.Store(run.FinishedAt.UnixNano())
		}
	}
	// The outcome row must be written even when ctx is being cancelled.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if rerr := s.cursors.RecordRun(rctx, cursor, run); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	s.log.InfoContext(ctx, kind+" finished", "outcome", run.Outcome, "seen", run.Seen, "published", run.Published,
		"pages", run.Pages, "took", run.FinishedAt.Sub(run.StartedAt).String())
	return nil
}

// walk pages through referrals newest first and publishes each updated at
// or after stopAt, then stops. It returns the newest updatedDateTime seen.
func (s *Sweeper) walk(ctx context.Context, stopAt time.Time, source cosellv1.ObservationSource, run *pgstore.Run) (time.Time, error) {
	var newest time.Time
	// With a changing list, a record can move between pages during the
	// walk; publish each id once.
	seen := map[string]struct{}{}
	err := s.list.ListReferrals(ctx, pcclient.ListQuery{OrderBy: "updatedDateTime desc"}, func(page []pcclient.Referral) (bool, error) {
		run.Pages++
		for _, ref := range page {
			if ref.UpdatedAt.Before(stopAt) {
				return false, nil
			}
			if _, dup := seen[ref.ID]; dup {
				continue
			}
			seen[ref.ID] = struct{}{}
			run.Seen++
			if err := s.pub.Publish(ctx, ref, source, ""); err != nil {
				return false, err
			}
			run.Published++
			if ref.UpdatedAt.After(newest) {
				newest = ref.UpdatedAt
			}
		}
		return true, nil
	})
	return newest, err
}

// Loop sweeps now and then every interval until ctx ends. A failed sweep
// is logged and retried at the next interval; the watermark did not move,
// so nothing is skipped. Run it under a lease so one replica sweeps.
func (s *Sweeper) Loop(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.ErrorContext(ctx, "sweep failed; will retry at the next interval", "err", err, "interval", interval.String())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
