package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/trace"
)

// Header keys of a message on a dead-letter subject. The payload is the
// original message's, unchanged, and the original headers (trace context,
// Cosell-Type) are kept, so a dead letter can be decoded and replayed as it
// was.
const (
	// HeaderDLReason is the handler's last error, on one line.
	HeaderDLReason = "Cosell-Dead-Letter-Reason"
	// HeaderDLPermanent is "true" when the handler marked the error
	// Permanent, "false" when the delivery limit ran out.
	HeaderDLPermanent = "Cosell-Dead-Letter-Permanent"
	// HeaderDLSubject is the subject the message was published on.
	HeaderDLSubject = "Cosell-Original-Subject"
	// HeaderDLStream is the stream that holds the original message.
	HeaderDLStream = "Cosell-Original-Stream"
	// HeaderDLStreamSeq is the original message's sequence in its stream.
	HeaderDLStreamSeq = "Cosell-Original-Stream-Seq"
	// HeaderDLConsumer is the durable consumer that gave up.
	HeaderDLConsumer = "Cosell-Original-Consumer"
	// HeaderDLMsgID is the original Nats-Msg-Id (the dead letter carries
	// its own, so repeats of the parking are dropped).
	HeaderDLMsgID = "Cosell-Original-Msg-Id"
	// HeaderDLDeliveries is how many times the message was delivered.
	HeaderDLDeliveries = "Cosell-Deliveries"
)

// DeadLetter is a message a consumer gave up on, with why.
type DeadLetter struct {
	// Service is the service that gave up (the name given to Connect).
	Service string
	// Consumer is the durable consumer the message was delivered to.
	Consumer string
	// Stream is the stream holding the original message, which stays there
	// until the stream's MaxAge.
	Stream string
	// StreamSeq is the original message's sequence in Stream.
	StreamSeq uint64
	// Subject is the original subject, where a replay publishes to.
	Subject string
	// MsgID is the original Nats-Msg-Id.
	MsgID string
	// Deliveries is how many times the message was delivered.
	Deliveries uint64
	// Reason is the last handler error, in words.
	Reason string
	// Permanent is true when the handler marked the error with Permanent,
	// false when the delivery limit ran out.
	Permanent bool
	// Headers are the original message's headers.
	Headers map[string][]string
	// Payload is the original message's data.
	Payload []byte
	// TraceID is the trace the message belonged to, to find it in Jaeger.
	TraceID string
	// FailedAt is when the consumer gave up.
	FailedAt time.Time
}

// DeadLetterSink records dead letters where operators can list and replay
// them. Record must be idempotent per (Stream, StreamSeq, Consumer): if the
// bus fails to terminate the message after recording it, the message comes
// back and is recorded again.
type DeadLetterSink interface {
	// Record stores dl durably before returning nil.
	Record(ctx context.Context, dl DeadLetter) error
}

// DeadLettersTableSQL creates the dead_letters table that PgDeadLetterSink
// writes. Each service that parks messages copies it into its own
// migrations folder (the table belongs to the service's database objects,
// and libs/bus does not run migrations). A row stays until an operator
// replays the message (replayed_at) or deletes it.
const DeadLettersTableSQL = `CREATE TABLE dead_letters (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service     text        NOT NULL,
    consumer    text        NOT NULL,
    stream      text        NOT NULL,
    stream_seq  bigint      NOT NULL,
    subject     text        NOT NULL,
    msg_id      text        NOT NULL DEFAULT '',
    deliveries  integer     NOT NULL,
    reason      text        NOT NULL,
    permanent   boolean     NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '{}',
    payload     bytea       NOT NULL,
    trace_id    text        NOT NULL DEFAULT '',
    failed_at   timestamptz NOT NULL DEFAULT now(),
    replayed_at timestamptz,
    UNIQUE (stream, stream_seq, consumer)
);
CREATE INDEX dead_letters_pending_idx ON dead_letters (failed_at) WHERE replayed_at IS NULL;
`

// DeadLettersTableDownSQL drops what DeadLettersTableSQL creates, for the
// migration's .down.sql.
const DeadLettersTableDownSQL = `DROP TABLE IF EXISTS dead_letters;
`

// PgExecutor is the part of pgx the Postgres sink needs;
// *pgxpool.Pool, *pgx.Conn and pgx.Tx all satisfy it.
type PgExecutor interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// PgDeadLetterSink records dead letters in the dead_letters table.
type PgDeadLetterSink struct {
	db PgExecutor
}

// NewPgDeadLetterSink returns a sink writing through db.
func NewPgDeadLetterSink(db PgExecutor) *PgDeadLetterSink {
	return &PgDeadLetterSink{db: db}
}

// Record inserts dl, ignoring a repeat of the same message and consumer.
func (s *PgDeadLetterSink) Record(ctx context.Context, dl DeadLetter) error {
	headers, err := json.Marshal(dl.Headers)
	if err != nil {
		return fmt.Errorf("record dead letter: headers: %w", err)
	}
	if dl.Headers == nil {
		headers = []byte("{}")
	}
	payload := dl.Payload
	if payload == nil {
		payload = []byte{}
	}
	failedAt := dl.FailedAt
	if failedAt.IsZero() {
		failedAt = time.Now()
	}
	_, err = s.db.Exec(ctx, `INSERT INTO dead_letters
		(service, consumer, stream, stream_seq, subject, msg_id, deliveries, reason, permanent, headers, payload, trace_id, failed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (stream, stream_seq, consumer) DO NOTHING`,
		dl.Service, dl.Consumer, dl.Stream, int64(dl.StreamSeq), dl.Subject, dl.MsgID, int64(dl.Deliveries),
		dl.Reason, dl.Permanent, headers, payload, dl.TraceID, failedAt)
	if err != nil {
		return fmt.Errorf("record dead letter %s/%d: %w", dl.Stream, dl.StreamSeq, err)
	}
	return nil
}

// StoredDeadLetter is a dead letter as stored, with its row id.
type StoredDeadLetter struct {
	// ID is the row's id, for MarkReplayed.
	ID int64
	DeadLetter
	// ReplayedAt is set once the message was replayed.
	ReplayedAt *time.Time
}

// Pending lists up to limit dead letters not yet replayed, oldest first.
func (s *PgDeadLetterSink) Pending(ctx context.Context, limit int) ([]StoredDeadLetter, error) {
	rows, err := s.db.Query(ctx, `SELECT id, service, consumer, stream, stream_seq, subject, msg_id, deliveries,
		reason, permanent, headers, payload, trace_id, failed_at, replayed_at
		FROM dead_letters WHERE replayed_at IS NULL ORDER BY failed_at, id LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (StoredDeadLetter, error) {
		var (
			d               StoredDeadLetter
			seq, deliveries int64
			headers         []byte
		)
		if err := r.Scan(&d.ID, &d.Service, &d.Consumer, &d.Stream, &seq, &d.Subject, &d.MsgID, &deliveries,
			&d.Reason, &d.Permanent, &headers, &d.Payload, &d.TraceID, &d.FailedAt, &d.ReplayedAt); err != nil {
			return d, err
		}
		d.StreamSeq, d.Deliveries = uint64(seq), uint64(deliveries)
		if err := json.Unmarshal(headers, &d.Headers); err != nil {
			return d, fmt.Errorf("headers of dead letter %d: %w", d.ID, err)
		}
		return d, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

// MarkReplayed records that dead letter id was replayed, so it no longer
// shows as pending. It reports whether the row was pending.
func (s *PgDeadLetterSink) MarkReplayed(ctx context.Context, id int64) (bool, error) {
	tag, err := s.db.Exec(ctx, `UPDATE dead_letters SET replayed_at = now() WHERE id = $1 AND replayed_at IS NULL`, id)
	if err != nil {
		return false, fmt.Errorf("mark dead letter %d replayed: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Replay publishes a dead letter's payload again on its original subject,
// with its original headers (minus the dead-letter ones), once its cause is
// fixed. The new Msg-Id is derived from the dead letter's position, so a
// double-clicked replay is dropped by the stream's duplicate window. When
// ctx carries no span, the replay joins the original message's trace.
func (c *Conn) Replay(ctx context.Context, dl DeadLetter) error {
	msg := &nats.Msg{Subject: dl.Subject, Data: dl.Payload, Header: nats.Header{}}
	for k, v := range dl.Headers {
		switch k {
		case jetstream.MsgIDHeader, HeaderDLReason, HeaderDLPermanent, HeaderDLSubject, HeaderDLStream,
			HeaderDLStreamSeq, HeaderDLConsumer, HeaderDLMsgID, HeaderDLDeliveries:
			continue
		}
		msg.Header[k] = append([]string(nil), v...)
	}
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = c.propagator.Extract(ctx, HeaderCarrier(msg.Header))
	}
	id := fmt.Sprintf("replay:%s:%d:%s", dl.Stream, dl.StreamSeq, dl.Consumer)
	if err := c.publishMsg(ctx, msg, id); err != nil {
		return fmt.Errorf("replay dead letter %s/%d: %w", dl.Stream, dl.StreamSeq, err)
	}
	return nil
}
