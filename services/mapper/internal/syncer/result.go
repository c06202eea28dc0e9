package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cosell/cosell/libs/bus"
	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
	"github.com/cosell/cosell/services/mapper/internal/twoway"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// Result handles one SalesforceResult: the opportunity id goes on the link
// and into the audit log; a rejection parks the link. The opportunity the
// write read back, when the result carries it, is then applied as the
// poller's observation of that version would be.
func (s *Service) Result(ctx context.Context, d Delivery, res *cosellv1.SalesforceResult) (Outcome, error) {
	rb := s.readBackOf(ctx, res)
	out, err := s.result(ctx, d, res, rb)
	if err != nil {
		return "", err
	}
	if rb != nil && !rb.applied {
		if err := s.observeReadBack(ctx, rb); err != nil {
			return "", err
		}
	}
	return out, nil
}

// readBack is the opportunity a successful Salesforce write read back in
// the same call, which its result carries. The poller skips that version,
// so this is the mapper's only sight of it: the write's own echo, which
// settles what the two-way state expects and gives the link the
// SystemModstamp its next conditional write expects. It is applied as the
// poller's observation of that version would be, under the Msg-Id the
// poller would have used, so a copy the poller published anyway is taken
// for the same observation.
type readBack struct {
	ev    *cosellv1.OpportunityObserved
	msgID string
	opp   mapping.Opportunity
	at    time.Time
	// applied is set when the result's own transaction applied it.
	applied bool
}

// readBackOf returns the read-back of res, or nil when there is none or
// it cannot be used (then it is skipped with a warning: the result itself
// must not go to the dead letters for it, and the opportunity's next
// change is observed as usual).
func (s *Service) readBackOf(ctx context.Context, res *cosellv1.SalesforceResult) *readBack {
	ev := res.GetObserved()
	if ev == nil || res.GetOutcome() != cosellv1.Outcome_OUTCOME_OK {
		return nil
	}
	rb := &readBack{ev: ev, msgID: res.GetObservedMsgId()}
	var err error
	switch {
	case ev.GetOpportunityId() == "" || !ev.GetSystemModstamp().IsValid() || ev.GetDeleted():
		err = errors.New("no opportunity id or SystemModstamp, or a deletion")
	default:
		rb.opp, err = s.opportunities.get(ev.GetRecordJson())
	}
	if err != nil {
		s.log.WarnContext(ctx, "read-back opportunity not usable; skipped", "command_id", res.GetCommandId(), "err", err)
		return nil
	}
	if rb.msgID == "" {
		rb.msgID = "opp:" + ev.GetOpportunityId() + ":" + ev.GetSystemModstamp().AsTime().UTC().Format("2006-01-02T15:04:05.000+0000")
	}
	rb.at = pgTime(ev.GetSystemModstamp().AsTime())
	return rb
}

// applyReadBack applies rb to the link the result was just recorded on,
// in the result's transaction: the link is locked and loaded already, so
// the echo costs no transaction, lock or read of its own. It reports false
// when the link is not the read-back opportunity's; the observation is
// then applied on its own afterwards. Results of upserts and of
// write-backs both apply their read-back this way.
func (s *Service) applyReadBack(ctx context.Context, tx pgx.Tx, link *linkstore.Link, rb *readBack, tid string) ([]message, bool, error) {
	if link.OpportunityID != rb.ev.GetOpportunityId() {
		return nil, false, nil
	}
	first, err := store.MarkProcessed(ctx, tx, linkstore.InboxTable, ConsumerOpportunities, rb.msgID)
	if err != nil || !first {
		return nil, err == nil, err
	}
	ctx, span := s.tracer.Start(ctx, "mapper apply opportunity", trace.WithAttributes(AttrOpportunityID.String(link.OpportunityID),
		attribute.Bool("cosell.opportunity.read_back", true)))
	publish, out, err := s.applyOpportunity(ctx, tx, Delivery{MsgID: rb.msgID}, link, rb.ev, rb.opp, rb.at, tid)
	span.SetAttributes(attrOutcome.String(string(out)))
	if err != nil {
		span.RecordError(err)
	}
	span.End()
	s.count(ctx, "opportunity_observed", out, err)
	return publish, err == nil, err
}

// observeReadBack applies rb in a transaction of its own, when the
// result's could not (a redelivered or unmatched result): a redelivery
// applies it only if it was not committed before.
func (s *Service) observeReadBack(ctx context.Context, rb *readBack) error {
	_, err := s.OpportunityObserved(ctx, Delivery{MsgID: rb.msgID}, rb.ev)
	return err
}

func (s *Service) result(ctx context.Context, d Delivery, res *cosellv1.SalesforceResult, rb *readBack) (out Outcome, err error) {
	referralID := res.GetReferralId()
	attrs := []trace.SpanStartOption{trace.WithAttributes(AttrReferralID.String(referralID))}
	if res.GetOpportunityId() != "" {
		attrs = append(attrs, trace.WithAttributes(AttrOpportunityID.String(res.GetOpportunityId())))
		trace.SpanFromContext(ctx).SetAttributes(AttrOpportunityID.String(res.GetOpportunityId()))
	}
	trace.SpanFromContext(ctx).SetAttributes(AttrReferralID.String(referralID))
	ctx, span := s.tracer.Start(ctx, "mapper record salesforce result", attrs...)
	defer func() {
		span.SetAttributes(attrOutcome.String(string(out)))
		if err != nil {
			span.RecordError(err)
		}
		span.End()
		s.count(ctx, "salesforce_result", out, err)
	}()

	switch res.GetOutcome() {
	case cosellv1.Outcome_OUTCOME_OK, cosellv1.Outcome_OUTCOME_REJECTED, cosellv1.Outcome_OUTCOME_FAILED:
	default:
		return "", fmt.Errorf("%w: salesforce result %s: outcome %s", ErrMalformed, res.GetCommandId(), res.GetOutcome())
	}
	if strings.HasPrefix(res.GetCommandId(), prefixWriteback) {
		return s.writebackResult(ctx, d, res, rb)
	}
	if referralID == "" {
		// A command the mapper did not send: nothing to record.
		return OutcomeUnmatched, nil
	}
	tid := traceID(ctx)
	var publish []message
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		out, publish = "", nil
		if rb != nil {
			rb.applied = false
		}
		// A read-back is applied to the same link next: read its snapshot
		// and record with the lock.
		first, link, err := linkstore.MarkAndLock(ctx, tx, ConsumerResults, d.MsgID, referralID, rb != nil)
		if !first && (err == nil || linkstore.IsNotFound(err)) {
			out = OutcomeDuplicate
			if !isPrecondition(res) {
				return nil
			}
			// Its re-decision may have been committed but not published.
			publish, err = s.republishFor(ctx, tx, referralID, "", d.MsgID, tid)
			return err
		}
		if linkstore.IsNotFound(err) {
			out = OutcomeUnmatched
			return linkstore.AppendAudit(ctx, tx, nil, linkstore.Audit{
				ReferralID: referralID, OpportunityID: res.GetOpportunityId(), Kind: KindOrphanedResult, TraceID: tid,
				Message: "Salesforce reported on a referral the mapper has no link for; nothing recorded.",
				Details: map[string]any{"commandId": res.GetCommandId(), "outcome": res.GetOutcome().String()},
			})
		}
		if err != nil {
			return err
		}
		out, publish, err = s.applyResult(ctx, tx, d, link, res, tid)
		if err != nil || rb == nil {
			return err
		}
		more, applied, err := s.applyReadBack(ctx, tx, link, rb, tid)
		publish, rb.applied = append(publish, more...), applied
		return err
	})
	if err != nil {
		return "", fmt.Errorf("salesforce result %s for referral %s: %w", res.GetCommandId(), referralID, err)
	}
	if err := s.publishAll(ctx, publish); err != nil {
		return "", fmt.Errorf("salesforce result %s for referral %s: %w", res.GetCommandId(), referralID, err)
	}
	return out, nil
}

// republishFor republishes the outstanding commands of a link (by referral
// or by opportunity) after a redelivered result whose handling may have
// sent some: the adapters' inboxes drop repeats.
func (s *Service) republishFor(ctx context.Context, tx pgx.Tx, referralID, opportunityID, trigger, tid string) ([]message, error) {
	var (
		link *linkstore.Link
		err  error
	)
	if opportunityID != "" {
		link, err = linkstore.LockFullByOpportunity(ctx, tx, opportunityID)
	} else {
		link, err = linkstore.LockExisting(ctx, tx, referralID)
	}
	if linkstore.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	dd, err := s.load(link, trigger, tid)
	if err != nil {
		return nil, err
	}
	dd.republish()
	return dd.publish, nil
}

// redecideNow reports whether a Salesforce write refused by its
// precondition (PRECONDITION_FAILED) is decided again at once. It is when
// the change that refused it is already known: the link has applied a
// newer observation than the one the refused command expected, or a newer
// command was sent since. Otherwise the seller's change is still on its
// way, and its observation decides (deciding now would expect the same
// stale SystemModstamp and be refused again).
func (d *decision) redecideNow(res *cosellv1.SalesforceResult) bool {
	l := d.link
	if res.GetCommandId() != l.CommandID || len(l.Command) == 0 {
		return true
	}
	var expected *timestamppb.Timestamp
	switch l.CommandSubject {
	case bus.SubjectSalesforceWriteback:
		var cmd cosellv1.SalesforceWriteback
		if proto.Unmarshal(l.Command, &cmd) == nil {
			expected = cmd.GetExpectedSystemModstamp()
		}
	default:
		var cmd cosellv1.UpsertOpportunityCommand
		if proto.Unmarshal(l.Command, &cmd) == nil {
			expected = cmd.GetExpectedSystemModstamp()
		}
	}
	if expected == nil || l.SFModstamp == nil {
		return false
	}
	return l.SFModstamp.Truncate(time.Millisecond).After(expected.AsTime().Truncate(time.Millisecond))
}

func (s *Service) applyResult(ctx context.Context, tx pgx.Tx, d Delivery, link *linkstore.Link, res *cosellv1.SalesforceResult, tid string) (Outcome, []message, error) {
	if res.GetOutcome() == cosellv1.Outcome_OUTCOME_REJECTED && isPrecondition(res) {
		// The opportunity changed since the decision: nothing was written,
		// nothing is parked, the same write is not sent again.
		current := res.GetCommandId() == link.CommandID
		if current {
			link.ResultCommandID = res.GetCommandId()
		}
		dd, err := s.load(link, d.MsgID, tid)
		if err != nil {
			return "", nil, err
		}
		msgs, err := dd.preconditionFailed(ctx, tx, res, current)
		return OutcomeRecorded, msgs, err
	}
	out, err := s.applyResultOf(ctx, tx, d, link, res, tid)
	return out, nil, err
}

// preconditionFailed handles a conditional Salesforce write refused
// because the opportunity changed meanwhile: the write's values are no
// longer on their way, and the decision is made again — at once when the
// change that refused it is already applied, else by its observation (the
// poller delivers the seller's save), where the later of both sides'
// changes wins. A pending Partner Center command is left to its own result.
func (d *decision) preconditionFailed(ctx context.Context, tx pgx.Tx, res *cosellv1.SalesforceResult, current bool) ([]message, error) {
	now := d.redecideNow(res)
	d.doc.State.Forget(twoway.Salesforce, res.GetCommandId())
	details := map[string]any{"commandId": res.GetCommandId(), "outcome": res.GetOutcome().String(), "current": current,
		"errorCode": res.GetErrorCode(), "errorMessage": res.GetErrorMessage(), "decidedAgainNow": now}
	if now {
		d.audit(KindPreconditionRedecided, "Salesforce changed meanwhile; the change is already known, so the opportunity is decided again now.", details, false)
		d.reconcile()
	} else {
		d.audit(KindPreconditionRedecided, "Salesforce changed meanwhile; waiting for the seller's change: the write was not applied, the opportunity's next observation decides again.", details, false)
	}
	return d.finish(ctx, tx)
}

func (s *Service) applyResultOf(ctx context.Context, tx pgx.Tx, d Delivery, link *linkstore.Link, res *cosellv1.SalesforceResult, tid string) (Outcome, error) {
	current := res.GetCommandId() == link.CommandID
	if current {
		link.ResultCommandID = res.GetCommandId()
	}
	if res.GetOutcome() != cosellv1.Outcome_OUTCOME_OK {
		// The write did not land: its values are not on their way back.
		dd, err := s.load(link, d.MsgID, tid)
		if err != nil {
			return "", err
		}
		dd.doc.State.Forget(twoway.Salesforce, res.GetCommandId())
		link.Sync = dd.encode()
	}
	details := map[string]any{"commandId": res.GetCommandId(), "outcome": res.GetOutcome().String(), "current": current}
	switch res.GetOutcome() {
	case cosellv1.Outcome_OUTCOME_OK:
		if res.GetOpportunityId() != "" {
			link.OpportunityID = res.GetOpportunityId()
		}
		if res.GetAccountId() != "" {
			link.AccountID = res.GetAccountId()
			details["accountId"] = res.GetAccountId()
		}
		verb := "updated"
		if res.GetCreated() {
			verb = "created"
		}
		return OutcomeRecorded, linkstore.Save(ctx, tx, link, linkstore.Audit{
			ReferralID: link.ReferralID, OpportunityID: link.OpportunityID, Kind: KindWritten, TraceID: tid, Details: details,
			Message: fmt.Sprintf("Salesforce opportunity %s %s.", link.OpportunityID, verb),
		})
	case cosellv1.Outcome_OUTCOME_REJECTED:
		reason := salesforceReason(res)
		details["errorCode"], details["errorMessage"], details["errorFields"] = res.GetErrorCode(), res.GetErrorMessage(), res.GetErrorFields()
		base := linkstore.Audit{ReferralID: link.ReferralID, OpportunityID: link.OpportunityID, TraceID: tid}
		if !current {
			// An older command was rejected after a newer one went out;
			// the newer one decides whether the link parks.
			base.Kind, base.Details = KindRejected, details
			base.Message = "Salesforce rejected an earlier write (a newer one was already sent): " + reason
			return OutcomeRecorded, linkstore.Save(ctx, tx, link, base)
		}
		return OutcomeParked, s.park(ctx, tx, link, base, KindRejected,
			"Salesforce rejected the opportunity: "+reason+" The referral's sync is parked; later Partner Center changes are held until it is replayed.",
			details, linkstore.Park{Consumer: ConsumerResults, Stream: d.Stream, StreamSeq: d.StreamSeq, MsgID: res.GetCommandId()})
	default: // failed
		reason := salesforceReason(res)
		details["errorCode"], details["errorMessage"] = res.GetErrorCode(), res.GetErrorMessage()
		if current {
			// The write did not land: the next snapshot must not be taken
			// for an echo of it.
			link.ProjectionHash, link.Projection = "", nil
		}
		a := linkstore.Audit{ReferralID: link.ReferralID, OpportunityID: link.OpportunityID, TraceID: tid, Kind: KindFailed, Details: details,
			Message: "The Salesforce write failed after retries: " + reason + " The next Partner Center change, or a replay, sends it again."}
		if err := linkstore.Save(ctx, tx, link, a); err != nil {
			return "", err
		}
		return OutcomeRecorded, nil
	}
}

// salesforceReason renders Salesforce's error for people.
func salesforceReason(res *cosellv1.SalesforceResult) string {
	msg := strings.TrimSpace(res.GetErrorMessage())
	if msg == "" {
		msg = "no message given"
	}
	if code := res.GetErrorCode(); code != "" {
		msg += " (" + code
		if f := res.GetErrorFields(); len(f) > 0 {
			msg += ", fields " + strings.Join(f, ", ")
		}
		msg += ")"
	}
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}

// writebackResult records the result of a write-back by Id (links that
// started from an opportunity, and the outbound lifecycle's Audit and
// Referral ID writes).
func (s *Service) writebackResult(ctx context.Context, d Delivery, res *cosellv1.SalesforceResult, rb *readBack) (out Outcome, err error) {
	tid := traceID(ctx)
	oppID := res.GetOpportunityId()
	if oppID == "" {
		// The command id carries it: sf-writeback:<opportunity id>:<hash>.
		oppID, _, _ = strings.Cut(strings.TrimPrefix(res.GetCommandId(), prefixWriteback), ":")
	}
	var publish []message
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		out, publish = "", nil
		if rb != nil {
			rb.applied = false
		}
		first, err := store.MarkProcessed(ctx, tx, linkstore.InboxTable, ConsumerResults, d.MsgID)
		if err != nil {
			return err
		}
		if !first {
			out = OutcomeDuplicate
			if isPrecondition(res) {
				// Its re-decision may have been committed but not published.
				publish, err = s.republishFor(ctx, tx, "", oppID, d.MsgID, tid)
			}
			return err
		}
		link, err := linkstore.LockFullByOpportunity(ctx, tx, oppID)
		if linkstore.IsNotFound(err) {
			out = OutcomeUnmatched
			return linkstore.AppendAudit(ctx, tx, nil, linkstore.Audit{
				ReferralID: res.GetReferralId(), OpportunityID: oppID, Kind: KindOrphanedResult, TraceID: tid,
				Message: "Salesforce reported on a write-back to an opportunity the mapper has no link for; nothing recorded.",
				Details: map[string]any{"commandId": res.GetCommandId(), "outcome": res.GetOutcome().String()},
			})
		}
		if err != nil {
			return err
		}
		dd, err := s.load(link, d.MsgID, tid)
		if err != nil {
			return err
		}
		current := res.GetCommandId() == link.CommandID
		if current {
			link.ResultCommandID = res.GetCommandId()
		}
		details := map[string]any{"commandId": res.GetCommandId(), "outcome": res.GetOutcome().String(), "current": current}
		switch res.GetOutcome() {
		case cosellv1.Outcome_OUTCOME_OK:
			out = OutcomeRecorded
		case cosellv1.Outcome_OUTCOME_REJECTED:
			if isPrecondition(res) {
				out = OutcomeRecorded
				publish, err = dd.preconditionFailed(ctx, tx, res, current)
				return err
			}
			dd.doc.State.Forget(twoway.Salesforce, res.GetCommandId())
			details["errorCode"], details["errorMessage"], details["errorFields"] = res.GetErrorCode(), res.GetErrorMessage(), res.GetErrorFields()
			msg := "Salesforce refused a write to the opportunity: " + salesforceReason(res)
			if current && link.State == linkstore.StateActive {
				link.State, link.ParkReason = linkstore.StateParked, msg
				msg += " The sync is parked until an operator replays it."
				out = OutcomeParked
				if err := linkstore.RecordPark(ctx, tx, s.service, linkstore.Park{ReferralID: link.ReferralID, Consumer: ConsumerResults,
					Stream: d.Stream, StreamSeq: d.StreamSeq, MsgID: res.GetCommandId(), Subject: bus.SubjectSalesforceWriteback,
					Payload: link.Command, Reason: msg, TraceID: tid}); err != nil {
					return err
				}
			} else {
				out = OutcomeRecorded
			}
			dd.audit(KindWritebackRejected, msg, details, false)
		default:
			dd.doc.State.Forget(twoway.Salesforce, res.GetCommandId())
			details["errorCode"], details["errorMessage"] = res.GetErrorCode(), res.GetErrorMessage()
			dd.audit(KindWritebackFailed, "A write to the opportunity failed after retries: "+salesforceReason(res)+" The next change sends it again.", details, false)
			out = OutcomeRecorded
		}
		if _, err = dd.finish(ctx, tx); err != nil || rb == nil {
			return err
		}
		more, applied, err := s.applyReadBack(ctx, tx, link, rb, tid)
		publish, rb.applied = append(publish, more...), applied
		return err
	})
	if err != nil {
		return "", fmt.Errorf("write-back result %s: %w", res.GetCommandId(), err)
	}
	if err := s.publishAll(ctx, publish); err != nil {
		return "", fmt.Errorf("write-back result %s: %w", res.GetCommandId(), err)
	}
	return out, nil
}

// isPrecondition reports a conditional Salesforce write refused because
// the record changed since the decision (If-Unmodified-Since answered 412):
// not a rejection of the values, so the link is not parked.
func isPrecondition(res *cosellv1.SalesforceResult) bool {
	return strings.EqualFold(res.GetErrorCode(), "PRECONDITION_FAILED")
}
