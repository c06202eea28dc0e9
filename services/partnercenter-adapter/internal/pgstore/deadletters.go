package pgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cosell/cosell/libs/bus"
	"github.com/cosell/cosell/libs/store"
)

// DeadLetters records the bus's dead letters in
// partnercenter_adapter.dead_letters. libs/bus's PgDeadLetterSink writes
// the unqualified table name and relies on search_path, which this
// service's pool leaves at its default, so the adapter names its own
// schema here instead.
type DeadLetters struct {
	s *Store
}

// DeadLetters returns the dead-letter sink on the store's pool.
func (s *Store) DeadLetters() *DeadLetters { return &DeadLetters{s: s} }

// Record implements bus.DeadLetterSink; a repeat of the same message and
// consumer is ignored.
func (d *DeadLetters) Record(ctx context.Context, dl bus.DeadLetter) error {
	headers := []byte("{}")
	if dl.Headers != nil {
		var err error
		if headers, err = json.Marshal(dl.Headers); err != nil {
			return fmt.Errorf("record dead letter: headers: %w", err)
		}
	}
	payload := dl.Payload
	if payload == nil {
		payload = []byte{}
	}
	failedAt := dl.FailedAt
	if failedAt.IsZero() {
		failedAt = time.Now()
	}
	_, err := d.s.pool.Exec(ctx, `INSERT INTO partnercenter_adapter.dead_letters
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
