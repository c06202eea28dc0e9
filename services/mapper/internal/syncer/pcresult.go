package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
	"github.com/cosell/cosell/services/mapper/internal/twoway"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// errorPreconditionFailed is Partner Center's code for a 412: the referral
// changed since the eTag the patch was based on.
const errorPreconditionFailed = "preconditionFailed"

// PartnerCenterResult handles one PartnerCenterResult: a created referral
// is linked and its id, link and Audit written back to the opportunity; a
// patch's answer is recorded, and on 412 the mapper decides again from the
// referral as it is now.
func (s *Service) PartnerCenterResult(ctx context.Context, d Delivery, res *cosellv1.PartnerCenterResult) (out Outcome, err error) {
	id := res.GetCommandId()
	attrs := []trace.SpanStartOption{}
	if res.GetReferralId() != "" {
		attrs = append(attrs, trace.WithAttributes(AttrReferralID.String(res.GetReferralId())))
		trace.SpanFromContext(ctx).SetAttributes(AttrReferralID.String(res.GetReferralId()))
	}
	if res.GetOpportunityId() != "" {
		attrs = append(attrs, trace.WithAttributes(AttrOpportunityID.String(res.GetOpportunityId())))
		trace.SpanFromContext(ctx).SetAttributes(AttrOpportunityID.String(res.GetOpportunityId()))
	}
	ctx, span := s.tracer.Start(ctx, "mapper record partner center result", attrs...)
	defer func() {
		span.SetAttributes(attrOutcome.String(string(out)))
		if err != nil {
			span.RecordError(err)
		}
		span.End()
		s.count(ctx, "partnercenter_result", out, err)
	}()
	switch res.GetOutcome() {
	case cosellv1.Outcome_OUTCOME_OK, cosellv1.Outcome_OUTCOME_REJECTED, cosellv1.Outcome_OUTCOME_FAILED:
	default:
		return "", fmt.Errorf("%w: partner center result %s: outcome %s", ErrMalformed, id, res.GetOutcome())
	}
	tid := traceID(ctx)
	var publish []message
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		publish, out = nil, ""
		first, err := store.MarkProcessed(ctx, tx, linkstore.InboxTable, ConsumerPCResults, d.MsgID)
		if err != nil {
			return err
		}
		if !first {
			out = OutcomeDuplicate
			return nil
		}
		var link *linkstore.Link
		switch {
		case strings.HasPrefix(id, prefixCreate):
			oppID := res.GetOpportunityId()
			if oppID == "" {
				oppID, _, _ = strings.Cut(strings.TrimPrefix(id, prefixCreate), ":")
			}
			link, err = linkstore.LockFullByOpportunity(ctx, tx, oppID)
		case strings.HasPrefix(id, prefixPatch):
			refID := res.GetReferralId()
			if refID == "" {
				refID, _, _ = strings.Cut(strings.TrimPrefix(id, prefixPatch), ":")
			}
			link, err = linkstore.LockWithSnapshot(ctx, tx, refID)
		default:
			out = OutcomeUnmatched
			return nil
		}
		if linkstore.IsNotFound(err) {
			out = OutcomeUnmatched
			return linkstore.AppendAudit(ctx, tx, nil, linkstore.Audit{ReferralID: res.GetReferralId(), OpportunityID: res.GetOpportunityId(),
				Kind: KindOrphanedResult, TraceID: tid, Message: "Partner Center answered a command for which the mapper has no link; nothing recorded.",
				Details: map[string]any{"commandId": id, "outcome": res.GetOutcome().String()}})
		}
		if err != nil {
			return err
		}
		dd, err := s.load(link, d.MsgID, tid)
		if err != nil {
			return err
		}
		if id == link.PCCommandID {
			link.PCResultCommandID = id
		}
		if strings.HasPrefix(id, prefixCreate) {
			out, err = s.createResult(dd, res)
		} else {
			out, err = s.patchResult(dd, res)
		}
		if err != nil {
			return err
		}
		publish, err = dd.finish(ctx, tx)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("partner center result %s: %w", id, err)
	}
	if err := s.publishAll(ctx, publish); err != nil {
		return "", fmt.Errorf("partner center result %s: %w", id, err)
	}
	return out, nil
}

// resultSnapshot turns the referral a result carries into a snapshot.
func (s *Service) resultSnapshot(res *cosellv1.PartnerCenterResult) (*cosellv1.ReferralObserved, mapping.Referral, bool) {
	if len(res.GetReferralJson()) == 0 {
		return nil, mapping.Referral{}, false
	}
	ref, err := s.referrals.get(res.GetReferralJson())
	if err != nil {
		return nil, mapping.Referral{}, false
	}
	updated := res.GetUpdatedAt()
	if !updated.IsValid() {
		t, err := time.Parse(time.RFC3339Nano, ref.Text("updatedDateTime"))
		if err != nil {
			return nil, mapping.Referral{}, false
		}
		updated = timestamppb.New(t)
	}
	etag := res.GetEtag()
	if etag == "" {
		etag = ref.Text("eTag")
	}
	refID := res.GetReferralId()
	if refID == "" {
		refID = ref.Text("id")
	}
	return &cosellv1.ReferralObserved{ReferralId: refID, EngagementId: ref.Text("engagementId"), UpdatedAt: updated, Etag: etag,
		Source: cosellv1.ObservationSource_OBSERVATION_SOURCE_WRITE, ReferralJson: res.GetReferralJson(), ObservedAt: timestamppb.Now()}, ref, true
}

// takeSnapshot makes a result's referral the link's newest snapshot when
// it is newer than the one applied; it reports whether it did.
func (d *decision) takeSnapshot(ev *cosellv1.ReferralObserved) bool {
	at := pgTime(ev.GetUpdatedAt().AsTime())
	if d.link.PCUpdatedAt != nil && !at.After(*d.link.PCUpdatedAt) {
		return false
	}
	b, err := proto.Marshal(ev)
	if err != nil {
		return false
	}
	d.link.PCUpdatedAt, d.link.PCETag, d.link.Snapshot = &at, ev.GetEtag(), b
	if d.link.EngagementID == "" {
		d.link.EngagementID = ev.GetEngagementId()
	}
	return true
}

// createResult records the answer to a create.
func (s *Service) createResult(d *decision, res *cosellv1.PartnerCenterResult) (Outcome, error) {
	link, id := d.link, res.GetCommandId()
	current := id == link.PCCommandID
	switch res.GetOutcome() {
	case cosellv1.Outcome_OUTCOME_OK:
		if link.ReferralID != "" && link.ReferralID != res.GetReferralId() {
			d.audit(KindOrphanedResult, fmt.Sprintf("Partner Center reports referral %s for this opportunity, which is already linked to %s; nothing changed.",
				res.GetReferralId(), link.ReferralID), map[string]any{"commandId": id}, false)
			return OutcomeRecorded, nil
		}
		ev, ref, ok := s.resultSnapshot(res)
		firstLook := link.ReferralID == ""
		link.ReferralID = res.GetReferralId()
		d.doc.State.Forget(twoway.PartnerCenter, id)
		if ok {
			link.ReferralID = ev.GetReferralId()
			if d.takeSnapshot(ev) {
				values := canonAll(s.mapping.PCValues(ref))
				if firstLook {
					// The referral as Partner Center made it (status, its own
					// values) is the starting point, not a change.
					d.doc.State.Baseline(twoway.PartnerCenter, values, d.link.PCUpdatedAt.UTC(), id)
					d.notePCStatus(ref, false)
				} else {
					d.conflicts(d.observePC(ref, d.link.PCUpdatedAt.UTC()))
				}
			}
			d.ref = &ref
		}
		link.State, link.ParkReason, link.InvalidHash = linkstore.StateActive, "", ""
		if !current && !firstLook {
			return OutcomeRecorded, nil
		}
		d.writeBackCreated(res)
		d.reconcile()
		return OutcomeRecorded, nil
	case cosellv1.Outcome_OUTCOME_REJECTED:
		d.doc.State.Forget(twoway.PartnerCenter, id)
		if !current {
			return OutcomeRecorded, nil
		}
		link.PCRejectedCommandID = id
		link.State = linkstore.StateInvalid
		var cmd cosellv1.PartnerCenterCommand
		if proto.Unmarshal(link.PCCommand, &cmd) == nil {
			link.InvalidHash = "body:" + shortHash(string(cmd.GetCreate().GetBodyJson()))
		}
		reason := partnerCenterReason(res)
		link.ParkReason = reason
		d.audit(KindCreateRejected, "Partner Center refused the referral, so nothing was created: "+reason+" Fix the opportunity and save it to try again.",
			map[string]any{"commandId": id, "httpStatus": res.GetHttpStatus(), "errorCode": res.GetErrorCode()}, true)
		return OutcomeRecorded, nil
	default:
		d.doc.State.Forget(twoway.PartnerCenter, id)
		d.audit(KindCreateFailed, "Partner Center could not be reached to create the referral ("+partnerCenterReason(res)+"); the next change to the opportunity sends it again.",
			map[string]any{"commandId": id, "httpStatus": res.GetHttpStatus(), "errorCode": res.GetErrorCode()}, false)
		return OutcomeRecorded, nil
	}
}

// writeBackCreated writes the Referral ID, the write-back fields (the
// referral link), the name marker and the Audit line to the opportunity.
func (d *decision) writeBackCreated(res *cosellv1.PartnerCenterResult) {
	cfg, link := d.s.mapping, d.link
	d.sfFields[cfg.ExternalIDField] = link.ReferralID
	if d.ref != nil {
		for k, v := range cfg.WritebackValues(*d.ref) {
			d.sfFields[k] = v
		}
	}
	if marker := cfg.Outbound.NameMarker; marker != "" && d.opp != nil {
		if name := d.opp.Text("Name"); name != "" && !strings.HasSuffix(name, marker) {
			d.sfFields["Name"] = name + marker
		}
	}
	kind := "a partner-led referral"
	if d.ref != nil {
		if code := d.ref.Text("inviteContext.assistanceRequestCode"); code != "" && code != "Unknown" {
			kind = "a co-sell referral asking Microsoft for help (" + code + ")"
		} else if d.ref.Text("consent.consentToShareReferralWithMicrosoftSellers") == "false" {
			kind = "a private referral"
		}
	}
	verb := "Shared with Partner Center as"
	if !res.GetCreated() {
		verb = "Linked to the existing Partner Center referral, found by this opportunity's id:"
		kind = ""
	}
	msg := strings.TrimSpace(fmt.Sprintf("%s %s", verb, kind))
	d.audit(KindCreated, fmt.Sprintf("%s (referral %s).", msg, link.ReferralID),
		map[string]any{"commandId": res.GetCommandId(), "created": res.GetCreated(), "eTag": res.GetEtag()}, true)
}

// patchResult records the answer to a patch.
func (s *Service) patchResult(d *decision, res *cosellv1.PartnerCenterResult) (Outcome, error) {
	link, id := d.link, res.GetCommandId()
	current := id == link.PCCommandID
	details := map[string]any{"commandId": id, "httpStatus": res.GetHttpStatus(), "errorCode": res.GetErrorCode(), "current": current}
	switch res.GetOutcome() {
	case cosellv1.Outcome_OUTCOME_OK:
		if ev, ref, ok := s.resultSnapshot(res); ok && d.takeSnapshot(ev) {
			d.conflicts(d.observePC(ref, d.link.PCUpdatedAt.UTC()))
		} else if res.GetEtag() != "" && res.GetUpdatedAt().IsValid() && link.PCUpdatedAt != nil &&
			pgTime(res.GetUpdatedAt().AsTime()).After(*link.PCUpdatedAt) {
			at := pgTime(res.GetUpdatedAt().AsTime())
			link.PCUpdatedAt, link.PCETag = &at, res.GetEtag()
		}
		if current {
			if change := statusOf(link.PCCommand); change != "" {
				d.audit(KindLifecycle, change, details, true)
			}
			d.audit(KindPatched, "Partner Center accepted the update.", details, false)
			d.reconcile()
		}
		return OutcomeRecorded, nil
	case cosellv1.Outcome_OUTCOME_REJECTED:
		d.doc.State.Forget(twoway.PartnerCenter, id)
		if res.GetErrorCode() == errorPreconditionFailed || res.GetHttpStatus() == http.StatusPreconditionFailed {
			// Someone changed the referral since the eTag we based the
			// patch on: decide again from the referral as it is now.
			if ev, ref, ok := s.resultSnapshot(res); ok && d.takeSnapshot(ev) {
				d.conflicts(d.observePC(ref, d.link.PCUpdatedAt.UTC()))
			}
			d.audit(KindPreconditionRedecided, "The referral changed in Partner Center while an update was on its way; deciding again from the referral as it is now.", details, false)
			if current {
				d.reconcile()
			}
			return OutcomeRecorded, nil
		}
		if current {
			link.PCRejectedCommandID = id
		}
		d.audit(KindPatchRejected, "Partner Center refused an update of the referral: "+partnerCenterReason(res), details, true)
		return OutcomeRecorded, nil
	default:
		d.doc.State.Forget(twoway.PartnerCenter, id)
		d.audit(KindPatchFailed, "An update of the referral failed after retries ("+partnerCenterReason(res)+"); the next change sends it again.", details, false)
		return OutcomeRecorded, nil
	}
}

// statusOf says in words what lifecycle move a stored patch command made,
// "" when it changed no status.
func statusOf(command []byte) string {
	var cmd cosellv1.PartnerCenterCommand
	if proto.Unmarshal(command, &cmd) != nil || cmd.GetPatch() == nil {
		return ""
	}
	var ops []mapping.PatchOp
	if json.Unmarshal(cmd.GetPatch().GetOpsJson(), &ops) != nil {
		return ""
	}
	var status, sub, reason string
	for _, op := range ops {
		v, _ := op.Value.(string)
		switch op.Path {
		case "/status":
			status = v
		case "/substatus":
			sub = v
		case "/statusReason":
			reason = v
		}
	}
	switch status + "/" + sub {
	case "Active/Accepted":
		return "Accepted the referral in Partner Center."
	case "Closed/Declined":
		return "Declined the referral in Partner Center (reason: " + reason + ")."
	case "Closed/Won":
		return "Closed the referral in Partner Center as won."
	case "Closed/Lost":
		return "Closed the referral in Partner Center as lost."
	}
	return ""
}

// partnerCenterReason renders Partner Center's error for people.
func partnerCenterReason(res *cosellv1.PartnerCenterResult) string {
	msg := strings.TrimSpace(res.GetErrorMessage())
	if msg == "" {
		msg = "no message given"
	}
	if code := res.GetErrorCode(); code != "" {
		msg += " (" + code
		if st := res.GetHttpStatus(); st != 0 {
			msg += fmt.Sprintf(", HTTP %d", st)
		}
		msg += ")"
	}
	if !strings.HasSuffix(msg, ".") {
		msg += "."
	}
	return msg
}
