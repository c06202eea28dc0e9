package syncer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cosell/cosell/libs/bus"
	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
	"github.com/cosell/cosell/services/mapper/internal/twoway"
)

// Result handles one SalesforceResult: the opportunity id goes on the link
// and into the audit log; a rejection parks the link. The opportunity the
// write read back, when the result carries it, is then applied as the
// poller's observation of that version would be.
func (s *Service) Result(ctx context.Context, d Delivery, res *cosellv1.SalesforceResult) (Outcome, error) {
	out, err := s.result(ctx, d, res)
	if err != nil {
		return "", err
	}
	if err := s.observeReadBack(ctx, res); err != nil {
		return "", err
	}
	return out, nil
}

// observeReadBack applies the opportunity a successful write read back in
// the same Salesforce call. The poller skips that version, so this is the
// mapper's only sight of it: the write's own echo, which settles what the
// two-way state expects and gives the link the SystemModstamp its next
// conditional write expects. It runs after the result's transaction, in
// its own, under the Msg-Id the poller would have used: a redelivered
// result applies it again only if it was not committed, and a copy the
// poller published anyway is taken for the same observation.
func (s *Service) observeReadBack(ctx context.Context, res *cosellv1.SalesforceResult) error {
	obs := res.GetObserved()
	if obs == nil || res.GetOutcome() != cosellv1.Outcome_OUTCOME_OK {
		return nil
	}
	msgID := res.GetObservedMsgId()
	if msgID == "" {
		msgID = "opp:" + obs.GetOpportunityId() + ":" + obs.GetSystemModstamp().AsTime().UTC().Format("2006-01-02T15:04:05.000+0000")
	}
	_, err := s.OpportunityObserved(ctx, Delivery{MsgID: msgID}, obs)
	if errors.Is(err, ErrMalformed) {
		// The result itself was applied; a read-back the mapper cannot use
		// must not send it to the dead letters. The next change of the
		// opportunity is observed as usual.
		s.log.WarnContext(ctx, "read-back opportunity not usable; skipped", "command_id", res.GetCommandId(), "err", err)
		return nil
	}
	return err
}

func (s *Service) result(ctx context.Context, d Delivery, res *cosellv1.SalesforceResult) (out Outcome, err error) {
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
		return s.writebackResult(ctx, d, res)
	}
	if referralID == "" {
		// A command the mapper did not send: nothing to record.
		return OutcomeUnmatched, nil
	}
	tid := traceID(ctx)
	var publish []message
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		out, publish = "", nil
		first, err := store.MarkProcessed(ctx, tx, linkstore.InboxTable, ConsumerResults, d.MsgID)
		if err != nil {
			return err
		}
		if !first {
			out = OutcomeDuplicate
			if isPrecondition(res) {
				// Its re-decision may have been committed but not published.
				publish, err = s.republishFor(ctx, tx, referralID, "", d.MsgID, tid)
			}
			return err
		}
		link, err := linkstore.LockExisting(ctx, tx, referralID)
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
func (s *Service) writebackResult(ctx context.Context, d Delivery, res *cosellv1.SalesforceResult) (out Outcome, err error) {
	tid := traceID(ctx)
	oppID := res.GetOpportunityId()
	if oppID == "" {
		// The command id carries it: sf-writeback:<opportunity id>:<hash>.
		oppID, _, _ = strings.Cut(strings.TrimPrefix(res.GetCommandId(), prefixWriteback), ":")
	}
	var publish []message
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		out, publish = "", nil
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
		_, err = dd.finish(ctx, tx)
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
