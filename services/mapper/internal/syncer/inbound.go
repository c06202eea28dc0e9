package syncer

import (
	"context"
	"encoding/json"
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
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
	"github.com/cosell/cosell/services/mapper/internal/twoway"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// Observed handles one ReferralObserved snapshot: of a referral that
// starts or continues an inbound sync, of the referral Partner Center
// created for an opportunity, or of Microsoft's related referral in a
// linked engagement.
func (s *Service) Observed(ctx context.Context, d Delivery, ev *cosellv1.ReferralObserved) (out Outcome, err error) {
	referralID := ev.GetReferralId()
	trace.SpanFromContext(ctx).SetAttributes(AttrReferralID.String(referralID))
	ctx, span := s.tracer.Start(ctx, "mapper apply referral", trace.WithAttributes(AttrReferralID.String(referralID)))
	defer func() {
		span.SetAttributes(attrOutcome.String(string(out)))
		if err != nil {
			span.RecordError(err)
		}
		span.End()
		s.count(ctx, "referral_observed", out, err)
	}()

	if referralID == "" || !ev.GetUpdatedAt().IsValid() {
		return "", fmt.Errorf("%w: referral snapshot without referral id or updatedDateTime", ErrMalformed)
	}
	ref, err := s.referrals.get(ev.GetReferralJson())
	if err != nil {
		return "", fmt.Errorf("%w: referral %s: %w", ErrMalformed, referralID, err)
	}
	snapshot, err := proto.Marshal(ev)
	if err != nil {
		return "", fmt.Errorf("%w: referral %s: re-marshal snapshot: %w", ErrMalformed, referralID, err)
	}
	updatedAt := ev.GetUpdatedAt().AsTime()
	ignoreReason, ignored := s.mapping.Ignored(ref)
	tid := traceID(ctx)

	var publish []message
	var opportunityID string
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		publish, out, opportunityID = nil, "", ""
		// Microsoft's referral has no link of its own: the partner's link
		// of the engagement, needed next, is locked in the same round trip.
		var (
			first         bool
			link, partner *linkstore.Link
			err           error
			pipelined     = ev.GetEngagementId() != "" && microsofts(ref) && ref.Text("externalReferenceId") == ""
		)
		if pipelined {
			first, link, partner, err = linkstore.MarkAndLockRelated(ctx, tx, ConsumerReferrals, d.MsgID, referralID, ev.GetEngagementId())
		} else {
			first, link, err = linkstore.MarkAndLock(ctx, tx, ConsumerReferrals, d.MsgID, referralID, true)
		}
		if linkstore.IsNotFound(err) {
			if !first {
				out = OutcomeDuplicate
				return nil
			}
			// The referral Partner Center created for an opportunity,
			// seen before the create's answer: it is ours.
			if ext := ref.Text("externalReferenceId"); ext != "" {
				own, err := linkstore.LockFullByOpportunity(ctx, tx, ext)
				switch {
				case err == nil && own.ReferralID == "" && own.Origin == linkstore.OriginOutbound:
					opportunityID = own.OpportunityID
					publish, out, err = s.attach(ctx, tx, d, own, ev, ref, snapshot, tid)
					return err
				case err != nil && !linkstore.IsNotFound(err):
					return err
				}
			}
			// Microsoft's referral of an engagement we sync.
			if eng := ev.GetEngagementId(); eng != "" && microsofts(ref) {
				if !pipelined {
					if partner, err = linkstore.LockByEngagement(ctx, tx, eng, referralID); err != nil && !linkstore.IsNotFound(err) {
						return err
					}
				}
				if partner != nil {
					opportunityID = partner.OpportunityID
					publish, out, err = s.related(ctx, tx, d, partner, ev, ref, tid)
					return err
				}
			}
			if ignored {
				out = OutcomeIgnored
				return linkstore.AppendAudit(ctx, tx, nil, linkstore.Audit{
					ReferralID: referralID, Kind: KindIgnored, TraceID: tid,
					Message: "Referral not synced: " + ignoreReason + ".",
					Details: map[string]any{"updatedDateTime": updatedAt, "eventName": ev.GetEventName()},
				})
			}
			if link, err = linkstore.Lock(ctx, tx, referralID, ev.GetEngagementId()); err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
		opportunityID = link.OpportunityID
		if !first {
			// A redelivery: its effects are committed. Commands it may
			// have produced without publishing go out again.
			dd, err := s.load(link, d.MsgID, tid)
			if err != nil {
				return err
			}
			dd.republish()
			publish, out = dd.publish, OutcomeDuplicate
			if len(publish) > 0 {
				out = OutcomeRedelivered
			}
			return nil
		}
		publish, out, err = s.decide(ctx, tx, d, link, ev, ref, snapshot, updatedAt, tid)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("referral %s: %w", referralID, err)
	}
	if opportunityID != "" {
		span.SetAttributes(AttrOpportunityID.String(opportunityID))
		trace.SpanFromContext(ctx).SetAttributes(AttrOpportunityID.String(opportunityID))
	}
	if err := s.publishAll(ctx, publish); err != nil {
		return "", fmt.Errorf("referral %s: %w", referralID, err)
	}
	s.log.DebugContext(ctx, "referral snapshot handled", "referral_id", referralID, "outcome", string(out),
		"updated_at", updatedAt, "source", ev.GetSource().String())
	return out, nil
}

// decide applies a first delivery of a snapshot to its locked link.
func (s *Service) decide(ctx context.Context, tx pgx.Tx, d Delivery, link *linkstore.Link, ev *cosellv1.ReferralObserved,
	ref mapping.Referral, snapshot []byte, updatedAt time.Time, tid string) ([]message, Outcome, error) {
	at := pgTime(updatedAt)
	base := linkstore.Audit{ReferralID: link.ReferralID, OpportunityID: link.OpportunityID, TraceID: tid}
	if link.PCUpdatedAt != nil {
		switch {
		case at.Before(*link.PCUpdatedAt):
			a := base
			a.Kind = KindStale
			a.Message = fmt.Sprintf("Ignored an out-of-date Partner Center snapshot (updated %s; %s already applied).",
				at.Format(time.RFC3339Nano), link.PCUpdatedAt.Format(time.RFC3339Nano))
			a.Details = map[string]any{"updatedDateTime": at, "appliedUpdatedDateTime": *link.PCUpdatedAt}
			return nil, OutcomeStale, linkstore.AppendAudit(ctx, tx, &link.ID, a)
		case at.Equal(*link.PCUpdatedAt):
			// The same snapshot again (sweep, related event, producer
			// retry): if the command it produced may never have been
			// published (its result has not come), publish it again.
			dd, err := s.load(link, d.MsgID, tid)
			if err != nil {
				return nil, "", err
			}
			if link.CommandUpdatedAt != nil && link.CommandUpdatedAt.Equal(at) {
				dd.republish()
			}
			if len(dd.publish) > 0 {
				return dd.publish, OutcomeRedelivered, nil
			}
			return nil, OutcomeDuplicate, nil
		}
	}
	link.PCUpdatedAt, link.PCETag, link.Snapshot = &at, ev.GetEtag(), snapshot
	if link.EngagementID == "" {
		link.EngagementID = ev.GetEngagementId()
	}
	status := ref.Text("status") + "/" + ref.Text("substatus")

	switch link.State {
	case linkstore.StateParked:
		a := base
		a.Kind = KindHeld
		a.Message = fmt.Sprintf("Partner Center changed the referral (status %s); the change is held until the parked sync is replayed.", status)
		a.Details = map[string]any{"updatedDateTime": at, "parkReason": link.ParkReason}
		return nil, OutcomeHeld, linkstore.Save(ctx, tx, link, a)
	case linkstore.StateStopped, linkstore.StateOrphaned:
		a := base
		a.Kind = KindHeld
		why := "the seller stopped the sync in Salesforce"
		if link.State == linkstore.StateOrphaned {
			why = "the opportunity was deleted in Salesforce"
		}
		a.Message = fmt.Sprintf("Partner Center changed the referral (status %s); nothing is sent because %s.", status, why)
		a.Details = map[string]any{"updatedDateTime": at}
		return nil, OutcomeStopped, linkstore.Save(ctx, tx, link, a)
	}

	if link.OpportunityID == "" && link.Origin != linkstore.OriginOutbound {
		return s.createOpportunity(ctx, tx, d, link, ev, ref, at, tid)
	}

	// The opportunity exists: only what differs is written, and a
	// Salesforce change made meanwhile is not overwritten.
	dd, err := s.load(link, d.MsgID, tid)
	if err != nil {
		return nil, "", err
	}
	dd.sfID, dd.sfSource = CommandID(link.ReferralID, updatedAt), ev.GetUpdatedAt()
	res := dd.observePC(ref, at)
	dd.conflicts(res)
	dd.reconcile()
	msgs, err := dd.finish(ctx, tx)
	if err != nil {
		return nil, "", err
	}
	if !dd.applied {
		// Nothing we map changed since our last write: our own echo, or a
		// change to fields the mapping does not carry.
		return nil, OutcomeEcho, nil
	}
	return msgs, OutcomeApplied, nil
}

// conflicts audits the changes of one side that lost to the other.
func (d *decision) conflicts(res twoway.Outcome) {
	for _, c := range res.Conflicts {
		d.audit(KindConflict, fmt.Sprintf("%s changed %s to %s, but %s; the value stays %s.",
			sideName(c.Side), c.Field, c.Value, c.Reason, c.Kept),
			map[string]any{"field": c.Field, "value": c.Value, "kept": c.Kept, "side": string(c.Side)}, false)
	}
}

func sideName(s twoway.Side) string {
	switch s {
	case twoway.Salesforce:
		return "Salesforce"
	case twoway.PartnerCenter:
		return "Partner Center"
	default:
		return "Microsoft's referral"
	}
}

// createOpportunity maps a referral whose opportunity does not exist yet:
// the whole create projection goes out as an upsert by External ID (a
// repeat can never create a second opportunity).
func (s *Service) createOpportunity(ctx context.Context, tx pgx.Tx, d Delivery, link *linkstore.Link, ev *cosellv1.ReferralObserved,
	ref mapping.Referral, at time.Time, tid string) ([]message, Outcome, error) {
	base := linkstore.Audit{ReferralID: link.ReferralID, OpportunityID: link.OpportunityID, TraceID: tid}
	status := ref.Text("status") + "/" + ref.Text("substatus")
	proj, err := s.mapping.Project(ref, mapping.Create)
	if err != nil {
		var pe *mapping.ProjectionError
		if !errors.As(err, &pe) {
			return nil, "", err
		}
		return nil, OutcomeParked, s.park(ctx, tx, link, base, KindMappingFailed,
			"The referral could not be mapped, so nothing was sent to Salesforce: "+err.Error()+".",
			map[string]any{"updatedDateTime": at, "status": status},
			linkstore.Park{Consumer: ConsumerReferrals, Stream: d.Stream, StreamSeq: d.StreamSeq, MsgID: d.MsgID})
	}
	dd, err := s.load(link, d.MsgID, tid)
	if err != nil {
		return nil, "", err
	}
	dd.doc.State.Observe(twoway.PartnerCenter, canonAll(s.mapping.PCValues(ref)), at, dd.owner)
	dd.notePCStatus(ref, false)
	hash := proj.Hash()
	if hash == link.ProjectionHash {
		link.Sync = dd.encode()
		return nil, OutcomeEcho, linkstore.Save(ctx, tx, link)
	}
	cmd := s.command(link.ReferralID, CommandID(link.ReferralID, ev.GetUpdatedAt().AsTime()), proj, ev.GetUpdatedAt())
	if err := s.record(link, cmd, proj, at); err != nil {
		return nil, "", err
	}
	dd.doc.State.SentConditional(twoway.Salesforce, cmd.GetCommandId(), s.syncedOf(proj.Fields), twoway.CreatesRecord)
	link.Sync = dd.encode()
	a := base
	a.Kind = KindCommandSent
	a.Message = describe(mapping.Create, proj, status, ref)
	a.Details = map[string]any{"commandId": cmd.GetCommandId(), "event": string(mapping.Create), "updatedDateTime": at,
		"status": status, "fields": proj.Fields, "projectionHash": hash, "eTag": ev.GetEtag()}
	if err := linkstore.Save(ctx, tx, link, a); err != nil {
		return nil, "", err
	}
	return []message{{bus.SubjectUpsertOpportunity, cmd.GetCommandId(), cmd}}, OutcomeApplied, nil
}

// syncedOf returns the synced fields among written ones, canonically.
func (s *Service) syncedOf(fields map[string]any) map[string]string {
	synced := map[string]bool{}
	for _, f := range s.mapping.SyncFields() {
		synced[f] = true
	}
	out := map[string]string{}
	for k, v := range fields {
		if synced[k] {
			out[k] = mapping.Canon(v)
		}
	}
	return out
}

// encode returns the sync column for the decision's doc. The doc holds
// only strings, times and maps of them, so encoding cannot fail.
func (d *decision) encode() []byte {
	b, _ := json.Marshal(d.doc)
	return b
}

// attach links the referral Partner Center created for an opportunity when
// its snapshot arrives before the create's answer.
func (s *Service) attach(ctx context.Context, tx pgx.Tx, d Delivery, link *linkstore.Link, ev *cosellv1.ReferralObserved,
	ref mapping.Referral, snapshot []byte, tid string) ([]message, Outcome, error) {
	at := pgTime(ev.GetUpdatedAt().AsTime())
	link.ReferralID, link.EngagementID = ev.GetReferralId(), ev.GetEngagementId()
	link.PCUpdatedAt, link.PCETag, link.Snapshot = &at, ev.GetEtag(), snapshot
	dd, err := s.load(link, d.MsgID, tid)
	if err != nil {
		return nil, "", err
	}
	dd.ref = &ref
	dd.doc.State.Baseline(twoway.PartnerCenter, canonAll(s.mapping.PCValues(ref)), at, link.PCCommandID)
	dd.notePCStatus(ref, false)
	dd.audit(KindCreated, "Partner Center shows referral "+link.ReferralID+", created for this opportunity (its answer is still on the way).",
		map[string]any{"updatedDateTime": at, "externalReferenceId": link.OpportunityID}, false)
	msgs, err := dd.finish(ctx, tx)
	return msgs, OutcomeApplied, err
}

// related applies a snapshot of Microsoft's referral in the engagement of
// link: Microsoft accepting (its CRM id) and Microsoft sellers' changes
// reach the opportunity.
func (s *Service) related(ctx context.Context, tx pgx.Tx, d Delivery, link *linkstore.Link, ev *cosellv1.ReferralObserved,
	ref mapping.Referral, tid string) ([]message, Outcome, error) {
	at := pgTime(ev.GetUpdatedAt().AsTime())
	if link.RelatedUpdatedAt != nil && !at.After(*link.RelatedUpdatedAt) && link.RelatedReferralID == ev.GetReferralId() {
		if at.Before(*link.RelatedUpdatedAt) {
			return nil, OutcomeStale, nil
		}
		return nil, OutcomeDuplicate, nil
	}
	link.RelatedReferralID, link.RelatedUpdatedAt = ev.GetReferralId(), &at
	dd, err := s.load(link, d.MsgID, tid)
	if err != nil {
		return nil, "", err
	}
	if link.State != linkstore.StateActive || len(s.mapping.Inbound.Related) == 0 {
		_, err := dd.finish(ctx, tx)
		return nil, OutcomeHeld, err
	}
	res := dd.doc.State.Observe(twoway.Microsoft, canonAll(s.mapping.RelatedValues(ref)), at, dd.owner)
	var changed []string
	for _, c := range res.Changes {
		if strings.Contains(s.mapping.RelatedSource(c.Field), "microsoftMsxId") {
			dd.audit(KindMicrosoftAccepted, fmt.Sprintf("Microsoft accepted the co-sell; Microsoft's CRM id is %s.", strings.Trim(c.New, `"`)),
				map[string]any{"relatedReferralId": ev.GetReferralId(), "field": c.Field}, true)
			continue
		}
		changed = append(changed, c.Field)
	}
	if len(changed) > 0 {
		dd.audit(KindRelatedChanged, "A Microsoft seller changed "+strings.Join(changed, ", ")+" on Microsoft's referral; the opportunity follows.",
			map[string]any{"relatedReferralId": ev.GetReferralId(), "fields": changed}, true)
	}
	dd.conflicts(res)
	dd.reconcile()
	msgs, err := dd.finish(ctx, tx)
	if err != nil {
		return nil, "", err
	}
	if !dd.applied {
		return nil, OutcomeEcho, nil
	}
	return msgs, OutcomeApplied, nil
}

// microsoftOrganizationID is how Partner Center names Microsoft in
// organizationId, inviteContext.invitedBy and target ids.
const microsoftOrganizationID = "msft"

// microsofts reports whether a referral is Microsoft's side of an
// engagement: owned by Microsoft, or the partner's referral "for
// Microsoft" (target msft, the second step of a shared referral).
func microsofts(ref mapping.Referral) bool {
	if strings.EqualFold(ref.Text("organizationId"), microsoftOrganizationID) {
		return true
	}
	targets, _ := ref.Value("target").([]any)
	for _, t := range targets {
		if m, ok := t.(map[string]any); ok {
			if id, _ := m["id"].(string); strings.EqualFold(id, microsoftOrganizationID) {
				return true
			}
		}
	}
	return false
}

// CommandID derives an upsert command's id from the snapshot it comes
// from, so every replica and every redelivery derives the same one.
func CommandID(referralID string, updatedAt time.Time) string {
	return prefixUpsert + referralID + ":" + updatedAt.UTC().Format(time.RFC3339Nano)
}

// command builds the upsert for a projection.
func (s *Service) command(referralID, id string, proj mapping.Projection, updatedAt *timestamppb.Timestamp) *cosellv1.UpsertOpportunityCommand {
	cmd := &cosellv1.UpsertOpportunityCommand{
		CommandId:       id,
		ReferralId:      referralID,
		ExternalIdField: s.mapping.ExternalIDField,
		FieldsJson:      proj.FieldsJSON(),
		ProjectionHash:  proj.Hash(),
		SourceUpdatedAt: updatedAt,
	}
	if a := proj.Account; a != nil {
		cmd.Account = &cosellv1.Account{Name: a.Name, Country: a.Country, PostalCode: a.PostalCode, City: a.City, State: a.State, Street: a.Street}
	}
	return cmd
}

// record notes on the link that cmd is being sent.
func (s *Service) record(link *linkstore.Link, cmd *cosellv1.UpsertOpportunityCommand, proj mapping.Projection, at time.Time) error {
	b, err := proto.Marshal(cmd)
	if err != nil {
		return fmt.Errorf("marshal command: %w", err)
	}
	link.ProjectionHash, link.Projection = proj.Hash(), proj.JSON()
	link.CommandID, link.Command, link.CommandUpdatedAt = cmd.GetCommandId(), b, &at
	return nil
}

// park stops the link's sync until a replay, with the reason in the audit
// log and dead_letters (whose payload is the snapshot a replay re-applies).
func (s *Service) park(ctx context.Context, tx pgx.Tx, link *linkstore.Link, base linkstore.Audit, kind, message string,
	details map[string]any, p linkstore.Park) error {
	link.State, link.ParkReason = linkstore.StateParked, message
	// Whatever was sent last did not land, so nothing is our echo any more.
	link.ProjectionHash, link.Projection = "", nil
	a := base
	a.Kind, a.Message, a.Details = kind, message, details
	if err := linkstore.Save(ctx, tx, link, a); err != nil {
		return err
	}
	snapshot := link.Snapshot
	if snapshot == nil {
		stored, err := linkstore.LockWithSnapshot(ctx, tx, link.ReferralID)
		if err != nil {
			return err
		}
		snapshot = stored.Snapshot
	}
	p.ReferralID, p.Subject, p.Payload, p.Reason, p.TraceID = link.ReferralID, bus.SubjectReferralObserved, snapshot, message, base.TraceID
	return linkstore.RecordPark(ctx, tx, s.service, p)
}

// describe says in plain words what a command writes.
func describe(event mapping.Event, proj mapping.Projection, status string, ref mapping.Referral) string {
	verb := "Updating the Salesforce opportunity"
	if event == mapping.Create {
		verb = "Creating the Salesforce opportunity"
	}
	msg := fmt.Sprintf("%s from Partner Center (status %s", verb, status)
	if stage, ok := proj.Fields["StageName"].(string); ok {
		msg += ", stage " + stage
	}
	msg += ")"
	if reason := ref.Text("statusReason"); reason != "" && ref.Text("status") == "Closed" {
		msg += "; Partner Center's reason: " + reason
	}
	if ref.Text("substatus") == "Expired" {
		msg += "; the referral expired in Partner Center without being accepted"
	}
	return msg + "."
}
