// Package deadletters records the messages the salesforce-adapter's
// consumers gave up on in salesforce_adapter.dead_letters, so operators can
// list and replay them. It implements bus.DeadLetterSink for this service's
// schema (bus.PgDeadLetterSink writes an unqualified table name, which would
// land wherever the search path points).
package deadletters

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/store"
)

// Sink writes dead letters to Postgres.
type Sink struct {
	pool *pgxpool.Pool
}

// New returns a sink on pool.
func New(pool *pgxpool.Pool) *Sink { return &Sink{pool: pool} }

// Record inserts dl, ignoring a repeat of the same message and consumer.
func (s *Sink) Record(ctx context.Context, dl bus.DeadLetter) error {
	headers := []byte("{}")
	if dl.Headers != nil {
		b, err := json.Marshal(dl.Headers)
		if err != nil {
			return fmt.Errorf("record dead letter: headers: %w", err)
		}
		headers = b
	}
	payload := dl.Payload
	if payload == nil {
		payload = []byte{}
	}
	failedAt := dl.FailedAt
	if failedAt.IsZero() {
		failedAt = time.Now()
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO salesforce_adapter.dead_letters
		(service, consumer, stream, stream_seq, subject, msg_id, deliveries, reason, permanent, headers, payload, trace_id, failed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
		ON CONFLICT (stream, stream_seq, consumer) DO NOTHING`,
		dl.Service, dl.Consumer, dl.Stream, int64(dl.StreamSeq), dl.Subject, dl.MsgID, int64(dl.Deliveries),
		dl.Reason, dl.Permanent, headers, payload, dl.TraceID, failedAt)
	if err != nil {
		return fmt.Errorf("record dead letter %s/%d: %w", dl.Stream, dl.StreamSeq, store.MapError(err))
	}
	return nil
}

// Pending counts dead letters not yet replayed.
func (s *Sink) Pending(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM salesforce_adapter.dead_letters WHERE replayed_at IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count dead letters: %w", store.MapError(err))
	}
	return n, nil
}
