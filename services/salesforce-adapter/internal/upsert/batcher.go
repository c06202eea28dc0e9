// Package upsert turns opportunity write commands into as few Salesforce
// calls as possible. Commands submitted while others are pending are
// collected for a few milliseconds (or until 200 are waiting) and sent as
// one sObject Collections call: upserts by External ID (after their
// customers' Accounts are resolved in one go), or updates by Id for
// write-backs (commands with an OpportunityID). Upsert commands for the
// same referral within a batch are merged (the newest wins, all get its
// result); update commands for the same opportunity are never merged, as
// each carries different fields, but wait for one another. A record never
// has two writes in flight at once, so an older command cannot overwrite a
// newer one. Row-lock errors are retried per record with jittered backoff;
// validation errors are final.
//
// Submit blocks until its command's outcome is known, so the message
// consumer acknowledges a command only after its result exists.
package upsert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/cosell/cosell/services/salesforce-adapter/internal/accounts"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/cursorstore"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/opprecord"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
)

// Span attribute keys shared with the consumer.
const (
	AttrReferralID    = attribute.Key("cosell.referral_id")
	AttrOpportunityID = attribute.Key("cosell.opportunity_id")
	attrBatchSize     = attribute.Key("cosell.batch.size")
	attrBatchRecords  = attribute.Key("cosell.batch.records")
)

// SObject is the object the commands upsert.
const SObject = "Opportunity"

// Kind classifies an outcome.
type Kind int

// Outcome kinds.
const (
	// OK: the opportunity was written.
	OK Kind = iota + 1
	// Rejected: Salesforce refused the record; retrying cannot help.
	Rejected
	// Failed: the write could not be made after retries (outage, auth).
	Failed
	// RetryLater: nothing was attempted (API budget exhausted, shutting
	// down); the command should come back after RetryAfter.
	RetryLater
)

// String names the kind for logs and metrics.
func (k Kind) String() string {
	switch k {
	case OK:
		return "ok"
	case Rejected:
		return "rejected"
	case Failed:
		return "failed"
	case RetryLater:
		return "retry_later"
	}
	return "unknown"
}

// ErrStopping is the cause of RetryLater outcomes given while the batcher
// shuts down.
var ErrStopping = errors.New("upsert batcher stopping")

// Command is one opportunity upsert, or one update by Id.
type Command struct {
	// ID identifies the command (its result carries it back).
	ID string
	// OpportunityID, when set, makes the command an update of that
	// opportunity by Id (a write-back) rather than an upsert;
	// ExternalIDField and Customer are then ignored and ReferralID is
	// only carried for correlation.
	OpportunityID string
	// ReferralID is the External ID value.
	ReferralID string
	// ExternalIDField is the External ID field's API name.
	ExternalIDField string
	// Fields are the Opportunity fields to set, keyed by API name.
	Fields map[string]json.RawMessage
	// Customer is the Account to find or create; nil for none.
	Customer *accounts.Customer
	// SourceUpdatedAt orders commands for the same referral: the newest
	// wins within a batch.
	SourceUpdatedAt time.Time
	// ExpectedSystemModstamp, when set, makes the write conditional: it is
	// sent only if the opportunity's SystemModstamp still equals it (to the
	// millisecond); otherwise the command is Rejected with
	// CodePreconditionFailed and nothing is written.
	ExpectedSystemModstamp time.Time
	// Span is the command's span, which the batch span links to.
	Span trace.SpanContext
}

// Outcome is how a command ended.
type Outcome struct {
	// Kind says how the command ended.
	Kind Kind
	// OpportunityID and Created describe a write (OK).
	OpportunityID string
	Created       bool
	// AccountID is the customer Account set on the opportunity.
	AccountID string
	// Errors are Salesforce's errors (Rejected, and Failed when Salesforce
	// answered).
	Errors []sfclient.ErrorItem
	// Err explains Failed and RetryLater.
	Err error
	// RetryAfter is the suggested delay of RetryLater.
	RetryAfter time.Duration
	// Batch is the span of the call that decided the outcome.
	Batch trace.SpanContext
	// Observed is the opportunity as Salesforce read it back in the same
	// call, right after the write (OK only; nil when the read-back failed
	// or did not return the record).
	Observed *opprecord.Record
}

// Salesforce is what the batcher needs of the Salesforce client.
type Salesforce interface {
	// UpsertCollectionReadBack and UpdateCollectionReadBack write a batch
	// and read the written records back in the same call.
	UpsertCollectionReadBack(ctx context.Context, sobject, extField string, records []sfclient.Record, soql string) (sfclient.WriteReadBack, error)
	UpdateCollectionReadBack(ctx context.Context, sobject string, records []sfclient.Record, soql string) (sfclient.WriteReadBack, error)
	// Query reads the current SystemModstamp of conditional commands'
	// opportunities (one query per batch that has some).
	Query(ctx context.Context, soql string) (*sfclient.QueryResult, error)
}

// AccountResolver finds or creates customer Accounts.
type AccountResolver interface {
	Resolve(ctx context.Context, customers []accounts.Customer) (map[string]accounts.Resolution, error)
	Forget(ctx context.Context, c accounts.Customer) error
}

// Config tunes the batcher.
type Config struct {
	// BatchSize is the most records per call (at most 200).
	BatchSize int
	// BatchWait is how long the first pending command waits for others.
	BatchWait time.Duration
	// Workers is how many batches are processed at once; it should equal
	// the client's call concurrency.
	Workers int
	// LockRetry spaces the retries of records that hit UNABLE_TO_LOCK_ROW;
	// after LockRetry.Attempts tries the record fails.
	LockRetry sfclient.Retry
	// BudgetRetryAfter is the delay suggested when the API budget is
	// exhausted.
	BudgetRetryAfter time.Duration
	// CallTimeout bounds the processing of one batch.
	CallTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultBatchSize        = sfclient.MaxCollection
	DefaultBatchWait        = 5 * time.Millisecond
	DefaultWorkers          = 4
	DefaultBudgetRetryAfter = time.Minute
	DefaultCallTimeout      = 2 * time.Minute
)

func (c Config) withDefaults() Config {
	if c.BatchSize <= 0 || c.BatchSize > sfclient.MaxCollection {
		c.BatchSize = DefaultBatchSize
	}
	if c.BatchWait < 0 {
		c.BatchWait = 0
	}
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.LockRetry.Attempts <= 0 {
		c.LockRetry.Attempts = 5
	}
	if c.LockRetry.Initial <= 0 {
		c.LockRetry.Initial = 100 * time.Millisecond
	}
	if c.LockRetry.Max < c.LockRetry.Initial {
		c.LockRetry.Max = max(2*time.Second, c.LockRetry.Initial)
	}
	if c.BudgetRetryAfter <= 0 {
		c.BudgetRetryAfter = DefaultBudgetRetryAfter
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	return c
}

// Batcher collects commands into batches and processes them. Run it
// once; Submit from any goroutine while it runs.
type Batcher struct {
	cfg      Config
	sf       Salesforce
	accounts AccountResolver
	tracer   trace.Tracer
	log      *slog.Logger
	metrics  metrics
	seen     ReadBackSeen

	in      chan *item
	work    chan *batch
	reports chan report
	stopped chan struct{}
	running sync.Once
}

// Option adjusts New.
type Option func(*Batcher)

// ReadBackSeen is told the opportunity versions a batch read back, which
// its results carry to the mapper; the poller need not publish them
// again. *cursorstore.Store's MarkPublished is one.
type ReadBackSeen func(ctx context.Context, vs []cursorstore.Version) error

// WithReadBackSeen sets what is told of read-back versions.
func WithReadBackSeen(f ReadBackSeen) Option { return func(b *Batcher) { b.seen = f } }

// WithTracer sets the tracer of batch spans.
func WithTracer(t trace.Tracer) Option { return func(b *Batcher) { b.tracer = t } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(b *Batcher) { b.log = l } }

// WithMeter sets the meter of the batcher's metrics.
func WithMeter(m metric.Meter) Option {
	return func(b *Batcher) { b.metrics = newMetrics(m) }
}

// New returns a batcher writing through sf and resolving customers with
// resolver.
func New(cfg Config, sf Salesforce, resolver AccountResolver, opts ...Option) *Batcher {
	b := &Batcher{
		cfg:      cfg.withDefaults(),
		sf:       sf,
		accounts: resolver,
		tracer:   tracenoop.NewTracerProvider().Tracer(""),
		log:      slog.New(slog.DiscardHandler),
		metrics:  newMetrics(noop.NewMeterProvider().Meter("")),
		in:       make(chan *item),
		work:     make(chan *batch),
		reports:  make(chan report),
		stopped:  make(chan struct{}),
	}
	for _, o := range opts {
		o(b)
	}
	return b
}

// item is one submitted command waiting for its outcome.
type item struct {
	cmd      Command
	key      string
	seq      uint64
	arrived  time.Time
	attempts int  // calls made for it that hit a row lock
	refresh  bool // its cached Account was found stale once already
	done     chan Outcome
}

// group is the items of one referral in one batch; winner is the one
// written.
type group struct {
	key    string
	items  []*item
	winner *item
}

// batch is what a worker processes: groups sharing one External ID field,
// or updates by Id (field byID).
type batch struct {
	field  string
	groups []*group
}

// report is a worker telling the collector which keys are free again and
// which groups must be retried when.
type report struct {
	release []string
	retry   []delayed
}

// delayed is a group waiting for its retry.
type delayed struct {
	at    time.Time
	key   string
	items []*item
}

// byID is the batch field of updates by Id. It cannot collide with an
// External ID field: no custom field is called "Id".
const byID = "Id"

// batchField is the field that decides which commands share a call: the
// External ID field of upserts, byID for updates.
func batchField(c Command) string {
	if c.OpportunityID != "" {
		return byID
	}
	return c.ExternalIDField
}

// itemKey identifies a record across commands: for upserts the field and
// the value compared case-insensitively as Salesforce matches External
// IDs; for updates the opportunity id.
func itemKey(c Command) string {
	if c.OpportunityID != "" {
		return byID + "\x00" + c.OpportunityID
	}
	return c.ExternalIDField + "\x00" + strings.ToLower(c.ReferralID)
}

// Submit queues cmd and waits for its outcome. It returns an error only
// when ctx ends first; the command may then still be written, which is
// harmless because the upsert is idempotent.
func (b *Batcher) Submit(ctx context.Context, cmd Command) (Outcome, error) {
	it := &item{cmd: cmd, key: itemKey(cmd), done: make(chan Outcome, 1)}
	select {
	case b.in <- it:
	case <-b.stopped:
		return Outcome{Kind: RetryLater, Err: ErrStopping, RetryAfter: time.Second}, nil
	case <-ctx.Done():
		return Outcome{}, fmt.Errorf("submit upsert: %w", ctx.Err())
	}
	select {
	case o := <-it.done:
		return o, nil
	case <-ctx.Done():
		return Outcome{}, fmt.Errorf("wait for upsert: %w", ctx.Err())
	}
}

// Run collects and processes batches until ctx is cancelled; then it
// answers every queued command with RetryLater, lets the batches in flight
// finish, and returns. Stop the message consumers first, so that nothing is
// queued any more.
func (b *Batcher) Run(ctx context.Context) error {
	first := false
	b.running.Do(func() { first = true })
	if !first {
		return errors.New("upsert batcher: Run called twice")
	}
	var workers sync.WaitGroup
	for range b.cfg.Workers {
		workers.Go(b.worker)
	}
	b.collect(ctx)
	close(b.stopped)
	close(b.work)
	workers.Wait()
	return nil
}

// worker processes batches until the work channel closes. Batches in
// flight at shutdown finish under their own timeout rather than the
// cancelled context, so no write is cut off halfway.
func (b *Batcher) worker() {
	for bt := range b.work {
		ctx, cancel := context.WithTimeout(context.Background(), b.cfg.CallTimeout)
		rep := b.process(ctx, bt)
		cancel()
		select {
		case b.reports <- rep:
		case <-b.stopped:
			for _, d := range rep.retry {
				for _, it := range d.items {
					it.done <- Outcome{Kind: RetryLater, Err: ErrStopping, RetryAfter: time.Second}
				}
			}
		}
	}
}
