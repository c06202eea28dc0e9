// Package testevents records verified test-created deliveries in
// ingress.test_events, so an operator can confirm that Partner Center
// reaches ingress and that its signatures verify, without starting a sync.
package testevents

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.opentelemetry.io/otel/trace"

	"github.com/cosell/cosell/services/ingress/internal/notification"
)

// Execer is the part of a pgx pool the store uses.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Store writes test events.
type Store struct {
	db Execer
}

// New returns a Store writing through db.
func New(db Execer) *Store { return &Store{db: db} }

// RecordTest inserts one delivery of a test event with the trace id of ctx,
// so the row leads to the request's trace.
func (s *Store) RecordTest(ctx context.Context, n notification.Notification, msgID string, receivedAt time.Time) error {
	var traceID *string
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		id := sc.TraceID().String()
		traceID = &id
	}
	var auditURI *string
	if n.AuditURI != "" {
		auditURI = &n.AuditURI
	}
	_, err := s.db.Exec(ctx, `
		INSERT INTO ingress.test_events
			(received_at, msg_id, event_name, resource_uri, resource_name, audit_uri, resource_change_utc, trace_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		receivedAt, msgID, n.EventName, n.ResourceURI, n.ResourceName, auditURI, n.ResourceChangeUTC, traceID)
	if err != nil {
		return fmt.Errorf("recording test event: %w", err)
	}
	return nil
}
