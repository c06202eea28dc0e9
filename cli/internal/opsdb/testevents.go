package opsdb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestEvent is a Partner Center validation (test-created) event as ingress
// recorded it in ingress.test_events after verifying its signature.
type TestEvent struct {
	// ReceivedAt is when ingress received the first delivery.
	ReceivedAt time.Time `json:"receivedAt"`
	// MsgID is ingress's message id of the event.
	MsgID string `json:"msgId"`
	// ResourceURI ends with the event's correlation id.
	ResourceURI string `json:"resourceUri"`
	// TraceID is the trace of the first delivery's request, if traced.
	TraceID string `json:"traceId,omitempty"`
	// Deliveries counts the recorded deliveries (Partner Center retries
	// test events like any other).
	Deliveries int `json:"deliveries"`
}

// TestEventFor returns the validation event whose ResourceUri ends with
// "/"+correlationID, or ErrNotFound while ingress has recorded none.
func (d *DB) TestEventFor(ctx context.Context, correlationID string) (TestEvent, error) {
	var ev TestEvent
	var traceID *string
	var n int64
	err := d.pool.QueryRow(ctx, `
		SELECT received_at, msg_id, resource_uri, trace_id, count(*) OVER ()
		FROM ingress.test_events
		WHERE right(resource_uri, length($1) + 1) = '/' || $1
		ORDER BY received_at, id
		LIMIT 1`, correlationID).Scan(&ev.ReceivedAt, &ev.MsgID, &ev.ResourceURI, &traceID, &n)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return TestEvent{}, fmt.Errorf("no test event %s recorded by ingress: %w", correlationID, ErrNotFound)
	case errors.As(err, &pgErr) && pgErr.Code == "42P01":
		return TestEvent{}, fmt.Errorf("postgres at %s has no ingress.test_events table: run `ingress migrate` (or point --database-url at cosell's database): %w", d.url, err)
	case err != nil:
		return TestEvent{}, fmt.Errorf("read ingress.test_events: %w", err)
	}
	if traceID != nil {
		ev.TraceID = *traceID
	}
	ev.Deliveries = int(n)
	return ev, nil
}
