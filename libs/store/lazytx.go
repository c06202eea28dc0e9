package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Tx is what a transaction function of InLazyTx and Group runs its
// statements on. pgx.Tx satisfies it, so code written against Tx also runs
// inside InTx.
type Tx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// InLazyTx runs fn in a transaction on a connection of pool, as InTx does
// (commit on nil, rollback on error or panic, retries of serialization
// failures and deadlocks), except that BEGIN is not a round trip of its
// own: it is sent in one batch with fn's first statement. On the benchmark
// machine a round trip costs about 140 µs of wall time and a good part of
// that in CPU, and a message handler makes only three or four.
//
// A function that runs no statement costs no round trip at all: nothing is
// begun, so nothing is committed.
func InLazyTx(ctx context.Context, pool *pgxpool.Pool, fn func(tx Tx) error) error {
	return retryTx(ctx, DefaultTxAttempts, func() error { return runLazyTx(ctx, pool, fn) })
}

func runLazyTx(ctx context.Context, pool *pgxpool.Pool, fn func(tx Tx) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", MapError(err))
	}
	// Release closes the connection instead of pooling it when a
	// transaction is still open on it (a failed rollback, a panic).
	defer conn.Release()
	tx := &lazyTx{conn: conn.Conn()}
	defer func() {
		// As in runTx: without the caller's cancellation, so that a
		// cancelled context still ends the transaction cleanly.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.rollback(rctx)
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.commit(ctx); err != nil {
		if errors.Is(err, pgx.ErrTxCommitRollback) {
			return fmt.Errorf("commit: transaction was aborted: %w", err)
		}
		return fmt.Errorf("commit: %w", MapError(err))
	}
	return nil
}

// lazyTx is a transaction on conn whose BEGIN goes out with its first
// statement (pgx's Batch.BeginTx). Postgres runs the statements of one
// batch in an implicit transaction; a BEGIN at its head turns that into an
// explicit one, which stays open after the batch.
type lazyTx struct {
	conn *pgx.Conn
	// tx is the transaction once BEGIN was sent; ended is set by commit
	// and rollback.
	tx    pgx.Tx
	ended bool
}

var errTxEnded = errors.New("transaction already committed or rolled back")

// sendWithBegin sends b's statements after BEGIN, reads BEGIN's result and
// returns the rest for the caller to read.
func (t *lazyTx) sendWithBegin(ctx context.Context, b *pgx.Batch) (pgx.BatchResults, error) {
	withBegin := &pgx.Batch{}
	withBegin.BeginTx(pgx.TxOptions{})
	withBegin.QueuedQueries = append(withBegin.QueuedQueries, b.QueuedQueries...)
	br := t.conn.SendBatch(ctx, withBegin)
	t.tx = br.Tx()
	if _, err := br.Exec(); err != nil {
		_ = br.Close()
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	return br, nil
}

func (t *lazyTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	switch {
	case t.ended:
		return pgconn.CommandTag{}, errTxEnded
	case t.tx != nil:
		return t.tx.Exec(ctx, sql, args...)
	}
	var b pgx.Batch
	b.Queue(sql, args...)
	br, err := t.sendWithBegin(ctx, &b)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag, err
}

func (t *lazyTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	switch {
	case t.ended:
		return nil, errTxEnded
	case t.tx != nil:
		return t.tx.Query(ctx, sql, args...)
	}
	var b pgx.Batch
	b.Queue(sql, args...)
	br, err := t.sendWithBegin(ctx, &b)
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		_ = br.Close()
		return nil, err
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (t *lazyTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	switch {
	case t.ended:
		return errRow{errTxEnded}
	case t.tx != nil:
		return t.tx.QueryRow(ctx, sql, args...)
	}
	var b pgx.Batch
	b.Queue(sql, args...)
	br, err := t.sendWithBegin(ctx, &b)
	if err != nil {
		return errRow{err}
	}
	return batchRow{row: br.QueryRow(), br: br}
}

func (t *lazyTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	switch {
	case t.ended:
		return pgx.FailedBatchResults(b, errTxEnded)
	case t.tx != nil:
		return t.tx.SendBatch(ctx, b)
	}
	br, err := t.sendWithBegin(ctx, b)
	if err != nil {
		return pgx.FailedBatchResults(b, err)
	}
	return br
}

func (t *lazyTx) commit(ctx context.Context) error {
	if t.ended {
		return errTxEnded
	}
	t.ended = true
	if t.tx == nil {
		return nil
	}
	return t.tx.Commit(ctx)
}

// rollback ends the transaction if commit did not; it is a no-op after
// commit, and when nothing was begun.
func (t *lazyTx) rollback(ctx context.Context) error {
	if t.ended {
		return nil
	}
	t.ended = true
	if t.tx == nil {
		return nil
	}
	return t.tx.Rollback(ctx)
}

// batchRow is the row of a statement sent with BEGIN: scanning it also
// reads the end of the batch, which frees the connection for the next
// statement.
type batchRow struct {
	row pgx.Row
	br  pgx.BatchResults
}

func (r batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

// batchRows are the rows of a query sent with BEGIN: when they are done
// (read to the end, or closed), the end of the batch is read too.
type batchRows struct {
	pgx.Rows
	br     pgx.BatchResults
	closed bool
	err    error
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if !r.closed {
		r.closed = true
		r.err = r.br.Close()
	}
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
