package bus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// Handler processes one message. It returns nil only after the message's
// effects are durable (its Postgres transaction committed), because the bus
// acknowledges the message as soon as it returns nil. Any other error is
// retried later, unless wrapped with Permanent; RetryAfter sets the delay.
//
// The context is not cancelled when Consume is asked to stop, so a handler
// in flight can finish its transaction; it is cancelled after the
// consumer's HandlerTimeout.
type Handler func(ctx context.Context, m *Msg) error

// Msg is one delivery of a message to a handler.
type Msg struct {
	// Subject is the subject the message was published on.
	Subject string
	// MsgID is the publisher's Nats-Msg-Id, the natural inbox key.
	MsgID string
	// Header holds the message's headers; treat it as read-only.
	Header nats.Header
	// Data is the marshalled payload.
	Data []byte
	// Deliveries counts deliveries of this message, 1 on the first.
	Deliveries uint64
	// Stream is the stream that holds the message.
	Stream string
	// StreamSeq is the message's sequence in Stream.
	StreamSeq uint64
	// Published is when JetStream stored the message.
	Published time.Time

	raw jetstream.Msg
}

// Unmarshal decodes the payload into m. A payload that does not decode will
// never decode, so the error is marked Permanent: returning it from a
// handler parks the message at once.
func (m *Msg) Unmarshal(into proto.Message) error {
	if err := proto.Unmarshal(m.Data, into); err != nil {
		return Permanent(fmt.Errorf("decode %s as %s: %w", m.Subject, into.ProtoReflect().Descriptor().FullName(), err))
	}
	return nil
}

// InProgress tells JetStream the handler is still working, resetting the
// consumer's AckWait, so a slow external call does not cause a redelivery
// to another replica while this one is still busy.
func (m *Msg) InProgress() error {
	if err := m.raw.InProgress(); err != nil {
		return fmt.Errorf("signal in progress on %s: %w", m.Subject, err)
	}
	return nil
}

// Backoff is a bounded exponential backoff: the n-th retry waits about
// Initial·2^(n-1), never more than Max. Each delay is jittered down by up to
// a half, so messages that failed together (a Postgres restart) do not all
// come back in the same instant.
type Backoff struct {
	// Initial is the delay before the first retry.
	Initial time.Duration
	// Max caps every delay.
	Max time.Duration
}

// Delay returns the delay before redelivering a message that has been
// delivered deliveries times.
func (b Backoff) Delay(deliveries uint64) time.Duration {
	d := b.Initial
	for i := uint64(1); i < deliveries && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// ConsumerSpec declares a durable pull consumer and how its messages are
// processed. Replicas of a service share the durable consumer, so each
// message goes to one of them.
type ConsumerSpec struct {
	// Stream is the stream to consume.
	Stream string
	// Durable names the consumer; by convention "<service>-<purpose>".
	Durable string
	// FilterSubjects selects the stream's subjects to receive; empty means
	// all of them.
	FilterSubjects []string
	// Concurrency is the number of handlers in flight at once; default 4.
	Concurrency int
	// MaxDeliver is how many times a handler gets a message before the
	// message is dead-lettered; default 5.
	MaxDeliver int
	// AckWait is how long JetStream waits for an acknowledgement before
	// redelivering; default 30s.
	AckWait time.Duration
	// HandlerTimeout bounds one handler call; default five sixths of
	// AckWait, so a handler gives up before JetStream redelivers.
	HandlerTimeout time.Duration
	// MaxAckPending bounds unacknowledged messages across all replicas of
	// the service. Each replica holds up to 2×Concurrency (in flight plus
	// prefetched), so the default 8×Concurrency serves four replicas while
	// staying small enough that slow handlers do not hoard messages another
	// replica could process.
	MaxAckPending int
	// Backoff spaces retries; default 1s doubling up to 1m.
	Backoff Backoff
	// Replicas of the consumer's state; 0 inherits the stream's.
	Replicas int
}

// Defaults of ConsumerSpec.
const (
	// DefaultConcurrency is the default number of handlers in flight.
	DefaultConcurrency = 4
	// DefaultMaxDeliver is the default number of handler attempts.
	DefaultMaxDeliver = 5
	// DefaultAckWait is the default time JetStream waits for an ack.
	DefaultAckWait = 30 * time.Second
)

// withDefaults fills in zero fields.
func (s ConsumerSpec) withDefaults() ConsumerSpec {
	if s.Concurrency <= 0 {
		s.Concurrency = DefaultConcurrency
	}
	if s.MaxDeliver <= 0 {
		s.MaxDeliver = DefaultMaxDeliver
	}
	if s.AckWait <= 0 {
		s.AckWait = DefaultAckWait
	}
	if s.HandlerTimeout <= 0 {
		s.HandlerTimeout = s.AckWait * 5 / 6
	}
	if s.MaxAckPending <= 0 {
		s.MaxAckPending = 8 * s.Concurrency
	}
	if s.Backoff.Initial <= 0 {
		s.Backoff.Initial = time.Second
	}
	if s.Backoff.Max < s.Backoff.Initial {
		s.Backoff.Max = max(time.Minute, s.Backoff.Initial)
	}
	return s
}

// consumerConfig turns a spec (with defaults) into the server
// configuration. The server's own MaxDeliver stays unlimited on purpose:
// the bus counts deliveries itself and parks a message on the delivery
// after the last handler attempt, so a message whose handler crashed the
// process on its final attempt still gets dead-lettered instead of being
// dropped silently by the server.
func consumerConfig(s ConsumerSpec) jetstream.ConsumerConfig {
	cfg := jetstream.ConsumerConfig{
		Durable:       s.Durable,
		Description:   "cosell durable consumer",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: s.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		Replicas:      s.Replicas,
	}
	if len(s.FilterSubjects) == 1 {
		cfg.FilterSubject = s.FilterSubjects[0]
	} else if len(s.FilterSubjects) > 1 {
		cfg.FilterSubjects = s.FilterSubjects
	}
	return cfg
}

// EnsureConsumer creates or updates the durable consumer of spec.
func (c *Conn) EnsureConsumer(ctx context.Context, spec ConsumerSpec) (jetstream.Consumer, error) {
	spec = spec.withDefaults()
	if spec.Stream == "" || spec.Durable == "" {
		return nil, fmt.Errorf("ensure consumer: stream %q and durable %q are required", spec.Stream, spec.Durable)
	}
	cons, err := c.js.CreateOrUpdateConsumer(ctx, spec.Stream, consumerConfig(spec))
	if err != nil {
		return nil, fmt.Errorf("ensure consumer %s on %s: %w", spec.Durable, spec.Stream, err)
	}
	return cons, nil
}

// Consume ensures the consumer of spec exists and runs h on its messages,
// at most spec.Concurrency at a time, until ctx is cancelled. Then it stops
// fetching, hands messages it had fetched but not started back to
// JetStream, waits for the handlers in flight and returns nil.
//
// Trouble on the JetStream side (an API request timing out on a busy
// server, the stream not declared yet, the consumer deleted under us)
// does not stop the service: Consume logs it, reports the consumer not
// ready through Ready, and re-establishes the consumer with a jittered
// backoff. It returns an error only for what retrying cannot fix: an
// invalid spec, a consumer configuration the server rejects, or a
// connection closed for good.
func (c *Conn) Consume(ctx context.Context, spec ConsumerSpec, h Handler) error {
	spec = spec.withDefaults()
	if spec.Stream == "" || spec.Durable == "" {
		return fmt.Errorf("consume: stream %q and durable %q are required", spec.Stream, spec.Durable)
	}
	c.consumers.set(spec.Durable, errConsumerStarting)
	defer c.consumers.remove(spec.Durable)
	// The consumer's failure series exist from the start at zero, so an
	// alert rule over them reads 0 rather than nothing before the first
	// failure (and a misspelled rule shows up at once).
	zero := metric.WithAttributes(attrConsumerGroup.String(spec.Durable))
	c.metrics.consumerRestarts.Add(ctx, 0, zero)
	c.metrics.deadLettered.Add(ctx, 0, zero)
	retry := Backoff{Initial: consumerRetryInitial, Max: consumerRetryMax}
	failures := uint64(0)
	for {
		established, err := c.consumeOnce(ctx, spec, h)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			// The iterator closed without an error while we still run.
			err = errors.New("message iterator closed")
		}
		if !retryableConsumerError(err) {
			c.consumers.set(spec.Durable, err)
			return err
		}
		if established {
			failures = 0
		}
		failures++
		delay := retry.Delay(failures)
		c.consumers.set(spec.Durable, err)
		c.metrics.consumerRestarts.Add(ctx, 1, metric.WithAttributes(attrConsumerGroup.String(spec.Durable)))
		c.log.Warn("consumer interrupted; re-establishing", "consumer", spec.Durable, "stream", spec.Stream,
			"attempt", failures, "retry_in", delay.String(), "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(delay):
		}
	}
}

// Delays between attempts to re-establish a consumer.
const (
	consumerRetryInitial = 250 * time.Millisecond
	consumerRetryMax     = 5 * time.Second
)

// errConsumerStarting is a consumer's state until it first fetches.
var errConsumerStarting = errors.New("not established yet")

// retryableConsumerError reports whether re-establishing the consumer may
// fix err. Timeouts, a stream not declared yet, a server without a
// JetStream leader for the moment and a consumer deleted under us may all
// pass; any other answer of the JetStream API (a configuration the server
// refuses, such as a deliver policy it cannot update) and a connection
// closed for good will not.
func retryableConsumerError(err error) bool {
	if errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrBadRequest) {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.Code {
		case 404, 408, 503:
			return true
		default:
			return false
		}
	}
	return true
}

// consumeOnce runs one consumer session: it ensures the consumer, fetches
// and dispatches until ctx ends (nil) or the iterator fails (the error).
// established reports whether the session got as far as fetching.
func (c *Conn) consumeOnce(ctx context.Context, spec ConsumerSpec, h Handler) (established bool, _ error) {
	cons, err := c.EnsureConsumer(ctx, spec)
	if err != nil {
		return false, err
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(spec.Concurrency))
	if err != nil {
		return false, fmt.Errorf("consume %s: %w", spec.Durable, err)
	}
	c.consumers.set(spec.Durable, nil)

	stopped := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Go(func() {
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		iter.Drain()
	})

	var (
		inflight sync.WaitGroup
		slots    = make(chan struct{}, spec.Concurrency)
		work     = make(chan jetstream.Msg)
		loopErr  error
	)
	// Handlers outlive the stop signal so they can commit; HandlerTimeout
	// bounds them instead. They run on Concurrency long-lived workers
	// rather than a goroutine per message, whose stack would grow again
	// for every message (JSON, protobuf and pgx go deep).
	handlerBase := context.WithoutCancel(ctx)
	for range spec.Concurrency {
		inflight.Go(func() {
			for jm := range work {
				c.process(handlerBase, spec, h, jm)
				<-slots
			}
		})
	}
	for {
		// Take a handler slot before fetching, so at most Concurrency
		// messages are in flight; once stopping, fetch without one, only to
		// hand buffered messages back.
		slot := false
		if ctx.Err() == nil {
			select {
			case slots <- struct{}{}:
				slot = true
			case <-ctx.Done():
			}
		}
		jm, err := iter.Next()
		if err != nil {
			if slot {
				<-slots
			}
			if !errors.Is(err, jetstream.ErrMsgIteratorClosed) || (ctx.Err() == nil && errors.Is(err, jetstream.ErrConnectionClosed)) {
				loopErr = fmt.Errorf("consume %s: %w", spec.Durable, err)
			}
			break
		}
		if !slot || ctx.Err() != nil {
			// Stopping: give the message back for another replica now
			// rather than after AckWait.
			if err := jm.Nak(); err != nil {
				c.log.Warn("hand back message on stop", "consumer", spec.Durable, "err", err)
			}
			if slot {
				<-slots
			}
			continue
		}
		// Holding a slot means a worker is free (or about to be).
		work <- jm
	}
	close(work)
	close(stopped)
	watcher.Wait()
	inflight.Wait()
	return true, loopErr
}

// consumerStates records, per durable consumer this connection runs, nil
// while it is fetching or the reason it is not.
type consumerStates struct {
	mu     sync.Mutex
	states map[string]error
}

func (s *consumerStates) set(durable string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.states == nil {
		s.states = map[string]error{}
	}
	s.states[durable] = err
}

func (s *consumerStates) remove(durable string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.states, durable)
}

// notReady returns an error naming every consumer that is not fetching.
func (s *consumerStates) notReady() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for durable, err := range s.states {
		if err != nil {
			errs = append(errs, fmt.Errorf("consumer %s: %w", durable, err))
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// process runs one delivery through the handler and settles it.
func (c *Conn) process(base context.Context, spec ConsumerSpec, h Handler, jm jetstream.Msg) {
	m := &Msg{Subject: jm.Subject(), Header: jm.Headers(), Data: jm.Data(), raw: jm}
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	m.MsgID = m.Header.Get(jetstream.MsgIDHeader)
	if md, err := jm.Metadata(); err == nil {
		m.Deliveries, m.Stream, m.StreamSeq, m.Published = md.NumDelivered, md.Stream, md.Sequence.Stream, md.Timestamp
	} else {
		c.log.Warn("message without JetStream metadata", "subject", m.Subject, "err", err)
		m.Deliveries = 1
	}

	parent := c.propagator.Extract(base, HeaderCarrier(m.Header))
	ctx, span := c.tracer.Start(parent, "process "+m.Subject,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attrSystem.String("nats"),
			attrOperationName.String("process"),
			attrOperationType.String("process"),
			attrDestination.String(m.Subject),
			attrConsumerGroup.String(spec.Durable),
			attrMessageID.String(m.MsgID),
			attrBodySize.Int(len(m.Data)),
			attrDeliveryCount.Int64(int64(m.Deliveries)),
			attrStreamSeq.Int64(int64(m.StreamSeq)),
		))
	defer span.End()
	attrs := []attribute.KeyValue{attrDestination.String(m.Subject), attrConsumerGroup.String(spec.Durable)}

	// A delivery past the last attempt means the final attempt never
	// settled (the process died, or the handler outran AckWait): park it
	// without running the handler again.
	if m.Deliveries > uint64(spec.MaxDeliver) {
		reason := fmt.Sprintf("delivered %d times without being settled (limit %d)", m.Deliveries, spec.MaxDeliver)
		c.deadLetter(ctx, span, spec, m, reason, false, attrs)
		return
	}

	hctx, cancel := context.WithTimeout(ctx, spec.HandlerTimeout)
	start := time.Now()
	err := callHandler(hctx, h, m)
	cancel()
	c.metrics.duration.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attrs...))

	if err == nil {
		// A plain ack, not a confirmed one: an ack lost on the way comes
		// back as a redelivery after AckWait, which the handler's inbox
		// absorbs; waiting for the server's confirmation would cost every
		// message a request and a reply. A failure to send it is logged.
		if aerr := jm.Ack(); aerr != nil {
			c.log.WarnContext(ctx, "ack failed; message will be redelivered", "subject", m.Subject, "consumer", spec.Durable, "stream_seq", m.StreamSeq, "err", aerr)
			span.RecordError(aerr)
		}
		c.metrics.consumed.Add(ctx, 1, metric.WithAttributes(attrs...))
		span.SetAttributes(attrOutcome.String("ack"))
		return
	}

	c.metrics.failed.Add(ctx, 1, metric.WithAttributes(attrs...))
	span.RecordError(err)
	span.SetStatus(codes.Error, "handler failed")
	if IsPermanent(err) || m.Deliveries >= uint64(spec.MaxDeliver) {
		c.deadLetter(ctx, span, spec, m, err.Error(), IsPermanent(err), attrs)
		return
	}
	delay, ok := retryDelay(err)
	if !ok {
		delay = spec.Backoff.Delay(m.Deliveries)
	}
	c.log.WarnContext(ctx, "handler failed; will retry", "subject", m.Subject, "consumer", spec.Durable,
		"stream_seq", m.StreamSeq, "delivery", m.Deliveries, "retry_in", delay.String(), "err", err)
	span.SetAttributes(attrOutcome.String("retry"))
	if nerr := jm.NakWithDelay(delay); nerr != nil {
		c.log.WarnContext(ctx, "nak failed; message will be redelivered after AckWait", "subject", m.Subject, "err", nerr)
	}
}

// callHandler runs h, turning a panic into an error so one bad message
// cannot take the whole service down; the message is retried and, if it
// keeps panicking, dead-lettered.
func callHandler(ctx context.Context, h Handler, m *Msg) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return h(ctx, m)
}

// deadLetter publishes m on the service's dead-letter subject, records it
// in the sink and terminates it. If parking fails, the message is retried
// later so that it is never dropped without a trace.
func (c *Conn) deadLetter(ctx context.Context, span trace.Span, spec ConsumerSpec, m *Msg, reason string, permanent bool, attrs []attribute.KeyValue) {
	dl := DeadLetter{
		Service:    c.service,
		Consumer:   spec.Durable,
		Stream:     m.Stream,
		StreamSeq:  m.StreamSeq,
		Subject:    m.Subject,
		MsgID:      m.MsgID,
		Deliveries: m.Deliveries,
		Reason:     reason,
		Permanent:  permanent,
		Headers:    map[string][]string(m.Header),
		Payload:    m.Data,
		TraceID:    traceID(span),
		FailedAt:   time.Now().UTC(),
	}
	if err := c.parkDeadLetter(ctx, dl); err != nil {
		delay := spec.Backoff.Delay(m.Deliveries)
		c.log.ErrorContext(ctx, "could not park dead letter; will retry", "subject", m.Subject, "consumer", spec.Durable,
			"stream_seq", m.StreamSeq, "reason", reason, "retry_in", delay.String(), "err", err)
		span.RecordError(err)
		if nerr := m.raw.NakWithDelay(delay); nerr != nil {
			c.log.WarnContext(ctx, "nak failed", "subject", m.Subject, "err", nerr)
		}
		return
	}
	if err := m.raw.TermWithReason(truncate(reason, 256)); err != nil {
		// The message comes back and is parked again; the sink and the
		// dead-letter stream both ignore the repeat.
		c.log.WarnContext(ctx, "term failed after parking dead letter", "subject", m.Subject, "err", err)
	}
	c.metrics.deadLettered.Add(ctx, 1, metric.WithAttributes(attrs...))
	span.SetAttributes(attrOutcome.String("dead_letter"))
	span.SetStatus(codes.Error, "dead-lettered")
	c.log.ErrorContext(ctx, "message dead-lettered", "subject", m.Subject, "consumer", spec.Durable,
		"stream_seq", m.StreamSeq, "deliveries", m.Deliveries, "permanent", permanent, "reason", reason)
}

// parkDeadLetter publishes dl on the dead-letter subject and records it in
// the sink, if any.
func (c *Conn) parkDeadLetter(ctx context.Context, dl DeadLetter) error {
	msg := &nats.Msg{Subject: DeadLetterSubject(dl.Service), Data: dl.Payload, Header: nats.Header{}}
	for k, v := range dl.Headers {
		if k == jetstream.MsgIDHeader {
			continue
		}
		msg.Header[k] = append([]string(nil), v...)
	}
	msg.Header.Set(HeaderDLReason, truncate(dl.Reason, 1024))
	msg.Header.Set(HeaderDLPermanent, strconv.FormatBool(dl.Permanent))
	msg.Header.Set(HeaderDLSubject, dl.Subject)
	msg.Header.Set(HeaderDLStream, dl.Stream)
	msg.Header.Set(HeaderDLStreamSeq, strconv.FormatUint(dl.StreamSeq, 10))
	msg.Header.Set(HeaderDLConsumer, dl.Consumer)
	msg.Header.Set(HeaderDLMsgID, dl.MsgID)
	msg.Header.Set(HeaderDLDeliveries, strconv.FormatUint(dl.Deliveries, 10))
	id := fmt.Sprintf("dl:%s:%d:%s", dl.Stream, dl.StreamSeq, dl.Consumer)
	if err := c.publishMsg(ctx, msg, id); err != nil {
		return err
	}
	if c.sink != nil {
		if err := c.sink.Record(ctx, dl); err != nil {
			return err
		}
	}
	return nil
}

// traceID returns the span's trace id, or "" when it is not recording a
// valid trace.
func traceID(span trace.Span) string {
	sc := span.SpanContext()
	if !sc.HasTraceID() {
		return ""
	}
	return sc.TraceID().String()
}

// truncate shortens s to at most n bytes without splitting a character,
// and puts it on one line: NATS header values cannot hold line breaks, and
// a reason comes from an arbitrary error message.
func truncate(s string, n int) string {
	s = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
