package store

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinels that callers compare against with errors.Is, so that no package
// above the store needs to know Postgres error codes. The HTTP edge and the
// message consumers translate these into status codes and ack decisions.
var (
	// ErrNotFound reports that a query expected a row and got none.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports a unique or exclusion constraint violation: the row
	// already exists.
	ErrConflict = errors.New("conflict")
	// ErrInvalid reports that the data broke a foreign key, not-null or check
	// constraint; retrying the same data cannot succeed.
	ErrInvalid = errors.New("invalid data")
	// ErrRetryable reports a serialization failure or a deadlock: the
	// transaction lost a race and running it again is expected to succeed.
	ErrRetryable = errors.New("transaction conflict, retry")
	// ErrUnavailable reports that Postgres refused or dropped the work for
	// reasons outside the data (shutdown, too many connections, cancelled
	// statement); the message should be retried later.
	ErrUnavailable = errors.New("database unavailable")
)

// Postgres error codes this package recognises (Appendix A of the Postgres
// manual).
const (
	codeUniqueViolation      = "23505"
	codeExclusionViolation   = "23P01"
	codeForeignKeyViolation  = "23503"
	codeNotNullViolation     = "23502"
	codeCheckViolation       = "23514"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeQueryCanceled        = "57014"
	codeAdminShutdown        = "57P01"
	codeCrashShutdown        = "57P02"
	codeCannotConnectNow     = "57P03"
	codeTooManyConnections   = "53300"
)

// MapError translates a pgx error into one that also matches the sentinel for
// its class, keeping the original (and its *pgconn.PgError) in the chain for
// logs. Errors it does not recognise, and nil, are returned unchanged, so
// store code can call it on every error it returns.
func MapError(err error) error {
	if err == nil {
		return nil
	}
	sentinel := classify(err)
	if sentinel == nil || errors.Is(err, sentinel) {
		return err
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// IsRetryable reports whether err is a serialization failure or deadlock that
// running the whole transaction again should resolve.
func IsRetryable(err error) bool {
	return classify(err) == ErrRetryable || errors.Is(err, ErrRetryable)
}

func classify(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil
	}
	switch pgErr.Code {
	case codeUniqueViolation, codeExclusionViolation:
		return ErrConflict
	case codeForeignKeyViolation, codeNotNullViolation, codeCheckViolation:
		return ErrInvalid
	case codeSerializationFailure, codeDeadlockDetected:
		return ErrRetryable
	case codeQueryCanceled, codeAdminShutdown, codeCrashShutdown, codeCannotConnectNow, codeTooManyConnections:
		return ErrUnavailable
	}
	return nil
}
