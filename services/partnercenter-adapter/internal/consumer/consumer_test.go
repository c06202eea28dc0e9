package consumer_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/auth"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/consumer"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/observe"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcclient"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pcemutest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pgstore"
)

func TestMain(m *testing.M) { os.Exit(pcemutest.Main(m)) }

const service = "partnercenter-adapter"

type harness struct {
	emu   *pcemutest.Emulator
	conn  *bus.Conn
	pool  *pgxpool.Pool
	spans *tracetest.SpanRecorder
	tp    *sdktrace.TracerProvider
}

// start wires the consumer as the service does, against the real
// emulator, JetStream and Postgres, and consumes until the test ends.
func start(t *testing.T) *harness {
	t.Helper()
	h := &harness{emu: pcemutest.Start(t), spans: tracetest.NewSpanRecorder()}
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	h.pool = storetest.NewDB(t, service, storetest.RepoMigrations(t, service))
	ctx := context.Background()
	conn, err := bus.Connect(ctx, bustest.RunServer(t), service, bus.WithTracerProvider(h.tp),
		bus.WithPropagator(propagation.TraceContext{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	h.conn = conn

	ep := &auth.Endpoint{TokenURL: h.emu.URL + "/common/oauth2/token", ClientID: pcemutest.ClientID, ClientSecret: pcemutest.ClientSecret}
	pc, err := pcclient.New(pcclient.Config{
		APIBaseURL: h.emu.URL, WebhookAPIBaseURL: h.emu.URL,
		Tokens:         auth.NewSource(auth.PasswordGrant(ep, pcemutest.Username, pcemutest.Password)),
		TracerProvider: h.tp,
	})
	if err != nil {
		t.Fatal(err)
	}
	obs, err := observe.New(pc, conn, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := consumer.New(obs, pgstore.New(h.pool), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- conn.Consume(cctx, consumer.Spec(8), cons.Handle) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consume: %v", err)
		}
	})
	return h
}

// notify publishes a notification as ingress would, inside a trace, and
// returns that trace's id.
func (h *harness) notify(t *testing.T, event, referralID, msgID string) trace.TraceID {
	t.Helper()
	ctx, span := h.tp.Tracer("test").Start(context.Background(), "ingress")
	defer span.End()
	subject, err := bus.NotificationSubject(event)
	if err != nil {
		t.Fatal(err)
	}
	n := &cosellv1.PartnerCenterNotification{
		EventName:         event,
		ResourceUri:       h.emu.URL + "/v1.0/engagements/referrals/" + referralID,
		ResourceName:      "referral",
		ResourceChangeUtc: timestamppb.Now(),
		ReceivedAt:        timestamppb.Now(),
	}
	if err := h.conn.Publish(ctx, subject, msgID, n); err != nil {
		t.Fatal(err)
	}
	return span.SpanContext().TraceID()
}

// waitFor polls cond until it holds; the long limit only stops a hung test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) streamMsgs(t *testing.T, name string) uint64 {
	t.Helper()
	s, err := h.conn.JetStream().Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func (h *harness) observed(t *testing.T, seq uint64) (*cosellv1.ReferralObserved, *jetstream.RawStreamMsg) {
	t.Helper()
	s, err := h.conn.JetStream().Stream(context.Background(), bus.StreamReferrals)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetMsg(context.Background(), seq)
	if err != nil {
		t.Fatal(err)
	}
	var m cosellv1.ReferralObserved
	if err := proto.Unmarshal(raw.Data, &m); err != nil {
		t.Fatal(err)
	}
	return &m, raw
}

// acked reports whether every notification up to and including stream
// sequence seq has been acknowledged. A message the handler failed and
// nak'd with a delay counts in neither NumPending nor NumAckPending, so
// only the ack floor proves it was handled.
func (h *harness) acked(t *testing.T, seq uint64) bool {
	t.Helper()
	c, err := h.conn.JetStream().Consumer(context.Background(), bus.StreamNotifications, consumer.Durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.AckFloor.Stream >= seq && info.NumAckPending == 0
}

func TestNotificationBecomesSnapshotInTheSameTrace(t *testing.T) {
	h := start(t)
	ref := h.emu.SeedInbound("Contoso migration", false)
	traceID := h.notify(t, "referral-created", ref.ID, "n1")

	waitFor(t, "a snapshot", func() bool { return h.streamMsgs(t, bus.StreamReferrals) == 1 })
	m, raw := h.observed(t, 1)
	if m.GetReferralId() != ref.ID || m.GetEtag() != ref.ETag || m.GetEngagementId() != ref.EngagementID {
		t.Errorf("snapshot %+v does not match the referral %+v", m, ref)
	}
	if m.GetSource() != cosellv1.ObservationSource_OBSERVATION_SOURCE_WEBHOOK || m.GetEventName() != "referral-created" {
		t.Errorf("source %s event %q", m.GetSource(), m.GetEventName())
	}
	if len(m.GetReferralJson()) == 0 || m.GetUpdatedAt() == nil || m.GetObservedAt() == nil {
		t.Error("snapshot lacks the document or its timestamps")
	}
	ref2, err := pcclient.ParseReferral(m.GetReferralJson())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := raw.Header.Get(jetstream.MsgIDHeader), observe.MsgID(ref2); got != want {
		t.Errorf("Msg-Id %q, want %q", got, want)
	}
	tp := raw.Header.Get("traceparent")
	if len(tp) < 35 || tp[3:35] != traceID.String() {
		t.Errorf("traceparent %q does not continue trace %s", tp, traceID)
	}
	// The Partner Center call's span is in the trace and names the referral.
	waitFor(t, "the GetReferral span", func() bool {
		for _, s := range h.spans.Ended() {
			if s.Name() == "partnercenter GetReferral" && s.SpanContext().TraceID() == traceID {
				for _, a := range s.Attributes() {
					if a.Key == pcclient.AttrReferralID && a.Value.AsString() == ref.ID {
						return true
					}
				}
			}
		}
		return false
	})

	// A second notification for the unchanged referral (Partner Center
	// retried) publishes nothing new: same snapshot, same Msg-Id.
	h.notify(t, "referral-created", ref.ID, "n1-retry")
	retrySeq := h.streamMsgs(t, bus.StreamNotifications)
	waitFor(t, "the retry to be handled", func() bool { return h.acked(t, retrySeq) })
	if n := h.streamMsgs(t, bus.StreamReferrals); n != 1 {
		t.Errorf("%d snapshots after a repeated notification, want 1", n)
	}

	// A change is a new snapshot; a related event is marked as such.
	h.emu.Edit(ref.ID, "Contoso migration, phase 2")
	h.notify(t, "related-referral-updated", ref.ID, "n2")
	waitFor(t, "the second snapshot", func() bool { return h.streamMsgs(t, bus.StreamReferrals) == 2 })
	if m, _ := h.observed(t, 2); m.GetSource() != cosellv1.ObservationSource_OBSERVATION_SOURCE_RELATED {
		t.Errorf("related event: source %s", m.GetSource())
	}
}

func TestUnknownReferralIsRecordedAndDropped(t *testing.T) {
	h := start(t)
	const id = "9d4e3c1a-0000-4000-8000-000000000404"
	h.notify(t, "referral-updated", id, "gone")
	goneSeq := h.streamMsgs(t, bus.StreamNotifications)
	var n int
	waitFor(t, "the missing referral row", func() bool {
		err := h.pool.QueryRow(context.Background(),
			`SELECT count(*) FROM partnercenter_adapter.missing_referrals WHERE referral_id = $1 AND msg_id = 'gone'`, id).Scan(&n)
		return err == nil && n == 1
	})
	waitFor(t, "the notification to be acknowledged", func() bool { return h.acked(t, goneSeq) })
	if got := h.streamMsgs(t, bus.StreamReferrals); got != 0 {
		t.Errorf("%d snapshots for a missing referral", got)
	}
	if got := h.streamMsgs(t, bus.StreamDeadLetters); got != 0 {
		t.Errorf("a missing referral was dead-lettered (%d)", got)
	}
}

func TestThrottledReadStillArrives(t *testing.T) {
	h := start(t)
	h.emu.AddFault(pcemutest.Fault{Endpoint: "referrals.get", Kind: "429", Count: 1, RetryAfter: 1})
	ref := h.emu.SeedInbound("throttled", false)
	h.notify(t, "referral-created", ref.ID, "throttled")
	// Throttled once, then served: the snapshot still arrives.
	waitFor(t, "a snapshot after throttling", func() bool { return h.streamMsgs(t, bus.StreamReferrals) == 1 })
	if got := h.streamMsgs(t, bus.StreamDeadLetters); got != 0 {
		t.Errorf("a throttled read was dead-lettered (%d)", got)
	}
}
