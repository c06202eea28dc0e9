// Package webhook is ingress's HTTP edge for Partner Center event
// notifications: it bounds the body, verifies the signature over the raw
// bytes, validates the notification, and answers 2xx only once the event is
// durable (published to JetStream and acknowledged, or, for test-created,
// recorded). Every failure is translated to a status code here and nowhere
// else: 401 bad signature, 400 malformed, 413 too large, 503 when a
// dependency is unavailable so Partner Center retries.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/ingress/internal/notification"
	"github.com/cosell/cosell/services/ingress/internal/signature"
)

// Path is where Partner Center delivers notifications.
const Path = "/webhooks/partnercenter"

// Outcomes label the webhooks-received counter, one per answer class.
const (
	OutcomeAccepted          = "accepted"
	OutcomeTestRecorded      = "test_recorded"
	OutcomeBadSignature      = "bad_signature"
	OutcomeUntrustedCertHost = "untrusted_cert_host"
	OutcomeCertUnavailable   = "cert_unavailable"
	OutcomeMalformed         = "malformed"
	OutcomeTooLarge          = "too_large"
	OutcomeBrokerUnavailable = "broker_unavailable"
	OutcomeStoreUnavailable  = "store_unavailable"
)

// Verifier checks the signature of a delivery (signature.Verifier).
type Verifier interface {
	Verify(ctx context.Context, h http.Header, body []byte) error
}

// Publisher publishes msg to subject with a JetStream Msg-Id and returns
// only after JetStream acknowledged it (libs/bus).
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, msg proto.Message) error
}

// TestRecorder records a verified test-created delivery so an operator can
// confirm that delivery works.
type TestRecorder interface {
	RecordTest(ctx context.Context, n notification.Notification, msgID string, receivedAt time.Time) error
}

// SubjectFunc returns the subject a notification with the given event name
// is published to (bus.NotificationSubject).
type SubjectFunc func(eventName string) (string, error)

// Config are the handler's limits.
type Config struct {
	// MaxBodyBytes bounds the body; larger requests get 413.
	MaxBodyBytes int64
	// PublishTimeout bounds the wait for JetStream's acknowledgement (or the
	// test-event insert); when it passes the answer is 503.
	PublishTimeout time.Duration
}

// Deps are the handler's collaborators.
type Deps struct {
	Verifier  Verifier
	Publisher Publisher
	Tests     TestRecorder
	Subject   SubjectFunc
	Logger    *slog.Logger
	Meter     metric.Meter
	Tracer    trace.Tracer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Handler serves POST /webhooks/partnercenter.
type Handler struct {
	cfg      Config
	deps     Deps
	received metric.Int64Counter
	verifyD  metric.Float64Histogram
}

// New checks its inputs and builds the handler's instruments.
func New(cfg Config, d Deps) (*Handler, error) {
	if d.Verifier == nil || d.Publisher == nil || d.Tests == nil || d.Subject == nil || d.Logger == nil || d.Meter == nil || d.Tracer == nil {
		return nil, errors.New("webhook: Verifier, Publisher, Tests, Subject, Logger, Meter and Tracer are required")
	}
	if cfg.MaxBodyBytes <= 0 || cfg.PublishTimeout <= 0 {
		return nil, errors.New("webhook: MaxBodyBytes and PublishTimeout must be positive")
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	received, err := d.Meter.Int64Counter("ingress.webhooks.received",
		metric.WithDescription("Partner Center webhook deliveries by outcome."),
		metric.WithUnit("{request}"))
	if err != nil {
		return nil, fmt.Errorf("webhook: counter: %w", err)
	}
	verifyD, err := d.Meter.Float64Histogram("ingress.webhook.verification.duration",
		metric.WithDescription("Time to verify a delivery's signature, certificate download included."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1, 5))
	if err != nil {
		return nil, fmt.Errorf("webhook: histogram: %w", err)
	}
	return &Handler{cfg: cfg, deps: d, received: received, verifyD: verifyD}, nil
}

// ServeHTTP handles one delivery. The request's server span (started by
// the HTTP middleware) is the root of the referral's trace; the publish is
// its child, and the bus carries the trace on to the consumers.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	receivedAt := h.deps.Now()
	span := trace.SpanFromContext(ctx)

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.reject(ctx, w, http.StatusRequestEntityTooLarge, OutcomeTooLarge,
				fmt.Sprintf("body larger than %d bytes", h.cfg.MaxBodyBytes), err)
			return
		}
		h.reject(ctx, w, http.StatusBadRequest, OutcomeMalformed, "could not read body", err)
		return
	}

	if err := h.verify(ctx, r.Header, body); err != nil {
		status, outcome, msg := verifyFailure(err)
		h.reject(ctx, w, status, outcome, msg, err)
		return
	}

	n, err := notification.Parse(body)
	if err != nil {
		h.reject(ctx, w, http.StatusBadRequest, OutcomeMalformed, err.Error(), err)
		return
	}
	msgID := n.MsgID()
	span.SetAttributes(
		attribute.String("partnercenter.event_name", n.EventName),
		attribute.String("partnercenter.referral_id", n.ReferralID),
		attribute.String("messaging.message.id", msgID),
	)

	// A caller hanging up must not abort a publish half-way: finish it
	// within the timeout and let the sender's retry be deduplicated.
	pubCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.PublishTimeout)
	defer cancel()

	if n.IsTest() {
		if err := h.deps.Tests.RecordTest(pubCtx, n, msgID, receivedAt); err != nil {
			h.reject(ctx, w, http.StatusServiceUnavailable, OutcomeStoreUnavailable, "could not record the test event; retry later", err)
			return
		}
		h.accept(ctx, w, OutcomeTestRecorded, n, msgID)
		return
	}

	subject, err := h.deps.Subject(n.EventName)
	if err != nil {
		h.reject(ctx, w, http.StatusBadRequest, OutcomeMalformed, "event name is not usable", err)
		return
	}
	msg := &cosellv1.PartnerCenterNotification{
		EventName:         n.EventName,
		ResourceUri:       n.ResourceURI,
		ResourceName:      n.ResourceName,
		AuditUri:          n.AuditURI,
		ResourceChangeUtc: timestamppb.New(n.ResourceChangeUTC),
		ReceivedAt:        timestamppb.New(receivedAt),
		ReferralId:        n.ReferralID,
	}
	if err := h.deps.Publisher.Publish(pubCtx, subject, msgID, msg); err != nil {
		h.reject(ctx, w, http.StatusServiceUnavailable, OutcomeBrokerUnavailable, "event could not be stored; retry later", err)
		return
	}
	h.accept(ctx, w, OutcomeAccepted, n, msgID)
}

// verify runs the signature check in its own span and records its latency.
func (h *Handler) verify(ctx context.Context, hdr http.Header, body []byte) error {
	ctx, span := h.deps.Tracer.Start(ctx, "webhook.verify_signature")
	defer span.End()
	start := time.Now()
	err := h.deps.Verifier.Verify(ctx, hdr, body)
	h.verifyD.Record(ctx, time.Since(start).Seconds())
	if err != nil {
		span.SetStatus(codes.Error, "verification failed")
	}
	return err
}

// verifyFailure translates a verification error into the answer. Only a
// transient failure to download the certificate is retryable (503); every
// other failure is final (401) and says no more than the class of problem.
func verifyFailure(err error) (status int, outcome, msg string) {
	switch {
	case errors.Is(err, signature.ErrUntrustedCertURL):
		return http.StatusUnauthorized, OutcomeUntrustedCertHost, "certificate URL is not trusted"
	case errors.Is(err, signature.ErrCertUnavailable):
		return http.StatusServiceUnavailable, OutcomeCertUnavailable, "signing certificate could not be downloaded; retry later"
	case errors.Is(err, signature.ErrMissingHeader):
		return http.StatusUnauthorized, OutcomeBadSignature, "signature headers missing or malformed"
	case errors.Is(err, signature.ErrCertificate):
		return http.StatusUnauthorized, OutcomeBadSignature, "certificate verification failed"
	default:
		return http.StatusUnauthorized, OutcomeBadSignature, "signature verification failed"
	}
}

type answer struct {
	Status string `json:"status"`
	MsgID  string `json:"msgId,omitempty"`
	Error  string `json:"error,omitempty"`
}

func (h *Handler) accept(ctx context.Context, w http.ResponseWriter, outcome string, n notification.Notification, msgID string) {
	h.received.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome)))
	h.deps.Logger.DebugContext(ctx, "webhook accepted",
		"outcome", outcome, "event", n.EventName, "referral_id", n.ReferralID, "msg_id", msgID)
	writeJSON(w, http.StatusOK, answer{Status: outcome, MsgID: msgID})
}

func (h *Handler) reject(ctx context.Context, w http.ResponseWriter, status int, outcome, msg string, err error) {
	h.received.Add(ctx, 1, metric.WithAttributes(attribute.String("outcome", outcome)))
	span := trace.SpanFromContext(ctx)
	span.SetAttributes(attribute.String("ingress.outcome", outcome))
	span.SetStatus(codes.Error, outcome)
	level := slog.LevelWarn
	if status >= 500 {
		level = slog.LevelError
	}
	// err says what exactly failed; it never holds the signature, headers'
	// secrets or body contents.
	h.deps.Logger.Log(ctx, level, "webhook rejected", "status", status, "outcome", outcome, "err", err.Error())
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, status, answer{Status: outcome, Error: msg})
}

func writeJSON(w http.ResponseWriter, status int, v answer) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do
}
