// Package consumer is the adapter's message transport: it takes Partner
// Center notifications off JetStream, hands them to the observe use case,
// and translates the outcome into the bus's terms: ack, retry after a
// delay (throttling, outages), or dead-letter (a request Partner Center
// will always refuse). A referral Partner Center does not have is recorded
// and acknowledged: redelivery cannot make it appear.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/observe"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
)

// Durable is the durable consumer shared by the adapter's replicas.
const Durable = "partnercenter-adapter-notifications"

// Observer handles one notification (observe.Observer).
type Observer interface {
	Notification(ctx context.Context, n *cosellv1.PartnerCenterNotification) error
}

// MissingRecorder records a notification whose referral Partner Center
// does not have.
type MissingRecorder interface {
	RecordMissing(ctx context.Context, referralID, eventName, msgID, traceID string) error
}

// Consumer handles notifications.
type Consumer struct {
	obs     Observer
	missing MissingRecorder
	log     *slog.Logger
	dropped metric.Int64Counter
}

// New returns a Consumer. meter may be nil.
func New(obs Observer, missing MissingRecorder, log *slog.Logger, meter metric.Meter) (*Consumer, error) {
	c := &Consumer{obs: obs, missing: missing, log: log}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if meter != nil {
		d, err := meter.Int64Counter("partnercenter_adapter.notifications.dropped",
			metric.WithDescription("notifications acknowledged without a snapshot, by reason"))
		if err != nil {
			return nil, fmt.Errorf("consumer: metric: %w", err)
		}
		c.dropped = d
	}
	return c, nil
}

// Spec returns the consumer's declaration; concurrency bounds handlers in
// flight (each mostly waits on one Partner Center GET).
func Spec(concurrency int) bus.ConsumerSpec {
	return bus.ConsumerSpec{
		Stream:         bus.StreamNotifications,
		Durable:        Durable,
		FilterSubjects: []string{bus.SubjectNotificationPrefix + ">"},
		Concurrency:    concurrency,
		MaxDeliver:     8,
	}
}

// Handle is the bus.Handler.
func (c *Consumer) Handle(ctx context.Context, m *bus.Msg) error {
	var n cosellv1.PartnerCenterNotification
	if err := m.Unmarshal(&n); err != nil {
		return err
	}
	if !observe.IsReferralEvent(n.GetEventName()) {
		c.drop(ctx, "not_a_referral_event")
		c.log.InfoContext(ctx, "notification is not about a referral; ignored", "event_name", n.GetEventName())
		return nil
	}
	err := c.obs.Notification(ctx, &n)
	if err == nil {
		return nil
	}
	if errors.Is(err, observe.ErrReferralNotFound) {
		id := observe.ReferralID(&n)
		traceID := ""
		if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
			traceID = sc.TraceID().String()
		}
		if rerr := c.missing.RecordMissing(ctx, id, n.GetEventName(), m.MsgID, traceID); rerr != nil {
			return fmt.Errorf("record missing referral %s: %w", id, rerr)
		}
		c.drop(ctx, "referral_not_found")
		c.log.WarnContext(ctx, "referral not found in Partner Center; notification dropped", "referral_id", id, "event_name", n.GetEventName())
		return nil
	}
	return translate(err)
}

// translate maps a failure to the bus's retry decision.
func translate(err error) error {
	var ae *pcclient.APIError
	if !errors.As(err, &ae) {
		return err // transport, token or broker trouble: retry with backoff
	}
	switch {
	case ae.RetryAfter > 0:
		return bus.RetryAfter(err, ae.RetryAfter)
	case ae.Temporary(), ae.Status == http.StatusUnauthorized:
		// A 401 that survived a token refresh is a credentials problem an
		// operator can fix; keep retrying until MaxDeliver parks it.
		return err
	default:
		return bus.Permanent(err)
	}
}

func (c *Consumer) drop(ctx context.Context, reason string) {
	if c.dropped != nil {
		c.dropped.Add(ctx, 1, metric.WithAttributes(attribute.String("reason", reason)))
	}
}
