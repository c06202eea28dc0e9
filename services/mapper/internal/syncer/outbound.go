package syncer

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// CreateCommandID is the id of the create for an opportunity: stable, so a
// repeat is dropped by the broker and the partnercenter-adapter; a new
// attempt after Partner Center refused one gets a new id.
func CreateCommandID(opportunityID string, attempt int) string {
	if attempt <= 1 {
		return prefixCreate + opportunityID
	}
	return prefixCreate + opportunityID + ":" + strconv.Itoa(attempt)
}

// OpportunityObserved handles one OpportunityObserved: an opted-in
// opportunity without a referral is checked and created in Partner Center,
// a linked one's changes are sent as a JSON Patch, unticking the sync
// checkbox stops the sync and deleting the opportunity orphans the link.
func (s *Service) OpportunityObserved(ctx context.Context, d Delivery, ev *cosellv1.OpportunityObserved) (out Outcome, err error) {
	oppID := ev.GetOpportunityId()
	trace.SpanFromContext(ctx).SetAttributes(AttrOpportunityID.String(oppID))
	ctx, span := s.tracer.Start(ctx, "mapper apply opportunity", trace.WithAttributes(AttrOpportunityID.String(oppID)))
	defer func() {
		span.SetAttributes(attrOutcome.String(string(out)))
		if err != nil {
			span.RecordError(err)
		}
		span.End()
		s.count(ctx, "opportunity_observed", out, err)
	}()
	if oppID == "" || !ev.GetSystemModstamp().IsValid() {
		return "", fmt.Errorf("%w: opportunity observation without id or SystemModstamp", ErrMalformed)
	}
	var opp mapping.Opportunity
	if !ev.GetDeleted() {
		if opp, err = s.opportunities.get(ev.GetRecordJson()); err != nil {
			return "", fmt.Errorf("%w: opportunity %s: %w", ErrMalformed, oppID, err)
		}
	}
	at := pgTime(ev.GetSystemModstamp().AsTime())
	tid := traceID(ctx)
	var (
		publish    []message
		referralID string
	)
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		publish, out, referralID = nil, "", ""
		first, link, err := linkstore.MarkAndLockByOpportunity(ctx, tx, ConsumerOpportunities, d.MsgID, oppID)
		if linkstore.IsNotFound(err) && !ev.GetDeleted() {
			// An opportunity created by an upsert whose result has not
			// arrived yet: its External ID names the referral.
			if ext := opp.Text(s.mapping.ExternalIDField); ext != "" {
				link, err = linkstore.LockWithSnapshot(ctx, tx, ext)
				if err == nil && link.OpportunityID == "" {
					link.OpportunityID = oppID
				} else if err == nil && link.OpportunityID != oppID {
					err = store.ErrNotFound // another opportunity's referral
				}
			}
		}
		if err != nil && !linkstore.IsNotFound(err) {
			return err
		}
		if !first {
			if link == nil {
				out = OutcomeDuplicate
				return nil
			}
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
		if link == nil {
			switch {
			case ev.GetDeleted() || s.mapping.Outbound == nil || !optedIn(opp, s.mapping):
				// Not ours: not opted in, or a deletion of a record we never
				// linked.
				out = OutcomeIgnored
				return nil
			case opp.Text(s.mapping.ExternalIDField) != "":
				out = OutcomeIgnored
				return linkstore.AppendAudit(ctx, tx, nil, linkstore.Audit{OpportunityID: oppID, Kind: KindNotLinked, TraceID: tid,
					Message: fmt.Sprintf("The opportunity names referral %s, which cosell has no link for; it is not synced.", opp.Text(s.mapping.ExternalIDField)),
					Details: map[string]any{"systemModstamp": at}})
			}
			if link, err = linkstore.CreateOutbound(ctx, tx, oppID); err != nil {
				return err
			}
		}
		referralID = link.ReferralID
		publish, out, err = s.applyOpportunity(ctx, tx, d, link, ev, opp, at, tid)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("opportunity %s: %w", oppID, err)
	}
	if referralID != "" {
		span.SetAttributes(AttrReferralID.String(referralID))
		trace.SpanFromContext(ctx).SetAttributes(AttrReferralID.String(referralID))
	}
	if err := s.publishAll(ctx, publish); err != nil {
		return "", fmt.Errorf("opportunity %s: %w", oppID, err)
	}
	s.log.DebugContext(ctx, "opportunity observation handled", "opportunity_id", oppID, "outcome", string(out), "system_modstamp", at)
	return out, nil
}

// optedIn reports whether the seller ticked the sync checkbox.
func optedIn(o mapping.Opportunity, cfg *mapping.Config) bool {
	return strings.EqualFold(o.Text(cfg.SyncField), "true")
}

// applyOpportunity applies a first delivery of an observation to its
// locked link.
func (s *Service) applyOpportunity(ctx context.Context, tx pgx.Tx, d Delivery, link *linkstore.Link, ev *cosellv1.OpportunityObserved,
	opp mapping.Opportunity, at time.Time, tid string) ([]message, Outcome, error) {
	dd, err := s.load(link, d.MsgID, tid)
	if err != nil {
		return nil, "", err
	}
	if link.SFModstamp != nil && !at.After(*link.SFModstamp) {
		if at.Before(*link.SFModstamp) {
			return nil, OutcomeStale, linkstore.AppendAudit(ctx, tx, &link.ID, linkstore.Audit{ReferralID: link.ReferralID, OpportunityID: link.OpportunityID,
				Kind: KindOpportunityStale, TraceID: tid, Message: "Ignored an out-of-date Salesforce observation.",
				Details: map[string]any{"systemModstamp": at, "appliedSystemModstamp": *link.SFModstamp}})
		}
		dd.republish()
		if len(dd.publish) > 0 {
			return dd.publish, OutcomeRedelivered, nil
		}
		return nil, OutcomeDuplicate, nil
	}
	wasOptedIn := link.Origin == linkstore.OriginOutbound || (dd.opp != nil && optedIn(*dd.opp, s.mapping))
	link.SFModstamp = &at
	if ev.GetDeleted() {
		if link.State == linkstore.StateOrphaned {
			return nil, OutcomeStopped, linkstore.Save(ctx, tx, link)
		}
		link.State, link.ParkReason = linkstore.StateOrphaned, "the opportunity was deleted in Salesforce"
		dd.audit(KindOrphaned, "The opportunity was deleted in Salesforce; the link is orphaned and the referral stays in Partner Center untouched.",
			map[string]any{"systemModstamp": at}, false)
		_, err := dd.finish(ctx, tx)
		return nil, OutcomeStopped, err
	}
	link.SFRecord = ev.GetRecordJson()
	opted := optedIn(opp, s.mapping)

	switch link.State {
	case linkstore.StateOrphaned:
		_, err := dd.finish(ctx, tx)
		return nil, OutcomeStopped, err
	case linkstore.StateStopped:
		if !opted {
			dd.opp = &opp
			_, err := dd.finish(ctx, tx)
			return nil, OutcomeStopped, err
		}
		link.State, link.ParkReason = linkstore.StateActive, ""
		dd.audit(KindResumed, "Sync with Partner Center is ticked again: the sync resumes.", nil, true)
		if link.ReferralID == "" {
			return s.createReferral(ctx, tx, dd, ev, opp, at)
		}
	case linkstore.StateParked:
		dd.opp = &opp
		dd.audit(KindHeld, "Salesforce changed the opportunity; the change is held until the parked sync is replayed.", map[string]any{"systemModstamp": at}, false)
		_, err := dd.finish(ctx, tx)
		return nil, OutcomeHeld, err
	default:
		if !opted && wasOptedIn && s.mapping.Outbound != nil {
			link.State, link.ParkReason = linkstore.StateStopped, "the seller unticked "+s.mapping.SyncField
			dd.opp = &opp
			dd.audit(KindStopped, "Sync with Partner Center was unticked: the sync is stopped. The referral and this history stay; tick it again to resume.",
				map[string]any{"systemModstamp": at}, true)
			msgs, err := dd.finish(ctx, tx)
			return msgs, OutcomeStopped, err
		}
	}

	if link.ReferralID == "" && link.Origin == linkstore.OriginOutbound {
		if link.PCPending() {
			// The create is under way: remember what changed, its answer
			// sends the difference.
			dd.observeSF(opp, at)
			_, err := dd.finish(ctx, tx)
			return nil, OutcomeHeld, err
		}
		return s.createReferral(ctx, tx, dd, ev, opp, at)
	}
	res := dd.observeSF(opp, at)
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

// createReferral checks an opted-in opportunity and, when it passes,
// sends the referral create; when it does not, nothing is sent and the
// seller reads why in the Audit field.
func (s *Service) createReferral(ctx context.Context, tx pgx.Tx, dd *decision, ev *cosellv1.OpportunityObserved,
	opp mapping.Opportunity, at time.Time) ([]message, Outcome, error) {
	link := dd.link
	proj, perr := s.mapping.ProjectOutbound(opp, mapping.Create)
	dd.observeSF(opp, at)
	if problems := s.mapping.CheckCreate(opp, proj, perr); len(problems) > 0 {
		hash := "problems:" + shortHash(problems...)
		link.State = linkstore.StateInvalid
		link.ParkReason = strings.Join(problems, " ")
		if link.InvalidHash == hash {
			// Already told: this observation is most likely our own
			// Audit write coming back.
			_, err := dd.finish(ctx, tx)
			return nil, OutcomeInvalid, err
		}
		link.InvalidHash = hash
		dd.audit(KindInvalid, "Not shared with Partner Center yet: "+strings.Join(problems, " "), map[string]any{"problems": problems}, true)
		msgs, err := dd.finish(ctx, tx)
		return msgs, OutcomeInvalid, err
	}
	body := proj.CreateBody(link.OpportunityID)
	bodyHash := "body:" + shortHash(string(body))
	if link.State == linkstore.StateInvalid && link.InvalidHash == bodyHash {
		// Partner Center refused exactly this referral; a change makes a
		// new one.
		_, err := dd.finish(ctx, tx)
		return nil, OutcomeInvalid, err
	}
	if link.CreateAttempt == 0 || link.PCRejectedCommandID == link.PCCommandID && link.PCCommandID != "" {
		link.CreateAttempt++
	}
	id := CreateCommandID(link.OpportunityID, link.CreateAttempt)
	link.State, link.ParkReason = linkstore.StateActive, ""
	cmd := &cosellv1.PartnerCenterCommand{
		CommandId: id, OpportunityId: link.OpportunityID, SourceUpdatedAt: timestamppb.New(at), ProjectionHash: proj.Hash(),
		Action: &cosellv1.PartnerCenterCommand_Create{Create: &cosellv1.CreateReferral{BodyJson: body, ExternalReferenceId: link.OpportunityID}},
	}
	dd.setPC(cmd)
	kind := "a partner-led referral"
	if code, _ := proj.Values["inviteContext.assistanceRequestCode"].(string); code != "" && code != "Unknown" {
		kind = "a co-sell referral asking Microsoft for " + code
	} else if share, ok := proj.Values["consent.consentToShareReferralWithMicrosoftSellers"].(bool); ok && !share {
		kind = "a private referral"
	}
	dd.audit(KindCreateSent, "Creating "+kind+" in Partner Center for this opportunity.",
		map[string]any{"commandId": id, "attempt": link.CreateAttempt, "projectionHash": proj.Hash()}, false)
	msgs, err := dd.finish(ctx, tx)
	return msgs, OutcomeApplied, err
}
