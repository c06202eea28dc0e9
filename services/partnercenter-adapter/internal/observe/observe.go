// Package observe turns Partner Center referrals into ReferralObserved
// snapshots on the bus: after a notification (read the referral first, the
// notification carries no data) and for every referral the sweep finds.
package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
)

// Referrals reads a referral from Partner Center.
type Referrals interface {
	GetReferral(ctx context.Context, id string) (pcclient.Referral, error)
}

// Publisher publishes a message durably with a Msg-Id (bus.Conn).
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, m proto.Message) error
}

// EventReferralCreated is Partner Center's event for a new referral of the
// partner's.
const EventReferralCreated = "referral-created"

// Why a notification was acknowledged without reading its referral.
const (
	attrSkipped   = attribute.Key("cosell.notification.skipped")
	skipOwnCreate = "own_create"
)

// ErrReferralNotFound reports that Partner Center has no referral with the
// notification's id (deleted, or not visible to this partner): no retry
// can fix it.
var ErrReferralNotFound = errors.New("referral not found in Partner Center")

// Observer reads referrals and publishes their snapshots.
type Observer struct {
	referrals Referrals
	pub       Publisher
	log       *slog.Logger
	now       func() time.Time
	published metric.Int64Counter
	skipped   metric.Int64Counter
	own       *OwnCreates
}

// New returns an Observer. meter may be nil.
func New(referrals Referrals, pub Publisher, log *slog.Logger, meter metric.Meter) (*Observer, error) {
	o := &Observer{referrals: referrals, pub: pub, log: log, now: time.Now}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if meter != nil {
		c, err := meter.Int64Counter("partnercenter_adapter.referrals.published",
			metric.WithDescription("ReferralObserved snapshots published, by source"))
		if err != nil {
			return nil, fmt.Errorf("observe: metric: %w", err)
		}
		o.published = c
		if o.skipped, err = meter.Int64Counter("partnercenter_adapter.notifications.skipped",
			metric.WithDescription("Notifications acknowledged without reading the referral, by reason (own_create: the referral-created notification of a referral this replica created)")); err != nil {
			return nil, fmt.Errorf("observe: metric: %w", err)
		}
	}
	return o, nil
}

// SkipOwnCreates makes the observer acknowledge, without reading the
// referral, the referral-created notifications of the referrals in own
// (those this replica created; see OwnCreates).
func (o *Observer) SkipOwnCreates(own *OwnCreates) { o.own = own }

// ReferralID returns the referral id of a notification: the field ingress
// parsed, or else the last path segment of ResourceUri.
func ReferralID(n *cosellv1.PartnerCenterNotification) string {
	if id := strings.TrimSpace(n.GetReferralId()); id != "" {
		return id
	}
	u := n.GetResourceUri()
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	u = strings.TrimRight(u, "/")
	return u[strings.LastIndexByte(u, '/')+1:]
}

// IsReferralEvent reports whether a notification is about a referral
// (referral-* or related-referral-*).
func IsReferralEvent(name string) bool {
	return strings.HasPrefix(name, "referral-") || strings.HasPrefix(name, "related-referral-")
}

// Notification reads the referral a notification names and publishes its
// snapshot. It returns an error wrapping ErrReferralNotFound on 404, and
// the client's *pcclient.APIError for other refusals.
func (o *Observer) Notification(ctx context.Context, n *cosellv1.PartnerCenterNotification) error {
	id := ReferralID(n)
	trace.SpanFromContext(ctx).SetAttributes(pcclient.AttrReferralID.String(id))
	if id == "" {
		return fmt.Errorf("notification %s: no referral id in %q", n.GetEventName(), n.GetResourceUri())
	}
	if n.GetEventName() == EventReferralCreated && o.own.Has(id) {
		trace.SpanFromContext(ctx).SetAttributes(attrSkipped.String(skipOwnCreate))
		if o.skipped != nil {
			o.skipped.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", skipOwnCreate)))
		}
		o.log.DebugContext(ctx, "referral-created notification of a referral this adapter created; its create result carried it", "referral_id", id)
		return nil
	}
	ref, err := o.referrals.GetReferral(ctx, id)
	if pcclient.IsNotFound(err) {
		return fmt.Errorf("notification %s for referral %s: %w: %w", n.GetEventName(), id, ErrReferralNotFound, err)
	}
	if err != nil {
		return err
	}
	source := cosellv1.ObservationSource_OBSERVATION_SOURCE_WEBHOOK
	if strings.HasPrefix(n.GetEventName(), "related-") {
		source = cosellv1.ObservationSource_OBSERVATION_SOURCE_RELATED
	}
	return o.Publish(ctx, ref, source, n.GetEventName())
}

// Publish publishes ref's snapshot with a Msg-Id derived from the snapshot
// (MsgID), so the same snapshot read twice, by a notification and the sweep
// or by two replicas, is stored once.
func (o *Observer) Publish(ctx context.Context, ref pcclient.Referral, source cosellv1.ObservationSource, eventName string) error {
	m := &cosellv1.ReferralObserved{
		ReferralId:   ref.ID,
		EngagementId: ref.EngagementID,
		UpdatedAt:    timestamppb.New(ref.UpdatedAt),
		Etag:         ref.ETag,
		Source:       source,
		EventName:    eventName,
		ReferralJson: ref.Raw,
		ObservedAt:   timestamppb.New(o.now()),
	}
	if err := o.pub.Publish(ctx, bus.SubjectReferralObserved, MsgID(ref), m); err != nil {
		return fmt.Errorf("publish snapshot of referral %s: %w", ref.ID, err)
	}
	if o.published != nil {
		o.published.Add(ctx, 1, metric.WithAttributes(attribute.String("source", source.String())))
	}
	o.log.DebugContext(ctx, "referral observed", "referral_id", ref.ID, "updated_at", ref.UpdatedAt, "source", source.String())
	return nil
}

// MsgID identifies one snapshot of a referral: its id, updatedDateTime
// and eTag (every write changes both).
func MsgID(ref pcclient.Referral) string {
	return "referral:" + ref.ID + ":" + ref.UpdatedAt.UTC().Format(time.RFC3339Nano) + ":" + strings.Trim(ref.ETag, `"\`)
}
