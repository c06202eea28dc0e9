package bus_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/bus/bustest"
	"github.com/cosell/cosell/libs/events/cosellv1"
)

// waitGuard bounds how long a test waits for something the broker does
// asynchronously; reaching it is a failure, never a measurement.
const waitGuard = 20 * time.Second

// harness is one in-process server with a connection whose spans and
// metrics are recorded.
type harness struct {
	url     string
	conn    *bus.Conn
	spans   *tracetest.SpanRecorder
	tracer  trace.Tracer
	metrics *sdkmetric.ManualReader
	sink    *memorySink
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{url: bustest.RunServer(t), spans: tracetest.NewSpanRecorder(), metrics: sdkmetric.NewManualReader(), sink: &memorySink{}}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.metrics))
	h.tracer = tp.Tracer("test")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := bus.Connect(ctx, h.url, "svc",
		bus.WithTracerProvider(tp), bus.WithMeterProvider(mp),
		bus.WithPropagator(propagation.TraceContext{}), bus.WithDeadLetterSink(h.sink))
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(conn.Close)
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{}); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	h.conn = conn
	return h
}

// consume runs Consume in the background and returns a function that stops
// it and returns its error.
func (h *harness) consume(t *testing.T, spec bus.ConsumerSpec, handler bus.Handler) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.conn.Consume(ctx, spec, handler) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(waitGuard):
				err = errors.New("Consume did not return after stop")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// memorySink records dead letters in memory.
type memorySink struct {
	mu   sync.Mutex
	dead []bus.DeadLetter
}

func (s *memorySink) Record(_ context.Context, dl bus.DeadLetter) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dead = append(s.dead, dl)
	return nil
}

func (s *memorySink) all() []bus.DeadLetter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]bus.DeadLetter(nil), s.dead...)
}

func referral(id string) *cosellv1.ReferralObserved {
	return &cosellv1.ReferralObserved{
		ReferralId:   id,
		EngagementId: "eng-" + id,
		Etag:         `"etag-1"`,
		Source:       cosellv1.ObservationSource_OBSERVATION_SOURCE_WEBHOOK,
		ReferralJson: []byte(`{"id":"` + id + `"}`),
	}
}

func publish(t *testing.T, h *harness, ctx context.Context, msgID string, m proto.Message) {
	t.Helper()
	if err := h.conn.Publish(ctx, bus.SubjectReferralObserved, msgID, m); err != nil {
		t.Fatalf("Publish %s: %v", msgID, err)
	}
}

func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitGuard):
		t.Fatal("timed out waiting for the broker")
		var zero T
		return zero
	}
}

var referralsSpec = bus.ConsumerSpec{
	Stream:  bus.StreamReferrals,
	Durable: "svc-referrals",
	Backoff: bus.Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
}

func TestPublishConsumeRoundTrip(t *testing.T) {
	h := newHarness(t)
	want := referral("r-1")
	publish(t, h, context.Background(), "msg-1", want)

	got := make(chan *bus.Msg, 1)
	decoded := make(chan *cosellv1.ReferralObserved, 1)
	stop := h.consume(t, referralsSpec, func(ctx context.Context, m *bus.Msg) error {
		var r cosellv1.ReferralObserved
		if err := m.Unmarshal(&r); err != nil {
			return err
		}
		got <- m
		decoded <- &r
		return nil
	})
	m := receive(t, got)
	r := receive(t, decoded)
	if err := stop(); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if !proto.Equal(r, want) {
		t.Errorf("decoded %v, want %v", r, want)
	}
	if m.Subject != bus.SubjectReferralObserved || m.MsgID != "msg-1" || m.Deliveries != 1 || m.Stream != bus.StreamReferrals || m.StreamSeq != 1 {
		t.Errorf("msg = subject %q id %q deliveries %d stream %s seq %d", m.Subject, m.MsgID, m.Deliveries, m.Stream, m.StreamSeq)
	}
	if got := m.Header.Get(bus.HeaderType); got != "cosell.v1.ReferralObserved" {
		t.Errorf("%s = %q", bus.HeaderType, got)
	}
	assertAcked(t, h, bus.StreamReferrals, referralsSpec.Durable, 1)

	if n := counter(t, h, "cosell.bus.messages.consumed"); n != 1 {
		t.Errorf("consumed counter = %d, want 1", n)
	}
	if n := counter(t, h, "cosell.bus.messages.published"); n != 1 {
		t.Errorf("published counter = %d, want 1", n)
	}
}

func TestTraceContextCrossesTheBus(t *testing.T) {
	h := newHarness(t)
	ctx, parent := h.tracer.Start(context.Background(), "webhook")
	publish(t, h, ctx, "msg-trace", referral("r-1"))
	parent.End()

	type seen struct {
		sc     trace.SpanContext
		header string
	}
	got := make(chan seen, 1)
	stop := h.consume(t, referralsSpec, func(ctx context.Context, m *bus.Msg) error {
		got <- seen{trace.SpanContextFromContext(ctx), m.Header.Get("traceparent")}
		return nil
	})
	s := receive(t, got)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if s.header == "" {
		t.Fatal("no lowercase traceparent header on the message")
	}
	if s.sc.TraceID() != parent.SpanContext().TraceID() {
		t.Fatalf("handler trace %s, want the publisher's %s", s.sc.TraceID(), parent.SpanContext().TraceID())
	}

	var producer, consumer sdktrace.ReadOnlySpan
	for _, sp := range h.spans.Ended() {
		switch sp.SpanKind() {
		case trace.SpanKindProducer:
			producer = sp
		case trace.SpanKindConsumer:
			consumer = sp
		}
	}
	if producer == nil || consumer == nil {
		t.Fatalf("want a producer and a consumer span, got %d spans", len(h.spans.Ended()))
	}
	if producer.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("producer span's parent is not the caller's span")
	}
	if consumer.Parent().SpanID() != producer.SpanContext().SpanID() || !consumer.Parent().IsRemote() {
		t.Errorf("consumer span's parent = %v, want the remote producer span %v", consumer.Parent(), producer.SpanContext())
	}
	if consumer.SpanContext().SpanID() != s.sc.SpanID() {
		t.Errorf("handler context does not carry the consumer span")
	}
	attrs := map[string]string{}
	for _, kv := range consumer.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	for k, v := range map[string]string{
		"messaging.system": "nats", "messaging.operation.type": "process",
		"messaging.destination.name": bus.SubjectReferralObserved, "messaging.consumer.group.name": referralsSpec.Durable,
		"messaging.message.id": "msg-trace", "messaging.nats.delivery_count": "1",
	} {
		if attrs[k] != v {
			t.Errorf("consumer span %s = %q, want %q", k, attrs[k], v)
		}
	}
}

func TestMsgIDDeduplicates(t *testing.T) {
	h := newHarness(t)
	for range 3 {
		publish(t, h, context.Background(), "same-id", referral("r-1"))
	}
	publish(t, h, context.Background(), "other-id", referral("r-2"))

	ctx := context.Background()
	s, err := h.conn.JetStream().Stream(ctx, bus.StreamReferrals)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Fatalf("stream holds %d messages, want 2 (repeats of one Msg-Id dropped)", info.State.Msgs)
	}
}

func TestPublishNeedsMsgIDAndAStream(t *testing.T) {
	h := newHarness(t)
	if err := h.conn.Publish(context.Background(), bus.SubjectReferralObserved, "", referral("r")); !errors.Is(err, bus.ErrNoMsgID) {
		t.Fatalf("empty msg id: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.conn.Publish(ctx, "referral.observd.v1", "id", referral("r")); err == nil {
		t.Fatal("publish to a subject no stream holds succeeded")
	}
}

func TestHandlerErrorIsRedelivered(t *testing.T) {
	h := newHarness(t)
	publish(t, h, context.Background(), "msg-retry", referral("r-1"))

	deliveries := make(chan uint64, 10)
	done := make(chan struct{})
	stop := h.consume(t, referralsSpec, func(ctx context.Context, m *bus.Msg) error {
		deliveries <- m.Deliveries
		if m.Deliveries < 3 {
			return errors.New("postgres unavailable")
		}
		close(done)
		return nil
	})
	receive(t, done)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	close(deliveries)
	var got []uint64
	for d := range deliveries {
		got = append(got, d)
	}
	if fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("deliveries = %v, want [1 2 3]", got)
	}
	assertAcked(t, h, bus.StreamReferrals, referralsSpec.Durable, 1)
	if len(h.sink.all()) != 0 {
		t.Fatal("a message that eventually succeeded was dead-lettered")
	}
	if n := counter(t, h, "cosell.bus.messages.failed"); n != 2 {
		t.Errorf("failed counter = %d, want 2", n)
	}
}

// deadLetters consumes the service's dead-letter subject.
func deadLetters(t *testing.T, h *harness) <-chan jetstream.Msg {
	t.Helper()
	ctx := context.Background()
	c, err := h.conn.JetStream().OrderedConsumer(ctx, bus.StreamDeadLetters, jetstream.OrderedConsumerConfig{FilterSubjects: []string{bus.DeadLetterSubject("svc")}})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan jetstream.Msg, 10)
	cc, err := c.Consume(func(m jetstream.Msg) { out <- m })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cc.Stop)
	return out
}

func TestMaxDeliverExhaustedGoesToDeadLetter(t *testing.T) {
	h := newHarness(t)
	dls := deadLetters(t, h)
	ctx, span := h.tracer.Start(context.Background(), "origin")
	payload := referral("r-poison")
	publish(t, h, ctx, "msg-poison", payload)
	span.End()

	var calls atomic.Int32
	spec := referralsSpec
	spec.MaxDeliver = 3
	stop := h.consume(t, spec, func(ctx context.Context, m *bus.Msg) error {
		calls.Add(1)
		return fmt.Errorf("insert link: %w", errors.New("constraint violated\nsecond line"))
	})
	dl := receive(t, dls)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 3 {
		t.Fatalf("handler called %d times, want MaxDeliver = 3", n)
	}
	want := map[string]string{
		bus.HeaderDLReason:     "insert link: constraint violated second line",
		bus.HeaderDLPermanent:  "false",
		bus.HeaderDLSubject:    bus.SubjectReferralObserved,
		bus.HeaderDLStream:     bus.StreamReferrals,
		bus.HeaderDLStreamSeq:  "1",
		bus.HeaderDLConsumer:   spec.Durable,
		bus.HeaderDLMsgID:      "msg-poison",
		bus.HeaderDLDeliveries: "3",
		bus.HeaderType:         "cosell.v1.ReferralObserved",
	}
	for k, v := range want {
		if got := dl.Headers().Get(k); got != v {
			t.Errorf("dead letter header %s = %q, want %q", k, got, v)
		}
	}
	if dl.Subject() != "deadletter.v1.svc" {
		t.Errorf("dead letter subject %q", dl.Subject())
	}
	var got cosellv1.ReferralObserved
	if err := proto.Unmarshal(dl.Data(), &got); err != nil || !proto.Equal(&got, payload) {
		t.Errorf("dead letter payload = %v (%v), want the original", &got, err)
	}
	if !strings.Contains(dl.Headers().Get("traceparent"), span.SpanContext().TraceID().String()) {
		t.Errorf("dead letter left the original trace: %q", dl.Headers().Get("traceparent"))
	}

	recorded := h.sink.all()
	if len(recorded) != 1 {
		t.Fatalf("sink recorded %d dead letters, want 1", len(recorded))
	}
	r := recorded[0]
	if r.Service != "svc" || r.Consumer != spec.Durable || r.StreamSeq != 1 || r.Deliveries != 3 || r.Permanent ||
		!strings.Contains(r.Reason, "constraint violated") || r.MsgID != "msg-poison" || r.TraceID != span.SpanContext().TraceID().String() {
		t.Errorf("recorded dead letter %+v", r)
	}
	assertAcked(t, h, bus.StreamReferrals, spec.Durable, 1)
	if n := counter(t, h, "cosell.bus.messages.dead_lettered"); n != 1 {
		t.Errorf("dead_lettered counter = %d, want 1", n)
	}
}

func TestPermanentErrorDeadLettersAtOnce(t *testing.T) {
	h := newHarness(t)
	dls := deadLetters(t, h)
	publish(t, h, context.Background(), "msg-bad", referral("r-bad"))
	// A payload that is not a ReferralObserved: Unmarshal's error is permanent.
	if err := h.conn.Publish(context.Background(), bus.SubjectReferralObserved, "msg-garbage", &cosellv1.SalesforceResult{CommandId: "x", ErrorFields: []string{"a"}, Created: true}); err != nil {
		t.Fatal(err)
	}

	var calls atomic.Int32
	stop := h.consume(t, referralsSpec, func(ctx context.Context, m *bus.Msg) error {
		calls.Add(1)
		if m.MsgID == "msg-bad" {
			return bus.Permanent(errors.New("REQUIRED_FIELD_MISSING: CloseDate"))
		}
		var r cosellv1.ReferralObserved
		return m.Unmarshal(&r)
	})
	first, second := receive(t, dls), receive(t, dls)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("handler called %d times, want once per message", n)
	}
	reasons := map[string]string{}
	for _, dl := range []jetstream.Msg{first, second} {
		if dl.Headers().Get(bus.HeaderDLPermanent) != "true" || dl.Headers().Get(bus.HeaderDLDeliveries) != "1" {
			t.Errorf("dead letter headers %v", dl.Headers())
		}
		reasons[dl.Headers().Get(bus.HeaderDLMsgID)] = dl.Headers().Get(bus.HeaderDLReason)
	}
	if reasons["msg-bad"] != "REQUIRED_FIELD_MISSING: CloseDate" {
		t.Errorf("reason of msg-bad = %q", reasons["msg-bad"])
	}
	if !strings.Contains(reasons["msg-garbage"], "decode referral.observed.v1 as cosell.v1.ReferralObserved") {
		t.Errorf("reason of msg-garbage = %q", reasons["msg-garbage"])
	}
	assertAcked(t, h, bus.StreamReferrals, referralsSpec.Durable, 2)
}

func TestDeliveryPastTheLimitIsParkedWithoutRunningTheHandler(t *testing.T) {
	h := newHarness(t)
	dls := deadLetters(t, h)
	publish(t, h, context.Background(), "msg-crash", referral("r-1"))

	// Simulate a replica that received the message on its last allowed
	// delivery and died before settling it.
	spec := referralsSpec
	spec.MaxDeliver = 1
	ctx := context.Background()
	cons, err := h.conn.EnsureConsumer(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(waitGuard))
	if err != nil {
		t.Fatal(err)
	}
	for m := range batch.Messages() {
		if err := m.Nak(); err != nil {
			t.Fatal(err)
		}
	}

	var calls atomic.Int32
	stop := h.consume(t, spec, func(context.Context, *bus.Msg) error {
		calls.Add(1)
		return nil
	})
	dl := receive(t, dls)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 0 {
		t.Fatal("handler ran on a delivery past MaxDeliver")
	}
	if got := dl.Headers().Get(bus.HeaderDLDeliveries); got != "2" {
		t.Errorf("deliveries header = %q, want 2", got)
	}
	if got := dl.Headers().Get(bus.HeaderDLReason); !strings.Contains(got, "without being settled") {
		t.Errorf("reason = %q", got)
	}
}

func TestStopWaitsForInFlightHandlers(t *testing.T) {
	h := newHarness(t)
	publish(t, h, context.Background(), "msg-slow", referral("r-1"))

	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	var ctxErr atomic.Value
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- h.conn.Consume(ctx, referralsSpec, func(hctx context.Context, m *bus.Msg) error {
			close(started)
			<-release
			ctxErr.Store(fmt.Sprint(hctx.Err()))
			finished.Store(true)
			return nil
		})
	}()
	receive(t, started)
	cancel()
	// Consume must keep waiting for the handler. Give a premature return
	// time to show; this can only miss a bug, never fail a correct Consume.
	select {
	case err := <-done:
		t.Fatalf("Consume returned (%v) while a handler was in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := receive(t, done); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if !finished.Load() {
		t.Fatal("Consume returned before the in-flight handler finished")
	}
	if got := ctxErr.Load(); got != "<nil>" {
		t.Errorf("handler context was cancelled by stop: %v", got)
	}
	assertAcked(t, h, bus.StreamReferrals, referralsSpec.Durable, 1)
}

func TestConcurrencyIsBounded(t *testing.T) {
	h := newHarness(t)
	const n, limit = 12, 3
	for i := range n {
		publish(t, h, context.Background(), fmt.Sprintf("msg-%d", i), referral(fmt.Sprint(i)))
	}
	var inFlight, peak, handled atomic.Int32
	full := make(chan struct{})
	var fullOnce sync.Once
	all := make(chan struct{})
	spec := referralsSpec
	spec.Concurrency = limit
	stop := h.consume(t, spec, func(ctx context.Context, m *bus.Msg) error {
		now := inFlight.Add(1)
		for {
			p := peak.Load()
			if now <= p || peak.CompareAndSwap(p, now) {
				break
			}
		}
		if now == limit {
			fullOnce.Do(func() { close(full) })
		}
		// The first handlers wait until the limit is reached, proving that
		// `limit` run at once; a smaller limit would never get here.
		<-full
		inFlight.Add(-1)
		if handled.Add(1) == n {
			close(all)
		}
		return nil
	})
	receive(t, all)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p != limit {
		t.Fatalf("peak handlers in flight = %d, want %d", p, limit)
	}
	assertAcked(t, h, bus.StreamReferrals, spec.Durable, n)
}

func TestReplayRepublishesADeadLetter(t *testing.T) {
	h := newHarness(t)
	publish(t, h, context.Background(), "msg-fixme", referral("r-1"))
	var fixed atomic.Bool
	handled := make(chan *bus.Msg, 1)
	spec := referralsSpec
	stop := h.consume(t, spec, func(ctx context.Context, m *bus.Msg) error {
		if !fixed.Load() {
			return bus.Permanent(errors.New("mapping has no stage for status"))
		}
		handled <- m
		return nil
	})
	var dl bus.DeadLetter
	for deadline := time.Now().Add(waitGuard); ; {
		if got := h.sink.all(); len(got) == 1 {
			dl = got[0]
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("message was not dead-lettered")
		}
		time.Sleep(5 * time.Millisecond)
	}
	fixed.Store(true)
	for range 2 { // a double-clicked replay is published once
		if err := h.conn.Replay(context.Background(), dl); err != nil {
			t.Fatalf("Replay: %v", err)
		}
	}
	m := receive(t, handled)
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var r cosellv1.ReferralObserved
	if err := m.Unmarshal(&r); err != nil || r.GetReferralId() != "r-1" {
		t.Fatalf("replayed payload %v, %v", &r, err)
	}
	if m.Header.Get(bus.HeaderDLReason) != "" || !strings.HasPrefix(m.MsgID, "replay:") {
		t.Errorf("replayed message headers %v", m.Header)
	}
	info, err := h.conn.JetStream().Stream(context.Background(), bus.StreamReferrals)
	if err != nil {
		t.Fatal(err)
	}
	if st := info.CachedInfo().State; st.LastSeq != 2 {
		t.Errorf("stream last seq = %d, want 2 (original + one replay)", st.LastSeq)
	}
}

func TestConnectRefusesOldServer(t *testing.T) {
	url := fakeServer(t, "2.9.25")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := bus.Connect(ctx, url, "svc")
	if err == nil {
		conn.Close()
		t.Fatal("Connect accepted nats-server 2.9.25")
	}
	if !errors.Is(err, bus.ErrServerTooOld) || !strings.Contains(err.Error(), "2.9.25") || !strings.Contains(err.Error(), "2.10.0") {
		t.Fatalf("error %q does not say the server is too old", err)
	}
}

func TestConnectRejectsBadServiceName(t *testing.T) {
	if _, err := bus.Connect(context.Background(), "nats://127.0.0.1:1", "my.service"); err == nil {
		t.Fatal("accepted a service name with a dot")
	}
}

// fakeServer speaks just enough of the NATS protocol to announce version
// and complete a client handshake.
func fakeServer(t *testing.T, version string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "INFO {\"server_id\":\"FAKE\",\"version\":%q,\"proto\":1,\"headers\":true,\"max_payload\":1048576}\r\n", version)
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(line, "PING") {
						fmt.Fprint(c, "PONG\r\n")
					}
				}
			}()
		}
	}()
	return "nats://" + ln.Addr().String()
}

// assertAcked checks that the consumer has acknowledged n messages and has
// none outstanding. Acks are plain publishes the server applies on its own
// goroutine, so a consumer-info request can overtake the last ack: the
// check waits (up to waitGuard) for the settlement rather than sampling once.
func assertAcked(t *testing.T, h *harness, stream, durable string, n uint64) {
	t.Helper()
	ctx := context.Background()
	c, err := h.conn.JetStream().Consumer(ctx, stream, durable)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, fmt.Sprintf("consumer %s to settle %d messages", durable, n), func() error {
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.AckFloor.Stream != n || info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("ack floor %d, ack pending %d, pending %d",
				info.AckFloor.Stream, info.NumAckPending, info.NumPending)
		}
		return nil
	})
}

// counter sums an Int64 counter over all attribute sets.
func counter(t *testing.T, h *harness, name string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.metrics.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					total += dp.Value
				}
			}
		}
	}
	return total
}

func TestTraceContextIsCarriedWithoutAnInstalledPropagator(t *testing.T) {
	url := bustest.RunServer(t)
	tp := sdktrace.NewTracerProvider()
	ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
	defer cancel()
	conn, err := bus.Connect(ctx, url, "svc", bus.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.EnsureStreams(ctx, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	pctx, span := tp.Tracer("test").Start(ctx, "origin")
	if err := conn.Publish(pctx, bus.SubjectReferralObserved, "m", referral("r")); err != nil {
		t.Fatal(err)
	}
	span.End()
	s, err := conn.JetStream().Stream(ctx, bus.StreamReferrals)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := raw.Header.Get("traceparent"); !strings.Contains(got, span.SpanContext().TraceID().String()) {
		t.Fatalf("traceparent = %q, want the publisher's trace", got)
	}
}

func TestReadyAndDrain(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
	defer cancel()
	if err := h.conn.Ready(ctx); err != nil {
		t.Fatalf("Ready on a live connection: %v", err)
	}
	publish(t, h, ctx, "m-before-drain", referral("r"))
	if err := h.conn.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	if !h.conn.NATS().IsClosed() {
		t.Fatal("connection still open after Drain")
	}
	if err := h.conn.Ready(ctx); err == nil {
		t.Fatal("Ready on a drained connection returned nil")
	}
	if err := h.conn.Drain(ctx); err != nil {
		t.Fatalf("second Drain: %v", err)
	}
}

// waitFor polls cond until it holds or waitGuard passes.
func waitFor(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitGuard)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, still waiting for %s: %v", waitGuard, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConsumerDeletedUnderUsIsReestablished(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
	defer cancel()
	seen := make(chan string, 16)
	h.consume(t, referralsSpec, func(ctx context.Context, m *bus.Msg) error {
		seen <- m.MsgID
		return nil
	})
	publish(t, h, ctx, "before", referral("r-1"))
	if got := receive(t, seen); got != "before" {
		t.Fatalf("first message %q", got)
	}
	waitFor(t, "readiness", func() error { return h.conn.Ready(ctx) })

	if err := h.conn.JetStream().DeleteConsumer(ctx, bus.StreamReferrals, referralsSpec.Durable); err != nil {
		t.Fatalf("DeleteConsumer: %v", err)
	}
	publish(t, h, ctx, "after", referral("r-2"))
	// The re-created consumer starts from the stream's beginning again, so
	// "before" may come back (handlers are idempotent through the inbox);
	// "after" must arrive.
	for got := ""; got != "after"; {
		got = receive(t, seen)
	}
	waitFor(t, "readiness after re-establishing", func() error { return h.conn.Ready(ctx) })
	if n := counter(t, h, "cosell.bus.consumer.restarts"); n < 1 {
		t.Errorf("consumer restarts counter = %d, want ≥ 1", n)
	}
}

func TestConsumeWaitsForItsStreamAndIsNotReadyMeanwhile(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
	defer cancel()
	spec := bus.ConsumerSpec{Stream: "LATE", Durable: "svc-late"}
	seen := make(chan string, 1)
	stop := h.consume(t, spec, func(ctx context.Context, m *bus.Msg) error {
		seen <- m.MsgID
		return nil
	})
	waitFor(t, "Ready to name the missing consumer", func() error {
		err := h.conn.Ready(ctx)
		if err == nil || !strings.Contains(err.Error(), "svc-late") {
			return fmt.Errorf("Ready = %v", err)
		}
		return nil
	})
	if _, err := h.conn.JetStream().CreateStream(ctx, jetstream.StreamConfig{Name: "LATE", Subjects: []string{"late.>"}}); err != nil {
		t.Fatalf("CreateStream: %v", err)
	}
	if _, err := h.conn.JetStream().Publish(ctx, "late.x", []byte("x"), jetstream.WithMsgID("late-1")); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if got := receive(t, seen); got != "late-1" {
		t.Fatalf("got %q", got)
	}
	waitFor(t, "readiness once the stream exists", func() error { return h.conn.Ready(ctx) })
	if err := stop(); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if err := h.conn.Ready(ctx); err != nil {
		t.Fatalf("Ready after the consumer stopped: %v", err)
	}
}

func TestConsumeReturnsWhatRetryingCannotFix(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitGuard)
	defer cancel()
	// A durable that exists with a deliver policy ours would have to
	// change, which the server refuses to update.
	if _, err := h.conn.JetStream().CreateConsumer(ctx, bus.StreamReferrals, jetstream.ConsumerConfig{
		Durable: "svc-bad", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverNewPolicy,
	}); err != nil {
		t.Fatalf("CreateConsumer: %v", err)
	}
	spec := bus.ConsumerSpec{Stream: bus.StreamReferrals, Durable: "svc-bad"}
	err := h.conn.Consume(ctx, spec, func(context.Context, *bus.Msg) error { return nil })
	if err == nil || ctx.Err() != nil {
		t.Fatalf("Consume over an incompatible durable = %v (ctx %v), want the server's rejection", err, ctx.Err())
	}
	if !strings.Contains(err.Error(), "svc-bad") {
		t.Errorf("error %q does not name the consumer", err)
	}
}
