package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cosell/cosell/libs/store"
)

// Command kinds, as stored in commands.kind.
const (
	KindCreate = "create"
	KindPatch  = "patch"
)

// Command is the idempotency record of one PartnerCenterCommand.
type Command struct {
	// ID is the command's command_id.
	ID string
	// Kind is KindCreate or KindPatch.
	Kind string
	// OpportunityID and ExternalReferenceID come from the command.
	OpportunityID, ExternalReferenceID string
	// ReferralID is the referral created, found or patched.
	ReferralID string
	// PostAttempts counts the create POSTs sent for this command.
	PostAttempts int
	// FirstPostAt is when the first of them was about to be sent.
	FirstPostAt time.Time
	// Outcome is "", "OK", "REJECTED" or "FAILED".
	Outcome string
	// Created, HTTPStatus, ErrorCode and ErrorMessage are the result's.
	Created                 bool
	HTTPStatus              int
	ErrorCode, ErrorMessage string
	// Result is the published PartnerCenterResult (protobuf) once the
	// command is final.
	Result []byte
	// TraceID is the trace of the delivery that last wrote the row.
	TraceID string
	// CompletedAt is when the command became final; zero while it is not.
	CompletedAt time.Time
}

// Done reports whether the command is final, so a redelivery is answered
// from Result.
func (c Command) Done() bool { return !c.CompletedAt.IsZero() }

// Command reads a command's record; ok is false when there is none.
func (s *Store) Command(ctx context.Context, id string) (c Command, ok bool, err error) {
	var firstPost, completed *time.Time
	err = s.pool.QueryRow(ctx, `SELECT command_id, kind, opportunity_id, external_reference_id, referral_id,
			post_attempts, first_post_at, outcome, created, http_status, error_code, error_message,
			result, trace_id, completed_at
		FROM partnercenter_adapter.commands WHERE command_id = $1`, id).
		Scan(&c.ID, &c.Kind, &c.OpportunityID, &c.ExternalReferenceID, &c.ReferralID,
			&c.PostAttempts, &firstPost, &c.Outcome, &c.Created, &c.HTTPStatus, &c.ErrorCode, &c.ErrorMessage,
			&c.Result, &c.TraceID, &completed)
	if errors.Is(err, pgx.ErrNoRows) {
		return Command{}, false, nil
	}
	if err != nil {
		return Command{}, false, fmt.Errorf("read command %s: %w", id, store.MapError(err))
	}
	if firstPost != nil {
		c.FirstPostAt = firstPost.UTC()
	}
	if completed != nil {
		c.CompletedAt = completed.UTC()
	}
	return c, true, nil
}

// NotePost records, before a create POST is sent, that command c is about
// to send one. It commits on its own: if the process dies with the POST in
// flight, the next delivery knows a referral found by externalReferenceId
// may be this command's.
func (s *Store) NotePost(ctx context.Context, c Command) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO partnercenter_adapter.commands
			(command_id, kind, opportunity_id, external_reference_id, post_attempts, first_post_at, trace_id)
		VALUES ($1, $2, $3, $4, 1, now(), $5)
		ON CONFLICT (command_id) DO UPDATE SET
			post_attempts = commands.post_attempts + 1,
			first_post_at = COALESCE(commands.first_post_at, now()),
			trace_id = EXCLUDED.trace_id, updated_at = now()`,
		c.ID, c.Kind, c.OpportunityID, c.ExternalReferenceID, c.TraceID)
	if err != nil {
		return fmt.Errorf("note POST of command %s: %w", c.ID, store.MapError(err))
	}
	return nil
}

// CompleteCommand makes c final with its result. The first completion
// wins: a late duplicate delivery cannot replace the result already
// published. It returns the record as stored.
func (s *Store) CompleteCommand(ctx context.Context, c Command) (Command, error) {
	if len(c.Result) == 0 {
		return Command{}, fmt.Errorf("complete command %s: no result: %w", c.ID, store.ErrInvalid)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO partnercenter_adapter.commands
			(command_id, kind, opportunity_id, external_reference_id, referral_id, outcome, created,
			 http_status, error_code, error_message, result, trace_id, completed_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now())
		ON CONFLICT (command_id) DO UPDATE SET
			referral_id = EXCLUDED.referral_id, outcome = EXCLUDED.outcome, created = EXCLUDED.created,
			http_status = EXCLUDED.http_status, error_code = EXCLUDED.error_code,
			error_message = EXCLUDED.error_message, result = EXCLUDED.result,
			trace_id = EXCLUDED.trace_id, updated_at = now(), completed_at = now()
		WHERE commands.completed_at IS NULL`,
		c.ID, c.Kind, c.OpportunityID, c.ExternalReferenceID, c.ReferralID, c.Outcome, c.Created,
		c.HTTPStatus, c.ErrorCode, c.ErrorMessage, c.Result, c.TraceID)
	if err != nil {
		return Command{}, fmt.Errorf("complete command %s: %w", c.ID, store.MapError(err))
	}
	stored, ok, err := s.Command(ctx, c.ID)
	if err != nil {
		return Command{}, err
	}
	if !ok {
		return Command{}, fmt.Errorf("complete command %s: row vanished", c.ID)
	}
	return stored, nil
}

// FailCommand records that c ended FAILED for now. The row stays open
// (not Done), so a replay of the command is executed again.
func (s *Store) FailCommand(ctx context.Context, c Command) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO partnercenter_adapter.commands
			(command_id, kind, opportunity_id, external_reference_id, referral_id, outcome,
			 http_status, error_code, error_message, trace_id)
		VALUES ($1, $2, $3, $4, $5, 'FAILED', $6, $7, $8, $9)
		ON CONFLICT (command_id) DO UPDATE SET
			outcome = 'FAILED', http_status = EXCLUDED.http_status, error_code = EXCLUDED.error_code,
			error_message = EXCLUDED.error_message, trace_id = EXCLUDED.trace_id, updated_at = now()
		WHERE commands.completed_at IS NULL`,
		c.ID, c.Kind, c.OpportunityID, c.ExternalReferenceID, c.ReferralID,
		c.HTTPStatus, c.ErrorCode, c.ErrorMessage, c.TraceID)
	if err != nil {
		return fmt.Errorf("record failure of command %s: %w", c.ID, store.MapError(err))
	}
	return nil
}

// createLockSpace is the first key of the advisory locks that serialise
// creates per external reference (the two-key lock space never meets the
// one-key space libs/store leases use).
const createLockSpace = 0x70636372 // "pccr"

// LockCreate serialises creates for one externalReferenceId across
// replicas, so two commands for the same opportunity cannot both find no
// referral and both POST. It holds a session advisory lock on a pooled
// connection until release is called (or the process dies, which closes
// the session). The pool must be larger than the number of creates in
// flight, since each holds one connection while the others keep working.
func (s *Store) LockCreate(ctx context.Context, externalReferenceID string) (release func(), err error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock create of %s: %w", externalReferenceID, store.MapError(err))
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1, hashtext($2))`, int32(createLockSpace), externalReferenceID); err != nil {
		// The wait may have been cut short with the lock request still
		// queued; never hand that session back to the pool.
		destroy(conn.Conn())
		conn.Release()
		return nil, fmt.Errorf("lock create of %s: %w", externalReferenceID, store.MapError(err))
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, int32(createLockSpace), externalReferenceID); err != nil {
			// Closing the session releases the lock for certain.
			destroy(conn.Conn())
		}
		conn.Release()
	}, nil
}

// destroy closes a pooled connection's session; the pool drops it on
// release.
func destroy(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// PruneCommands deletes records that became final or were last touched
// more than olderThan ago, and returns how many it removed. Keep them well
// beyond the command stream's retention, after which no redelivery can
// come; creates stay idempotent beyond that through the lookup by
// externalReferenceId.
func (s *Store) PruneCommands(ctx context.Context, olderThan time.Duration) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM partnercenter_adapter.commands
		WHERE updated_at < now() - make_interval(secs => $1)`, olderThan.Seconds())
	if err != nil {
		return 0, fmt.Errorf("prune commands: %w", store.MapError(err))
	}
	return tag.RowsAffected(), nil
}
