// Package poller detects changed opportunities in Salesforce. Every
// interval it runs one queryAll on SystemModstamp at or after a durable
// watermark minus an overlap, pages with nextRecordsUrl, and publishes an
// OpportunityObserved for each opportunity that is opted in
// (Sync_with_Partner_Center__c), already linked (Referral_Identifier__c)
// or deleted. The overlap catches records whose SystemModstamp was taken
// before, but committed after, the newest record of the previous poll;
// the versions already published ((Id, SystemModstamp), kept in Postgres)
// keep the overlap from publishing anything twice, also across restarts.
//
// Two overlaps keep that cheap. Quick polls ask from the watermark minus a
// few seconds (QuickOverlap), which catches the usual late commit and,
// after a burst of changes, re-reads seconds of records instead of
// minutes. Every OverlapEvery a full poll asks from the watermark minus the
// whole Overlap, for the rare transaction that commits long after its
// stamp; full polls stop once Overlap has passed since the watermark last
// moved, because nothing stamped before the watermark can commit after
// that. A poll with no changes is one API call.
//
// Polls more frequent than QuickOverlap would re-read the same seconds of
// records again and again (at a 1 s interval, each record six times), so
// a quick poll runs at most once per QuickOverlap, and asks from the
// watermark its predecessor left minus QuickOverlap: any record committed
// after that predecessor's query, within QuickOverlap of its stamp, is in
// that window. The polls between ask from the watermark itself ("tail" polls),
// which finds every record committed in stamp order at once.
//
// The watermark is Salesforce's own clock: the newest SystemModstamp
// published. It moves only after the page's messages are stored by
// JetStream.
//
// Only one replica may poll; the caller runs Run under a store.Lease.
package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/cursorstore"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/opprecord"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
)

// Cursor names the poller's row in the cursors table.
const Cursor = "opportunities"

// LeaseName is the lease under which one replica polls.
const LeaseName = "salesforce-adapter/poller"

// Relevant is the SOQL condition of the opportunities the poller
// publishes: opted in, linked, or deleted.
const Relevant = opprecord.Relevant

// Span attribute keys.
const (
	AttrOpportunityID = attribute.Key("cosell.opportunity_id")
	AttrReferralID    = attribute.Key("cosell.referral_id")
)

// Poll outcomes, on the cursor row and the metrics.
const (
	OutcomeOK       = "ok"
	OutcomeFailed   = "failed"
	OutcomeDeferred = "deferred" // the API budget is exhausted
)

// Defaults of Config.
const (
	DefaultInterval           = 15 * time.Second
	DefaultOverlap            = 2 * time.Minute
	DefaultQuickOverlap       = 5 * time.Second
	DefaultOverlapEvery       = 30 * time.Second
	DefaultPublishConcurrency = 32
)

// Salesforce is what the poller needs of the Salesforce client.
type Salesforce interface {
	QueryAll(ctx context.Context, soql string) (*sfclient.QueryResult, error)
	QueryMore(ctx context.Context, nextRecordsURL string) (*sfclient.QueryResult, error)
}

// Publisher publishes messages; *bus.Conn is one.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, m proto.Message) error
}

// Cursors keeps the watermark and the published versions;
// *cursorstore.Store is one.
type Cursors interface {
	Watermark(ctx context.Context, name string) (time.Time, bool, error)
	Published(ctx context.Context, vs []cursorstore.Version) (map[cursorstore.Version]bool, error)
	Commit(ctx context.Context, name string, vs []cursorstore.Version, wm time.Time) error
	Prune(ctx context.Context, before time.Time) (int64, error)
	RecordRun(ctx context.Context, name string, r cursorstore.Run) error
}

// Config configures a Poller.
type Config struct {
	// Interval is the time between the starts of two polls.
	Interval time.Duration
	// Overlap is how far below the watermark a full poll asks: the
	// longest a Salesforce transaction may take to commit after stamping
	// its records.
	Overlap time.Duration
	// QuickOverlap is how far below the watermark the quick polls ask;
	// never more than Overlap. It is also the least time between two
	// quick polls: polls in between ask from the watermark.
	QuickOverlap time.Duration
	// OverlapEvery is the time between full polls while records stamped
	// before the watermark may still commit.
	OverlapEvery time.Duration
	// PublishConcurrency bounds publishes in flight within a page.
	PublishConcurrency int
	// Logger, TracerProvider and Meter may be nil.
	Logger         *slog.Logger
	TracerProvider trace.TracerProvider
	Meter          metric.Meter
	// Now is the local clock, used only for observed_at and the run's
	// times, never for the watermark; nil means time.Now.
	Now func() time.Time
}

// Poller polls Salesforce for changed opportunities.
type Poller struct {
	sf      Salesforce
	pub     Publisher
	cursors Cursors
	cfg     Config
	log     *slog.Logger
	tracer  trace.Tracer

	runs      metric.Int64Counter
	published metric.Int64Counter
	lastRun   map[string]*atomic.Int64 // outcome → UnixNano of its last poll
	watermark atomic.Int64             // UnixNano of the watermark, 0 = none
	reg       metric.Registration

	// Local times (Config.Now) of the last full poll that succeeded and of
	// the last time the watermark moved; only Run's goroutine uses them.
	lastFull, movedAt time.Time
	// lastQuick is when the last quick or full poll that succeeded
	// started, and quickFrom the watermark it left: the newest stamp its
	// query saw, so a record committed after that query ran was stamped
	// after quickFrom minus QuickOverlap, where the next quick poll asks
	// from.
	lastQuick, quickFrom time.Time
}

// Poll modes, on the poll's span.
const (
	modeFull  = "full"
	modeQuick = "quick"
	modeTail  = "tail"
)

// New returns a poller.
func New(sf Salesforce, pub Publisher, cursors Cursors, cfg Config) (*Poller, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Overlap < 0 {
		return nil, fmt.Errorf("poller: negative overlap %s", cfg.Overlap)
	}
	if cfg.QuickOverlap <= 0 {
		cfg.QuickOverlap = DefaultQuickOverlap
	}
	cfg.QuickOverlap = min(cfg.QuickOverlap, cfg.Overlap)
	if cfg.OverlapEvery <= 0 {
		cfg.OverlapEvery = DefaultOverlapEvery
	}
	if cfg.PublishConcurrency <= 0 {
		cfg.PublishConcurrency = DefaultPublishConcurrency
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Poller{sf: sf, pub: pub, cursors: cursors, cfg: cfg, log: cfg.Logger,
		lastRun: map[string]*atomic.Int64{OutcomeOK: {}, OutcomeFailed: {}, OutcomeDeferred: {}},
		// Records stamped before a watermark read at start may still be
		// committing: full polls run for a whole Overlap after start.
		movedAt: cfg.Now()}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	p.tracer = tp.Tracer("github.com/cosell/cosell/services/salesforce-adapter/internal/poller")
	m := cfg.Meter
	if m == nil {
		m = noop.NewMeterProvider().Meter("")
	}
	if err := p.instrument(m); err != nil {
		return nil, fmt.Errorf("poller: metrics: %w", err)
	}
	return p, nil
}

// instrument creates the poller's metrics.
func (p *Poller) instrument(m metric.Meter) error {
	var err error
	if p.runs, err = m.Int64Counter("cosell.salesforce.poll.runs",
		metric.WithDescription("Opportunity polls, by outcome (ok, failed, deferred)."),
		metric.WithUnit("{poll}")); err != nil {
		return err
	}
	if p.published, err = m.Int64Counter("cosell.salesforce.poll.published",
		metric.WithDescription("OpportunityObserved messages published by the poller, by deleted."),
		metric.WithUnit("{message}")); err != nil {
		return err
	}
	last, err := m.Float64ObservableGauge("cosell.salesforce.poll.last_time",
		metric.WithDescription("Unix time of the last poll with each outcome (ok, failed, deferred)."),
		metric.WithUnit("s"))
	if err != nil {
		return err
	}
	wm, err := m.Float64ObservableGauge("cosell.salesforce.poll.watermark",
		metric.WithDescription("The poll watermark: the newest Opportunity SystemModstamp published, as Unix time."),
		metric.WithUnit("s"))
	if err != nil {
		return err
	}
	p.reg, err = m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		for outcome, at := range p.lastRun {
			if n := at.Load(); n != 0 {
				o.ObserveFloat64(last, float64(n)/1e9, metric.WithAttributes(attribute.String("outcome", outcome)))
			}
		}
		if n := p.watermark.Load(); n != 0 {
			o.ObserveFloat64(wm, float64(n)/1e9)
		}
		return nil
	}, last, wm)
	return err
}

// Close unregisters the metric callbacks.
func (p *Poller) Close() error {
	if p.reg == nil {
		return nil
	}
	return p.reg.Unregister()
}

// Run polls every Interval until ctx ends, then returns nil. A failed poll
// is logged and recorded; the next one retries from the same watermark.
func (p *Poller) Run(ctx context.Context) error {
	p.log.InfoContext(ctx, "opportunity poller started", "interval", p.cfg.Interval.String(), "overlap", p.cfg.Overlap.String())
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			p.log.InfoContext(ctx, "opportunity poller stopped")
			return nil
		case <-t.C:
		}
		start := time.Now()
		if _, err := p.Poll(ctx); err != nil && ctx.Err() == nil {
			p.log.WarnContext(ctx, "opportunity poll failed; retrying next interval", "err", err)
		}
		t.Reset(max(p.cfg.Interval-time.Since(start), 0))
	}
}

// Poll runs one poll: it asks for the opportunities changed since the
// watermark minus the overlap, publishes the versions not yet published,
// and advances the watermark page by page after the page's messages are
// stored.
func (p *Poller) Poll(ctx context.Context) (cursorstore.Run, error) {
	ctx, span := p.tracer.Start(ctx, "poll "+opprecord.SObject, trace.WithNewRoot())
	defer span.End()
	run := cursorstore.Run{StartedAt: p.cfg.Now().UTC()}
	err := p.poll(ctx, span, &run)
	return run, p.finish(ctx, span, run, err)
}

func (p *Poller) poll(ctx context.Context, span trace.Span, run *cursorstore.Run) error {
	wm, ok, err := p.cursors.Watermark(ctx, Cursor)
	if err != nil {
		return err
	}
	where := Relevant
	mode := p.mode(ok, run.StartedAt)
	full := mode == modeFull
	if ok {
		p.watermark.Store(wm.UnixNano())
		from := wm
		switch mode {
		case modeFull:
			from = wm.Add(-p.cfg.Overlap)
			if !p.quickFrom.IsZero() {
				from = minTime(from, p.quickFrom.Add(-p.cfg.QuickOverlap))
			}
		case modeQuick:
			if !p.quickFrom.IsZero() {
				from = minTime(wm, p.quickFrom)
			}
			from = from.Add(-p.cfg.QuickOverlap)
		}
		where = "SystemModstamp >= " + opprecord.SOQLDateTime(from) + " AND " + Relevant
		span.SetAttributes(attribute.String("cosell.poll.watermark", wm.Format(time.RFC3339Nano)))
	}
	span.SetAttributes(attribute.Bool("cosell.poll.full", full), attribute.String("cosell.poll.mode", mode))
	run.Full = full
	page, err := p.sf.QueryAll(ctx, opprecord.SOQL(where, "SystemModstamp, Id"))
	newest := wm
	for err == nil {
		run.Pages++
		var pageNewest time.Time
		pageNewest, err = p.page(ctx, span, page, run)
		if err != nil {
			break
		}
		if pageNewest.After(newest) {
			newest = pageNewest
			p.watermark.Store(newest.UnixNano())
		}
		if page.Done || page.NextRecordsURL == "" {
			break
		}
		page, err = p.sf.QueryMore(ctx, page.NextRecordsURL)
	}
	if err != nil {
		return err
	}
	if full {
		p.lastFull = run.StartedAt
	}
	if mode != modeTail {
		p.lastQuick, p.quickFrom = run.StartedAt, newest
	}
	if newest.After(wm) {
		p.movedAt = run.StartedAt
	}
	if !newest.IsZero() {
		// Versions below the next poll's lower bound can never be
		// returned again.
		if _, err := p.cursors.Prune(ctx, newest.Add(-p.cfg.Overlap).Truncate(time.Second)); err != nil {
			p.log.WarnContext(ctx, "prune published versions", "err", err)
		}
	}
	return nil
}

// mode decides how far back the poll starting at now asks: full, quick,
// or from the watermark itself (tail). Without a watermark every poll asks
// for everything, which counts as full.
func (p *Poller) mode(haveWatermark bool, now time.Time) string {
	switch {
	case !haveWatermark || p.fullDue(now):
		return modeFull
	case p.quickFrom.IsZero() || now.Sub(p.lastQuick) >= p.cfg.QuickOverlap:
		return modeQuick
	default:
		return modeTail
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// fullDue reports whether the poll starting at now must ask from the
// watermark minus the whole Overlap: OverlapEvery has passed since the last
// full poll, and that poll ran before Overlap had passed since the
// watermark last moved (so a late commit below it was still possible).
func (p *Poller) fullDue(now time.Time) bool {
	if p.lastFull.IsZero() {
		return true
	}
	return now.Sub(p.lastFull) >= p.cfg.OverlapEvery && p.lastFull.Before(p.movedAt.Add(p.cfg.Overlap))
}

// page publishes a page's new versions and commits them with the page's
// newest SystemModstamp as the watermark. It returns that SystemModstamp.
func (p *Poller) page(ctx context.Context, span trace.Span, page *sfclient.QueryResult, run *cursorstore.Run) (time.Time, error) {
	// Most rows of an overlapping poll were published before: read only
	// their Id and SystemModstamp, and decode the whole record (the costly
	// part) of the new versions alone.
	recs := make([]opprecord.Record, len(page.Records))
	vs := make([]cursorstore.Version, 0, len(page.Records))
	var newest time.Time
	for _, raw := range page.Records {
		v, err := opprecord.Peek(raw)
		if err != nil {
			return time.Time{}, err
		}
		vs = append(vs, cursorstore.Version{OpportunityID: v.ID, SystemModstamp: v.SystemModstamp})
		if v.SystemModstamp.After(newest) {
			newest = v.SystemModstamp
		}
	}
	run.Seen += len(vs)
	done, err := p.cursors.Published(ctx, vs)
	if err != nil {
		return time.Time{}, err
	}
	var fresh []int
	for i := range vs {
		if done[vs[i]] {
			continue
		}
		done[vs[i]] = true // a page may hold the same version twice
		if recs[i], err = opprecord.Decode(page.Records[i]); err != nil {
			return time.Time{}, err
		}
		fresh = append(fresh, i)
	}
	sent := make([]bool, len(fresh))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.cfg.PublishConcurrency)
	link := trace.Link{SpanContext: span.SpanContext()}
	for j, i := range fresh {
		g.Go(func() error {
			if err := p.publish(gctx, recs[i], link); err != nil {
				return err
			}
			sent[j] = true
			return nil
		})
	}
	perr := g.Wait()
	stored := make([]cursorstore.Version, 0, len(fresh))
	for j, i := range fresh {
		if sent[j] {
			stored = append(stored, vs[i])
		}
	}
	run.Published += len(stored)
	if perr != nil {
		// Remember what was sent, but keep the watermark: the rest of the
		// page comes back with the next poll.
		if err := p.cursors.Commit(context.WithoutCancel(ctx), Cursor, stored, time.Time{}); err != nil {
			perr = errors.Join(perr, err)
		}
		return time.Time{}, perr
	}
	if err := p.cursors.Commit(ctx, Cursor, stored, newest); err != nil {
		return time.Time{}, err
	}
	return newest, nil
}

// publish sends one OpportunityObserved. Each opportunity's journey is a
// trace of its own, linked to the poll that found it.
func (p *Poller) publish(ctx context.Context, r opprecord.Record, poll trace.Link) error {
	attrs := []attribute.KeyValue{AttrOpportunityID.String(r.ID), attribute.Bool("cosell.opportunity.deleted", r.Deleted)}
	if r.ReferralID != "" {
		attrs = append(attrs, AttrReferralID.String(r.ReferralID))
	}
	ctx, span := p.tracer.Start(ctx, "observe "+opprecord.SObject, trace.WithNewRoot(),
		trace.WithLinks(poll), trace.WithAttributes(attrs...))
	defer span.End()
	if err := p.pub.Publish(ctx, bus.SubjectOpportunityObserved, r.MsgID(), r.Message(p.cfg.Now())); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
		return fmt.Errorf("publish opportunity %s: %w", r.ID, err)
	}
	p.published.Add(ctx, 1, metric.WithAttributes(attribute.Bool("deleted", r.Deleted)))
	return nil
}

// finish records the poll's outcome on the cursor row, the metrics, the
// span and the log, and returns err.
func (p *Poller) finish(ctx context.Context, span trace.Span, run cursorstore.Run, err error) error {
	run.FinishedAt = p.cfg.Now().UTC()
	switch {
	case err == nil:
		run.Outcome = OutcomeOK
	case errors.Is(err, sfclient.ErrBudgetExhausted) || errors.Is(err, sfclient.ErrLimitExceeded):
		run.Outcome, run.Error = OutcomeDeferred, err.Error()
	default:
		run.Outcome, run.Error = OutcomeFailed, err.Error()
	}
	span.SetAttributes(attribute.String("cosell.poll.outcome", run.Outcome), attribute.Int("cosell.poll.seen", run.Seen),
		attribute.Int("cosell.poll.published", run.Published), attribute.Int("cosell.poll.pages", run.Pages))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "poll "+run.Outcome)
	}
	if ctx.Err() != nil && err != nil {
		// Stopped (shutdown or lease lost): not a poll outcome worth a row.
		return err
	}
	p.runs.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", run.Outcome)))
	p.lastRun[run.Outcome].Store(run.FinishedAt.UnixNano())
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if rerr := p.cursors.RecordRun(rctx, Cursor, run); rerr != nil {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("poll opportunities: %w", err)
	}
	if run.Published > 0 {
		p.log.InfoContext(ctx, "opportunities observed", "published", run.Published, "seen", run.Seen, "pages", run.Pages)
	} else {
		p.log.DebugContext(ctx, "opportunity poll: nothing new", "seen", run.Seen, "pages", run.Pages)
	}
	return nil
}
