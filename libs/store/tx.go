package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultTxAttempts is how many times InTx runs a transaction that keeps
// failing with a serialization failure or deadlock before giving up. Such
// failures are rare under read committed and resolve on the first retry
// almost always; a small bound keeps a pathological hot row from pinning a
// consumer.
const DefaultTxAttempts = 3

// Beginner starts transactions; *pgxpool.Pool, *pgx.Conn and pgx.Tx (for a
// savepoint) all satisfy it.
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// TxOption adjusts one InTx call.
type TxOption func(*txConfig)

type txConfig struct {
	opts     pgx.TxOptions
	attempts int
}

// Serializable runs the transaction at the serializable isolation level, for
// the rare read-decide-write sequences that row locks cannot protect.
func Serializable() TxOption {
	return func(c *txConfig) { c.opts.IsoLevel = pgx.Serializable }
}

// ReadOnly marks the transaction read only, which lets Postgres skip work and
// catches accidental writes.
func ReadOnly() TxOption {
	return func(c *txConfig) { c.opts.AccessMode = pgx.ReadOnly }
}

// Attempts bounds how many times a transaction is run when it fails with a
// retryable error; 1 disables retries.
func Attempts(n int) TxOption {
	return func(c *txConfig) {
		if n > 0 {
			c.attempts = n
		}
	}
}

// InTx runs fn inside a transaction on db and commits when fn returns nil;
// any error, or a panic, rolls it back. When fn or the commit fails with a
// serialization failure or deadlock, the whole transaction is run again (up
// to DefaultTxAttempts times, with a short jittered pause), so fn must not
// have effects outside the transaction that cannot be repeated.
//
// fn's own error is returned as is (fn wraps its errors); commit errors are
// passed through MapError.
func InTx(ctx context.Context, db Beginner, fn func(tx pgx.Tx) error, opts ...TxOption) error {
	cfg := txConfig{attempts: DefaultTxAttempts}
	for _, opt := range opts {
		opt(&cfg)
	}
	var err error
	for attempt := 1; ; attempt++ {
		err = runTx(ctx, db, cfg.opts, fn)
		if err == nil || !IsRetryable(err) || attempt >= cfg.attempts {
			return err
		}
		pause := time.Duration(attempt) * (5*time.Millisecond + rand.N(20*time.Millisecond))
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

func runTx(ctx context.Context, db Beginner, opts pgx.TxOptions, fn func(tx pgx.Tx) error) error {
	tx, err := db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", MapError(err))
	}
	defer func() {
		// After a successful commit Rollback is a no-op (pgx.ErrTxClosed). It
		// runs without the caller's cancellation so that a cancelled context
		// still releases the connection cleanly instead of breaking it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		if errors.Is(err, pgx.ErrTxCommitRollback) {
			// The transaction had already failed inside fn, whose error was
			// swallowed; report it as the rollback it is.
			return fmt.Errorf("commit: transaction was aborted: %w", err)
		}
		return fmt.Errorf("commit: %w", MapError(err))
	}
	return nil
}
