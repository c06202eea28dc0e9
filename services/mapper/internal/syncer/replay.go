package syncer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/bus"
	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
	"github.com/cosell/cosell/services/mapper/internal/twoway"
	"github.com/cosell/cosell/services/mapper/mapping"
)

// Replayed reports what a replay did.
type Replayed struct {
	ReferralID    string `json:"referralId"`
	OpportunityID string `json:"opportunityId,omitempty"`
	CommandID     string `json:"commandId,omitempty"`
	State         string `json:"state"`
	Message       string `json:"message"`
}

// Replay re-applies the link's latest snapshot (the held one, if the link
// is parked) as a new command and resumes the link. It is what an operator
// runs once the cause of a rejection is fixed in Salesforce. The command
// gets a new id (the replay count is part of it), so neither the broker's
// duplicate window nor the adapter's inbox swallows it. It returns
// store.ErrNotFound for an unknown referral and ErrNothingToReplay for a
// link without a snapshot; a snapshot the mapping still cannot express
// leaves the link parked and says why.
func (s *Service) Replay(ctx context.Context, referralID string) (out Replayed, err error) {
	ctx, span := s.tracer.Start(ctx, "mapper replay link", trace.WithAttributes(AttrReferralID.String(referralID)))
	defer func() {
		if err != nil {
			span.RecordError(err)
		}
		span.End()
	}()
	tid := traceID(ctx)
	var publish *cosellv1.UpsertOpportunityCommand
	var publishAll []message
	err = store.InTx(ctx, s.db, func(tx pgx.Tx) error {
		publish, publishAll = nil, nil
		link, err := linkstore.LockWithSnapshot(ctx, tx, referralID)
		if err != nil {
			return err
		}
		if link.Origin == linkstore.OriginOutbound {
			var err error
			publishAll, out, err = s.replayOutbound(ctx, tx, link, tid)
			return err
		}
		if len(link.Snapshot) == 0 {
			return ErrNothingToReplay
		}
		out = Replayed{ReferralID: referralID, OpportunityID: link.OpportunityID}
		var ev cosellv1.ReferralObserved
		if err := proto.Unmarshal(link.Snapshot, &ev); err != nil {
			return fmt.Errorf("stored snapshot: %w", err)
		}
		ref, err := s.referrals.get(ev.GetReferralJson())
		if err != nil {
			return fmt.Errorf("stored snapshot: %w", err)
		}
		event := mapping.Update
		if link.OpportunityID == "" {
			event = mapping.Create
		}
		link.Replays++
		base := linkstore.Audit{ReferralID: referralID, OpportunityID: link.OpportunityID, TraceID: tid}
		proj, err := s.mapping.Project(ref, event)
		if err != nil {
			var pe *mapping.ProjectionError
			if !errors.As(err, &pe) {
				return err
			}
			msg := "Replay failed, the referral still cannot be mapped, so nothing was sent to Salesforce: " + err.Error() + "."
			out.State, out.Message = string(linkstore.StateParked), msg
			return s.park(ctx, tx, link, base, KindMappingFailed, msg, map[string]any{"replay": link.Replays},
				linkstore.Park{Consumer: consumerReplay, Stream: "replay:" + referralID, StreamSeq: uint64(link.Replays), MsgID: "replay-" + strconv.Itoa(link.Replays)})
		}
		updatedAt := ev.GetUpdatedAt().AsTime()
		cmd := s.command(referralID, CommandID(referralID, updatedAt)+":replay-"+strconv.Itoa(link.Replays), proj, ev.GetUpdatedAt())
		if err := s.record(link, cmd, proj, pgTime(updatedAt)); err != nil {
			return err
		}
		dd, err := s.load(link, "replay-"+strconv.Itoa(link.Replays), tid)
		if err != nil {
			return err
		}
		// The replayed snapshot may be one held while the link was parked,
		// which the two-way state has not seen yet: without it, the echo of
		// this write would look like a Salesforce edit of a field Partner
		// Center owns and send the refused value again.
		dd.doc.State.Observe(twoway.PartnerCenter, canonAll(s.mapping.PCValues(ref)), updatedAt, dd.owner)
		dd.doc.State.Sent(twoway.Salesforce, cmd.GetCommandId(), s.syncedOf(proj.Fields))
		link.Sync = dd.encode()
		link.CommandSubject = bus.SubjectUpsertOpportunity
		wasParked := link.State == linkstore.StateParked
		link.State, link.ParkReason = linkstore.StateActive, ""
		n, err := linkstore.MarkParksReplayed(ctx, tx, referralID)
		if err != nil {
			return err
		}
		msg := fmt.Sprintf("An operator replayed the latest Partner Center snapshot (updated %s); %s",
			updatedAt.UTC().Format(time.RFC3339), lowerFirst(describe(event, proj, ref.Text("status")+"/"+ref.Text("substatus"), ref)))
		if wasParked {
			msg += " The link is active again."
		}
		a := base
		a.Kind, a.Message = KindReplayed, msg
		a.Details = map[string]any{"commandId": cmd.GetCommandId(), "event": string(event), "fields": proj.Fields,
			"wasParked": wasParked, "parksReplayed": n, "replay": link.Replays}
		if err := linkstore.Save(ctx, tx, link, a); err != nil {
			return err
		}
		out.CommandID, out.State, out.Message = cmd.GetCommandId(), string(linkstore.StateActive), msg
		publish = cmd
		return nil
	})
	if err != nil {
		return Replayed{}, fmt.Errorf("replay referral %s: %w", referralID, err)
	}
	if err := s.publishAll(ctx, publishAll); err != nil {
		return Replayed{}, fmt.Errorf("replay referral %s: %w", referralID, err)
	}
	if publish != nil {
		// If this publish fails the link is active with the command
		// recorded; replaying again sends a fresh one.
		if err := s.pub.Publish(ctx, bus.SubjectUpsertOpportunity, publish.GetCommandId(), publish); err != nil {
			return Replayed{}, fmt.Errorf("replay referral %s: %w", referralID, err)
		}
	}
	s.log.InfoContext(ctx, "link replayed", "referral_id", referralID, "state", out.State, "command_id", out.CommandID)
	return out, nil
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return string(s[0]|0x20) + s[1:]
}

// IsNotFound reports whether err means the referral has no link.
func IsNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// replayOutbound resumes a parked link that started from an opportunity:
// the mapper decides again from the opportunity and referral it last saw
// and sends whatever differs.
func (s *Service) replayOutbound(ctx context.Context, tx pgx.Tx, link *linkstore.Link, tid string) ([]message, Replayed, error) {
	link.Replays++
	out := Replayed{ReferralID: link.ReferralID, OpportunityID: link.OpportunityID}
	dd, err := s.load(link, "replay-"+link.OpportunityID+"-"+strconv.Itoa(link.Replays), tid)
	if err != nil {
		return nil, out, err
	}
	wasParked := link.State == linkstore.StateParked
	if link.State == linkstore.StateParked {
		link.State, link.ParkReason = linkstore.StateActive, ""
	}
	// What was refused is not expected back any more.
	dd.doc.State.Forget(twoway.Salesforce, link.CommandID)
	n, err := linkstore.MarkParksReplayed(ctx, tx, link.ReferralID)
	if err != nil {
		return nil, out, err
	}
	dd.reconcile()
	msg := "An operator replayed the link: the mapper decided again from the opportunity and the referral it last saw."
	if wasParked {
		msg += " The link is active again."
	}
	dd.audit(KindReplayed, msg, map[string]any{"wasParked": wasParked, "parksReplayed": n, "replay": link.Replays}, false)
	msgs, err := dd.finish(ctx, tx)
	if err != nil {
		return nil, out, err
	}
	out.State, out.Message = string(link.State), msg
	if len(msgs) > 0 {
		out.CommandID = msgs[0].id
	}
	return msgs, out, nil
}
