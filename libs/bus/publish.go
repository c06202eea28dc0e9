package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// Header keys the bus sets besides Nats-Msg-Id and the trace context.
const (
	// HeaderType names the payload's protobuf message (e.g.
	// "cosell.v1.ReferralObserved"), so tools that list dead letters can
	// decode a payload without knowing the subject's conventions.
	HeaderType = "Cosell-Type"
)

// Attribute keys of the messaging semantic conventions, and the custom ones
// for NATS, which the conventions do not list.
const (
	attrSystem        = attribute.Key("messaging.system")
	attrOperationName = attribute.Key("messaging.operation.name")
	attrOperationType = attribute.Key("messaging.operation.type")
	attrDestination   = attribute.Key("messaging.destination.name")
	attrConsumerGroup = attribute.Key("messaging.consumer.group.name")
	attrMessageID     = attribute.Key("messaging.message.id")
	attrBodySize      = attribute.Key("messaging.message.body.size")
	attrDeliveryCount = attribute.Key("messaging.nats.delivery_count")
	attrStreamSeq     = attribute.Key("messaging.nats.stream_sequence")
	attrDuplicate     = attribute.Key("messaging.nats.duplicate")
	attrOutcome       = attribute.Key("cosell.bus.outcome")
)

// ErrNoMsgID is returned by Publish when msgID is empty: every message
// needs an id derived from its content, or JetStream cannot drop the
// repeats that at-least-once producers send.
var ErrNoMsgID = errors.New("publish: empty message id")

// Publish marshals m and publishes it on subject with msgID as Nats-Msg-Id,
// carrying the trace context of ctx, and returns once JetStream has stored
// it (or recognised msgID as a duplicate within the stream's window, which
// is success too: the message is already stored). Callers that must not
// acknowledge their own input before the message is durable, like the
// webhook ingress, answer only after Publish returned nil.
func (c *Conn) Publish(ctx context.Context, subject, msgID string, m proto.Message) error {
	if msgID == "" {
		return ErrNoMsgID
	}
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("publish %s: marshal: %w", subject, err)
	}
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(HeaderType, string(m.ProtoReflect().Descriptor().FullName()))
	return c.publishMsg(ctx, msg, msgID)
}

// publishMsg publishes a prepared message inside a PRODUCER span.
func (c *Conn) publishMsg(ctx context.Context, msg *nats.Msg, msgID string) error {
	ctx, span := c.tracer.Start(ctx, "send "+msg.Subject,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attrSystem.String("nats"),
			attrOperationName.String("send"),
			attrOperationType.String("send"),
			attrDestination.String(msg.Subject),
			attrMessageID.String(msgID),
			attrBodySize.Int(len(msg.Data)),
		))
	defer span.End()
	c.propagator.Inject(ctx, HeaderCarrier(msg.Header))

	ack, err := c.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID))
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
		return fmt.Errorf("publish %s: %w", msg.Subject, err)
	}
	span.SetAttributes(attrStreamSeq.Int64(int64(ack.Sequence)), attrDuplicate.Bool(ack.Duplicate))
	c.metrics.published.Add(ctx, 1, metric.WithAttributes(attrDestination.String(msg.Subject), attrDuplicate.Bool(ack.Duplicate)))
	return nil
}
