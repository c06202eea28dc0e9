package webhook_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
	cosellv1 "github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/ingress/internal/notification"
	"github.com/cosell/cosell/services/ingress/internal/signature"
	"github.com/cosell/cosell/services/ingress/internal/signature/signaturetest"
	"github.com/cosell/cosell/services/ingress/internal/testevents"
	"github.com/cosell/cosell/services/ingress/internal/webhook"
)

const referralURI = "https://api.partnercenter.microsoft.com/engagements/v1/referrals/8e1c0a7f-0001"

func referralBody(event, changed string) []byte {
	return []byte(fmt.Sprintf(`{"EventName":%q,"ResourceUri":%q,"ResourceName":"referral","AuditUri":null,"ResourceChangeUtcDate":%q}`,
		event, referralURI, changed))
}

// harness is ingress's request path wired as in production: the real
// verifier (with a fake certificate download), a real JetStream server,
// a real Postgres database, OpenTelemetry SDK recorders.
type harness struct {
	t       testing.TB
	nats    *server.Server
	conn    *bus.Conn
	pool    *pgxpool.Pool
	ca      *signaturetest.CA
	signer  *signaturetest.Signer
	fetcher *signaturetest.Fetcher
	spans   *tracetest.SpanRecorder
	metrics *sdkmetric.ManualReader
	handler http.Handler
}

type harnessOptions struct {
	maxBody        int64
	publishTimeout time.Duration
	withDB         bool
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	if o.maxBody == 0 {
		o.maxBody = 64 << 10
	}
	if o.publishTimeout == 0 {
		o.publishTimeout = 2 * time.Second
	}
	ctx := context.Background()
	h := &harness{t: t, spans: tracetest.NewSpanRecorder(), metrics: sdkmetric.NewManualReader()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.metrics))
	prop := propagation.TraceContext{}
	log := slog.New(slog.DiscardHandler)

	h.nats = bustest.Start(t)
	conn, err := bus.Connect(ctx, h.nats.ClientURL(), "ingress",
		bus.WithLogger(log), bus.WithTracerProvider(tp), bus.WithMeterProvider(mp), bus.WithPropagator(prop))
	if err != nil {
		t.Fatalf("bus.Connect: %v", err)
	}
	t.Cleanup(conn.Close)
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{}); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	h.conn = conn

	h.ca = signaturetest.NewCA(t, signaturetest.Organization)
	h.signer = h.ca.Issue(t, signaturetest.LeafOptions{})
	h.fetcher = signaturetest.NewFetcher()
	h.fetcher.Serve(signaturetest.CertURL, h.signer.DER)
	certs, err := signature.NewCertStore(signature.CertStoreConfig{
		Fetcher: h.fetcher, Roots: h.ca.Pool(), Organization: signaturetest.Organization,
	})
	if err != nil {
		t.Fatalf("NewCertStore: %v", err)
	}

	var recorder webhook.TestRecorder = refuseTests{}
	if o.withDB {
		h.pool = storetest.NewDB(t, "ingress", storetest.RepoMigrations(t, "ingress"))
		recorder = testevents.New(h.pool)
	}
	wh, err := webhook.New(
		webhook.Config{MaxBodyBytes: o.maxBody, PublishTimeout: o.publishTimeout},
		webhook.Deps{
			Verifier:  signature.NewVerifier(signature.URLPolicy{Hosts: signature.DefaultCertHosts()}, certs),
			Publisher: conn,
			Tests:     recorder,
			Subject:   bus.NotificationSubject,
			Logger:    log,
			Meter:     mp.Meter("ingress"),
			Tracer:    tp.Tracer("ingress"),
		})
	if err != nil {
		t.Fatalf("webhook.New: %v", err)
	}
	h.handler = webhook.Instrument(wh, tp, mp, prop)
	return h
}

// refuseTests is the recorder of harnesses without a database: a test
// event reaching it is a test bug.
type refuseTests struct{}

func (refuseTests) RecordTest(context.Context, notification.Notification, string, time.Time) error {
	return errors.New("this harness has no database")
}

// deliver POSTs body with headers and returns the status and decoded answer.
func (h *harness) deliver(hdr http.Header, body []byte) (int, map[string]string) {
	h.t.Helper()
	req := httptest.NewRequest(http.MethodPost, webhook.Path, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, req)
	var ans map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &ans); err != nil {
		h.t.Fatalf("answer %q is not JSON: %v", rec.Body.String(), err)
	}
	return rec.Code, ans
}

// signed returns Partner Center's headers for body.
func (h *harness) signed(body []byte) http.Header {
	return h.signer.Headers(h.t, body, signaturetest.CertURL)
}

// stored returns every message in the notifications stream.
func (h *harness) stored() []*jetstream.RawStreamMsg {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.conn.JetStream().Stream(ctx, bus.StreamNotifications)
	if err != nil {
		h.t.Fatalf("stream: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatalf("stream info: %v", err)
	}
	var msgs []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			h.t.Fatalf("get message %d: %v", seq, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// outcomes returns the webhooks-received counter by outcome.
func (h *harness) outcomes() map[string]int64 {
	h.t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.metrics.Collect(context.Background(), &rm); err != nil {
		h.t.Fatalf("collect metrics: %v", err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "ingress.webhooks.received" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				v, _ := dp.Attributes.Value("outcome")
				out[v.AsString()] += dp.Value
			}
		}
	}
	return out
}

func TestReferralEventIsPublishedAfterAck(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	body := referralBody("referral-created", "2018-02-17T00:05:39.5485487+00:00")

	status, ans := h.deliver(h.signed(body), body)
	if status != http.StatusOK || ans["status"] != webhook.OutcomeAccepted {
		t.Fatalf("answer %d %v, want 200 accepted", status, ans)
	}
	sum := sha256.Sum256([]byte("referral-created\n" + referralURI + "\n2018-02-17T00:05:39.5485487Z"))
	wantID := hex.EncodeToString(sum[:])
	if ans["msgId"] != wantID {
		t.Errorf("msgId %q, want %q", ans["msgId"], wantID)
	}

	msgs := h.stored()
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(msgs))
	}
	m := msgs[0]
	if m.Subject != "pc.notification.v1.referral-created" {
		t.Errorf("subject %q", m.Subject)
	}
	if got := m.Header.Get("Nats-Msg-Id"); got != wantID {
		t.Errorf("Nats-Msg-Id %q, want %q", got, wantID)
	}
	var n cosellv1.PartnerCenterNotification
	if err := proto.Unmarshal(m.Data, &n); err != nil {
		t.Fatalf("payload: %v", err)
	}
	wantChange := time.Date(2018, 2, 17, 0, 5, 39, 548548700, time.UTC)
	if n.GetEventName() != "referral-created" || n.GetResourceUri() != referralURI || n.GetResourceName() != "referral" ||
		n.GetAuditUri() != "" || n.GetReferralId() != "8e1c0a7f-0001" || !n.GetResourceChangeUtc().AsTime().Equal(wantChange) ||
		n.GetReceivedAt().AsTime().IsZero() {
		t.Errorf("payload %v", &n)
	}

	// The server span is a root; the publish span is its child and the
	// stored message carries the server span's trace.
	var serverSpan, publishSpan sdktrace.ReadOnlySpan
	for _, s := range h.spans.Ended() {
		switch s.Name() {
		case "POST " + webhook.Path:
			serverSpan = s
		case "send pc.notification.v1.referral-created":
			publishSpan = s
		}
	}
	if serverSpan == nil || publishSpan == nil {
		t.Fatalf("spans %v: want the server and the publish span", spanNames(h.spans.Ended()))
	}
	if serverSpan.Parent().IsValid() {
		t.Errorf("server span has parent %v, want a root", serverSpan.Parent())
	}
	if publishSpan.Parent().SpanID() != serverSpan.SpanContext().SpanID() {
		t.Errorf("publish span's parent is %v, want the server span", publishSpan.Parent().SpanID())
	}
	if tp := m.Header.Get("traceparent"); !strings.Contains(tp, serverSpan.SpanContext().TraceID().String()) {
		t.Errorf("traceparent %q does not carry trace %s", tp, serverSpan.SpanContext().TraceID())
	}
	attrs := map[string]string{}
	for _, a := range serverSpan.Attributes() {
		attrs[string(a.Key)] = a.Value.Emit()
	}
	if attrs["partnercenter.event_name"] != "referral-created" || attrs["partnercenter.referral_id"] != "8e1c0a7f-0001" {
		t.Errorf("server span attributes %v", attrs)
	}

	// Partner Center's retry of the same change is acknowledged and
	// de-duplicated by JetStream.
	status, ans = h.deliver(h.signed(body), body)
	if status != http.StatusOK || ans["msgId"] != wantID {
		t.Fatalf("retry answered %d %v", status, ans)
	}
	if n := len(h.stored()); n != 1 {
		t.Errorf("%d messages after a retry, want 1", n)
	}
	if got := h.outcomes()[webhook.OutcomeAccepted]; got != 2 {
		t.Errorf("accepted count %d, want 2", got)
	}
}

func TestIncomingTraceparentIsNotContinued(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	body := referralBody("referral-updated", "2018-02-17T00:05:39Z")
	hdr := h.signed(body)
	const foreign = "4bf92f3577b34da6a3ce929d0e0e4736"
	hdr.Set("traceparent", "00-"+foreign+"-00f067aa0ba902b7-01")
	if status, ans := h.deliver(hdr, body); status != http.StatusOK {
		t.Fatalf("answer %d %v", status, ans)
	}
	for _, s := range h.spans.Ended() {
		if s.SpanContext().TraceID().String() == foreign {
			t.Fatalf("span %q continued the caller's trace", s.Name())
		}
	}
}

func TestRejectedRequestsPublishNothing(t *testing.T) {
	tests := []struct {
		name        string
		request     func(h *harness) (http.Header, []byte)
		wantStatus  int
		wantOutcome string
		wantFetches int64
	}{
		{
			name: "tampered body",
			request: func(h *harness) (http.Header, []byte) {
				body := referralBody("referral-created", "2018-02-17T00:05:39Z")
				return h.signed(body), referralBody("referral-created", "2018-02-17T00:05:40Z")
			},
			wantStatus: http.StatusUnauthorized, wantOutcome: webhook.OutcomeBadSignature, wantFetches: 1,
		},
		{
			name: "signed by a forger",
			request: func(h *harness) (http.Header, []byte) {
				body := referralBody("referral-created", "2018-02-17T00:05:39Z")
				forger := h.signer.WithKeyOf(h.ca.Issue(h.t, signaturetest.LeafOptions{}))
				return forger.Headers(h.t, body, signaturetest.CertURL), body
			},
			wantStatus: http.StatusUnauthorized, wantOutcome: webhook.OutcomeBadSignature, wantFetches: 1,
		},
		{
			name: "untrusted certificate host",
			request: func(h *harness) (http.Header, []byte) {
				body := referralBody("referral-created", "2018-02-17T00:05:39Z")
				u := "https://attacker.example/cert/pcnotifications-dispatch.microsoft.com.cer"
				h.fetcher.Serve(u, h.signer.DER)
				return h.signer.Headers(h.t, body, u), body
			},
			wantStatus: http.StatusUnauthorized, wantOutcome: webhook.OutcomeUntrustedCertHost,
		},
		{
			name: "wrong organisation",
			request: func(h *harness) (http.Header, []byte) {
				body := referralBody("referral-created", "2018-02-17T00:05:39Z")
				contoso := h.ca.Issue(h.t, signaturetest.LeafOptions{Organization: "Contoso Ltd"})
				h.fetcher.Serve(signaturetest.CertURL, contoso.DER)
				return contoso.Headers(h.t, body, signaturetest.CertURL), body
			},
			wantStatus: http.StatusUnauthorized, wantOutcome: webhook.OutcomeBadSignature, wantFetches: 1,
		},
		{
			name: "no signature headers",
			request: func(h *harness) (http.Header, []byte) {
				return http.Header{}, referralBody("referral-created", "2018-02-17T00:05:39Z")
			},
			wantStatus: http.StatusUnauthorized, wantOutcome: webhook.OutcomeBadSignature,
		},
		{
			name: "signed but not JSON",
			request: func(h *harness) (http.Header, []byte) {
				body := []byte("EventName=referral-created")
				return h.signed(body), body
			},
			wantStatus: http.StatusBadRequest, wantOutcome: webhook.OutcomeMalformed, wantFetches: 1,
		},
		{
			name: "signed but missing fields",
			request: func(h *harness) (http.Header, []byte) {
				body := []byte(`{"EventName":"referral-created"}`)
				return h.signed(body), body
			},
			wantStatus: http.StatusBadRequest, wantOutcome: webhook.OutcomeMalformed, wantFetches: 1,
		},
		{
			name: "signed but an event we do not handle",
			request: func(h *harness) (http.Header, []byte) {
				body := []byte(`{"EventName":"subscription-updated","ResourceUri":"https://api.partnercenter.microsoft.com/v1/customers/1/subscriptions/2","ResourceName":"subscription","ResourceChangeUtcDate":"2018-02-17T00:05:39Z"}`)
				return h.signed(body), body
			},
			wantStatus: http.StatusBadRequest, wantOutcome: webhook.OutcomeMalformed, wantFetches: 1,
		},
		{
			name: "too large",
			request: func(h *harness) (http.Header, []byte) {
				body := referralBody("referral-created", "2018-02-17T00:05:39Z")
				body = append(body[:len(body)-1], []byte(`,"Padding":"`+strings.Repeat("x", 2048)+`"}`)...)
				return h.signed(body), body
			},
			wantStatus: http.StatusRequestEntityTooLarge, wantOutcome: webhook.OutcomeTooLarge,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{maxBody: 1024})
			hdr, body := tc.request(h)
			status, ans := h.deliver(hdr, body)
			if status != tc.wantStatus || ans["status"] != tc.wantOutcome {
				t.Fatalf("answer %d %v, want %d %s", status, ans, tc.wantStatus, tc.wantOutcome)
			}
			if n := len(h.stored()); n != 0 {
				t.Errorf("%d messages published, want none", n)
			}
			if got := h.fetcher.Calls(); got != tc.wantFetches {
				t.Errorf("certificate fetched %d times, want %d", got, tc.wantFetches)
			}
			if got := h.outcomes()[tc.wantOutcome]; got != 1 {
				t.Errorf("%s count %d, want 1", tc.wantOutcome, got)
			}
		})
	}
}

func TestBrokerDownAnswers503(t *testing.T) {
	h := newHarness(t, harnessOptions{publishTimeout: 300 * time.Millisecond})
	h.nats.Shutdown()
	h.nats.WaitForShutdown()

	body := referralBody("referral-created", "2018-02-17T00:05:39Z")
	status, ans := h.deliver(h.signed(body), body)
	if status != http.StatusServiceUnavailable || ans["status"] != webhook.OutcomeBrokerUnavailable {
		t.Fatalf("answer %d %v, want 503 broker_unavailable", status, ans)
	}
	if got := h.outcomes()[webhook.OutcomeBrokerUnavailable]; got != 1 {
		t.Errorf("broker_unavailable count %d, want 1", got)
	}
}

func TestTestEventIsRecordedNotPublished(t *testing.T) {
	h := newHarness(t, harnessOptions{withDB: true})
	body := []byte(`{"EventName":"test-created","ResourceUri":"https://api.partnercenter.microsoft.com/webhooks/v1/registration/validationEvents/c0ffee","ResourceName":"test","AuditUri":null,"ResourceChangeUtcDate":"2017-11-16T16:19:06.3520276+00:00"}`)

	status, ans := h.deliver(h.signed(body), body)
	if status != http.StatusOK || ans["status"] != webhook.OutcomeTestRecorded {
		t.Fatalf("answer %d %v, want 200 test_recorded", status, ans)
	}
	if n := len(h.stored()); n != 0 {
		t.Errorf("%d messages published for a test event, want none", n)
	}
	var count int
	var uri, traceID string
	err := h.pool.QueryRow(context.Background(),
		`SELECT count(*) OVER (), resource_uri, trace_id FROM ingress.test_events`).Scan(&count, &uri, &traceID)
	if err != nil {
		t.Fatalf("query test_events: %v", err)
	}
	if count != 1 || !strings.HasSuffix(uri, "/c0ffee") || len(traceID) != 32 {
		t.Errorf("test_events: %d rows, uri %q, trace %q", count, uri, traceID)
	}

	// Unsigned test events are not recorded.
	if status, _ := h.deliver(http.Header{}, body); status != http.StatusUnauthorized {
		t.Errorf("unsigned test event answered %d, want 401", status)
	}
	// With the database gone, Partner Center is told to retry.
	h.pool.Close()
	if status, ans := h.deliver(h.signed(body), body); status != http.StatusServiceUnavailable || ans["status"] != webhook.OutcomeStoreUnavailable {
		t.Errorf("answer without a database %d %v, want 503 store_unavailable", status, ans)
	}
}

func spanNames(spans []sdktrace.ReadOnlySpan) []string {
	var names []string
	for _, s := range spans {
		names = append(names, s.Name())
	}
	return names
}
