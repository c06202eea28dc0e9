// Package syncer is the mapper's use case, both directions: referral
// snapshots become opportunity upserts (inbound), opted-in opportunities
// become referrals and their changes JSON Patches (outbound), the lifecycle
// (accept, decline, won, lost, expiry, stop, delete) moves the other side,
// Microsoft's related referral reaches the opportunity, and the adapters'
// results are recorded. Parked links are replayed.
//
// Every message is handled in one Postgres transaction: the inbox row, the
// link (found or created, and locked so one link's work is serial across
// replicas), the decision and the audit entries commit together. With
// group commit (UseGroup) that transaction may hold other messages' work
// too, committed with it or, if any of them fails, each on its own. Commands
// are published after the commit; a crash in between is healed because the
// link keeps its outstanding commands until their results arrive, and a
// redelivery publishes them again (commands are idempotent: Msg-Id, the
// adapters' inboxes, upserts by External ID, creates looked up by
// externalReferenceId).
//
// Fields both sides write are decided by the two-way state (package
// twoway): only what differs is sent, the latest change (or the owning
// side) wins, and our own writes are recognised when they come back.
package syncer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// Names of the mapper's durable consumers; they are also its inbox keys.
const (
	ConsumerReferrals = "mapper-referrals"
	ConsumerResults   = "mapper-salesforce-results"
	// ConsumerOpportunities consumes opportunity.observed.v1.
	ConsumerOpportunities = "mapper-opportunities"
	// ConsumerPCResults consumes result.partnercenter.v1.
	ConsumerPCResults = "mapper-partnercenter-results"
	// consumerReplay keys parks recorded by a replay whose mapping fails.
	consumerReplay = "mapper-replay"
)

// Span attributes operators search Jaeger by.
const (
	AttrReferralID    = attribute.Key("cosell.referral_id")
	AttrOpportunityID = attribute.Key("cosell.opportunity_id")
	attrOutcome       = attribute.Key("cosell.mapper.outcome")
)

// Audit kinds.
const (
	KindIgnored        = "referral_ignored"
	KindStale          = "snapshot_stale"
	KindHeld           = "snapshot_held"
	KindCommandSent    = "upsert_sent"
	KindMappingFailed  = "mapping_failed"
	KindWritten        = "salesforce_written"
	KindRejected       = "salesforce_rejected"
	KindFailed         = "salesforce_failed"
	KindReplayed       = "link_replayed"
	KindOrphanedResult = "result_unmatched"

	// Outbound and two-way kinds.
	KindInvalid               = "validation_failed"
	KindCreateSent            = "referral_create_sent"
	KindCreated               = "referral_created"
	KindCreateRejected        = "referral_create_rejected"
	KindCreateFailed          = "referral_create_failed"
	KindPatchSent             = "referral_patch_sent"
	KindPatched               = "referral_patched"
	KindLifecycle             = "referral_status_changed"
	KindPatchRejected         = "referral_patch_rejected"
	KindPatchFailed           = "referral_patch_failed"
	KindPreconditionRedecided = "referral_changed_meanwhile"
	KindSFUpdateSent          = "salesforce_update_sent"
	KindWritebackRejected     = "writeback_rejected"
	KindWritebackFailed       = "writeback_failed"
	KindStopped               = "sync_stopped"
	KindResumed               = "sync_resumed"
	KindOrphaned              = "opportunity_deleted"
	KindExpired               = "referral_expired"
	KindPCClosed              = "referral_closed_in_partner_center"
	KindMicrosoftAccepted     = "microsoft_accepted"
	KindRelatedChanged        = "microsoft_referral_changed"
	KindConflict              = "conflict_resolved"
	KindUnmappable            = "value_not_mappable"
	KindNotLinked             = "opportunity_not_linked"
	KindOpportunityStale      = "opportunity_stale"
)

// Outcome says what a message did; metrics count it and tests assert it.
type Outcome string

// Outcomes of handling a snapshot or result.
const (
	OutcomeApplied     Outcome = "applied"
	OutcomeStale       Outcome = "stale"
	OutcomeDuplicate   Outcome = "duplicate"
	OutcomeRedelivered Outcome = "redelivered"
	OutcomeEcho        Outcome = "echo"
	OutcomeHeld        Outcome = "held"
	OutcomeIgnored     Outcome = "ignored"
	OutcomeParked      Outcome = "parked"
	OutcomeRecorded    Outcome = "recorded"
	OutcomeUnmatched   Outcome = "unmatched"
	// OutcomeInvalid: an opted-in opportunity failed the checks; nothing
	// was sent to Partner Center.
	OutcomeInvalid Outcome = "invalid"
	// OutcomeStopped: the sync of the link is stopped (or the link was
	// orphaned); the observation is recorded only.
	OutcomeStopped Outcome = "stopped"
)

// ErrMalformed reports a message no redelivery can make usable (no
// referral id, a referral document that is not JSON, an unknown outcome);
// the consumer dead-letters it at once.
var ErrMalformed = errors.New("malformed message")

// ErrNothingToReplay reports a replay of a link that has no snapshot yet.
var ErrNothingToReplay = errors.New("the link has no snapshot to replay")

// Publisher publishes a command on the bus; *bus.Conn satisfies it.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, m proto.Message) error
}

// Delivery identifies the message being handled.
type Delivery struct {
	// MsgID is the inbox key.
	MsgID string
	// Stream and StreamSeq locate the message, to record parks once.
	Stream    string
	StreamSeq uint64
}

// Service handles both directions.
type Service struct {
	db      store.Beginner
	pub     Publisher
	mapping *mapping.Config
	log     *slog.Logger
	tracer  trace.Tracer
	handled metric.Int64Counter
	service string
	// group, when set, commits the handlers' transactions together.
	group *store.Group
	// referrals and opportunities cache parsed documents.
	referrals     *parseCache[mapping.Referral]
	opportunities *parseCache[mapping.Opportunity]
}

// New returns the use case over db, publishing with pub and mapping with m.
// service names the mapper in dead letters.
func New(db store.Beginner, pub Publisher, m *mapping.Config, log *slog.Logger, tp trace.TracerProvider, mp metric.MeterProvider, service string) (*Service, error) {
	handled, err := mp.Meter("github.com/cosell/cosell/services/mapper/internal/syncer").Int64Counter(
		"cosell.mapper.messages",
		metric.WithDescription("Messages the mapper handled, by kind and outcome"),
		metric.WithUnit("{message}"))
	if err != nil {
		return nil, fmt.Errorf("inbound: metrics: %w", err)
	}
	return &Service{
		db: db, pub: pub, mapping: m, log: log, handled: handled, service: service,
		referrals: newReferralCache(), opportunities: newOpportunityCache(),
		tracer: tp.Tracer("github.com/cosell/cosell/services/mapper/internal/syncer"),
	}, nil
}

// UseGroup makes the message handlers commit through g: the transactions
// of messages handled at the same moment share one BEGIN and COMMIT.
// Operator actions (replay) keep transactions of their own.
func (s *Service) UseGroup(g *store.Group) { s.group = g }

// inTx runs a message's transaction, through the group when there is one.
func (s *Service) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	if s.group != nil {
		return s.group.InTx(ctx, fn)
	}
	return store.InTx(ctx, s.db, fn)
}

// pgTime is the precision Postgres stores, so a snapshot compares equal to
// itself after a round trip.
func pgTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func traceID(ctx context.Context) string {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

func (s *Service) count(ctx context.Context, kind string, out Outcome, err error) {
	if err != nil {
		out = "error"
	}
	s.handled.Add(ctx, 1, metric.WithAttributes(attribute.String("kind", kind), attribute.String("outcome", string(out))))
}
