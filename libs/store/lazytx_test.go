package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cosell/cosell/libs/store/storetest"
)

// roundTrips counts what a connection sends and waits for: each query
// outside a batch, and each batch.
type roundTrips struct {
	n   atomic.Int64
	sql []string // first statement of each, in order (tests run it serially)
}

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	r.n.Add(1)
	r.sql = append(r.sql, d.SQL)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	r.n.Add(1)
	r.sql = append(r.sql, "batch:"+d.Batch.QueuedQueries[0].SQL)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (r *roundTrips) reset() { r.n.Store(0); r.sql = nil }

// tracedDB is a pool of one connection on a fresh database, with its round
// trips counted.
func tracedDB(t *testing.T) (*pgxpool.Pool, *roundTrips) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(storetest.NewDSN(t, storetest.Migrations{Service: "storetest", FS: os.DirFS("testdata/migrations")}))
	if err != nil {
		t.Fatal(err)
	}
	rt := &roundTrips{}
	cfg.ConnConfig.Tracer = rt
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	// Warm the connection and pgx's statement cache, so that the counts
	// below are the steady state's.
	for range 2 {
		if err := InLazyTx(t.Context(), pool, func(tx Tx) error {
			_, err := tx.Exec(t.Context(), "SELECT 1")
			return err
		}); err != nil {
			t.Fatal(err)
		}
	}
	rt.reset()
	return pool, rt
}

func itemCount(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(t.Context(), "SELECT count(*) FROM items").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// BEGIN rides with the first statement: one statement and its commit are
// two round trips instead of InTx's three, and the statements after the
// first run in the same transaction.
func TestLazyTxSendsBeginWithTheFirstStatement(t *testing.T) {
	pool, rt := tracedDB(t)
	ctx := t.Context()
	var first, second int64
	err := InLazyTx(ctx, pool, func(tx Tx) error {
		if err := tx.QueryRow(ctx, "SELECT txid_current()").Scan(&first); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (1, 'one', 1)"); err != nil {
			return err
		}
		return tx.QueryRow(ctx, "SELECT txid_current()").Scan(&second)
	})
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Errorf("statements ran in transactions %d and %d, want one", first, second)
	}
	if got := fmt.Sprint(rt.sql); got != "[batch:begin INSERT INTO items (id, name, qty) VALUES (1, 'one', 1) SELECT txid_current() commit]" {
		t.Errorf("round trips = %s", got)
	}
	if itemCount(t, pool) != 1 {
		t.Error("the insert was not committed")
	}

	rt.reset()
	if err := InTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "UPDATE items SET qty = 2")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	inTx := rt.n.Load()
	rt.reset()
	if err := InLazyTx(ctx, pool, func(tx Tx) error {
		_, err := tx.Exec(ctx, "UPDATE items SET qty = 3")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := rt.n.Load(); inTx != 3 || got != 2 {
		t.Errorf("one statement: InTx %d round trips, InLazyTx %d; want 3 and 2", inTx, got)
	}
}

// Until the transaction commits, another connection sees none of it.
func TestLazyTxIsATransaction(t *testing.T) {
	pool := storetest.NewDB(t, "storetest", os.DirFS("testdata/migrations"))
	ctx := t.Context()
	err := InLazyTx(ctx, pool, func(tx Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (1, 'one', 1)"); err != nil {
			return err
		}
		if n := itemCount(t, pool); n != 0 {
			t.Errorf("another connection sees %d items before the commit", n)
		}
		return nil
	})
	if err != nil || itemCount(t, pool) != 1 {
		t.Fatalf("err %v, %d items; want the insert committed", err, itemCount(t, pool))
	}
}

// Every way in: a batch, a query and a row first, each followed by more
// statements of the same transaction.
func TestLazyTxFirstStatementKinds(t *testing.T) {
	pool, _ := tracedDB(t)
	ctx := t.Context()
	t.Run("batch", func(t *testing.T) {
		var b pgx.Batch
		b.Queue("INSERT INTO items (id, name, qty) VALUES (10, 'ten', 1)")
		var name string
		b.Queue("SELECT name FROM items WHERE id = 10").QueryRow(func(r pgx.Row) error { return r.Scan(&name) })
		err := InLazyTx(ctx, pool, func(tx Tx) error {
			br := tx.SendBatch(ctx, &b)
			if tag, err := br.Exec(); err != nil || tag.RowsAffected() != 1 {
				return fmt.Errorf("insert: %v %v", tag, err)
			}
			if err := br.Close(); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "UPDATE items SET qty = 5 WHERE id = 10")
			return err
		})
		if err != nil || name != "ten" {
			t.Fatalf("err %v, name %q", err, name)
		}
	})
	t.Run("query", func(t *testing.T) {
		var ids []int
		err := InLazyTx(ctx, pool, func(tx Tx) error {
			rows, err := tx.Query(ctx, "SELECT id FROM items ORDER BY id")
			if err != nil {
				return err
			}
			if ids, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (11, 'eleven', 1)")
			return err
		})
		if err != nil || fmt.Sprint(ids) != "[10]" {
			t.Fatalf("err %v, ids %v", err, ids)
		}
	})
	t.Run("query closed early", func(t *testing.T) {
		err := InLazyTx(ctx, pool, func(tx Tx) error {
			rows, err := tx.Query(ctx, "SELECT id FROM items ORDER BY id")
			if err != nil {
				return err
			}
			rows.Next()
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, "DELETE FROM items WHERE id = 11")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("row not found", func(t *testing.T) {
		err := InLazyTx(ctx, pool, func(tx Tx) error {
			var id int
			if err := tx.QueryRow(ctx, "SELECT id FROM items WHERE id = 99").Scan(&id); !errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("scan: %v, want pgx.ErrNoRows", err)
			}
			_, err := tx.Exec(ctx, "UPDATE items SET qty = 6 WHERE id = 10")
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
	var qty int
	if err := pool.QueryRow(ctx, "SELECT qty FROM items WHERE id = 10").Scan(&qty); err != nil || qty != 6 || itemCount(t, pool) != 1 {
		t.Errorf("qty %d (%v), %d items; want 6 and one item", qty, err, itemCount(t, pool))
	}
}

// A failing first statement, a function's error, a swallowed statement
// error and a panic all leave nothing behind, and the connection goes back
// to the pool usable.
func TestLazyTxRollsBack(t *testing.T) {
	pool, rt := tracedDB(t)
	ctx := t.Context()
	insertBad := func(tx Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (1, 'one', -1)")
		return err
	}
	if err := InLazyTx(ctx, pool, insertBad); !errors.Is(MapError(err), ErrInvalid) {
		t.Errorf("failing first statement: err %v, want a check violation", err)
	}
	errOwn := errors.New("handler says no")
	if err := InLazyTx(ctx, pool, func(tx Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (2, 'two', 1)"); err != nil {
			return err
		}
		return errOwn
	}); !errors.Is(err, errOwn) {
		t.Errorf("function's error: %v", err)
	}
	err := InLazyTx(ctx, pool, func(tx Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (3, 'three', 1)"); err != nil {
			return err
		}
		_ = insertBad(tx) // swallowed: the transaction is aborted all the same
		return nil
	})
	if !errors.Is(err, pgx.ErrTxCommitRollback) {
		t.Errorf("swallowed error: commit returned %v, want pgx.ErrTxCommitRollback", err)
	}
	func() {
		defer func() { _ = recover() }()
		_ = InLazyTx(ctx, pool, func(tx Tx) error {
			if _, err := tx.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (4, 'four', 1)"); err != nil {
				return err
			}
			panic("handler panics")
		})
	}()
	if n := itemCount(t, pool); n != 0 {
		t.Errorf("%d items left behind, want none", n)
	}
	// A function that runs nothing costs nothing.
	rt.reset()
	if err := InLazyTx(ctx, pool, func(Tx) error { return nil }); err != nil || rt.n.Load() != 0 {
		t.Errorf("empty function: err %v after %d round trips, want none", err, rt.n.Load())
	}
	// Statements after the end are refused rather than run outside it.
	var kept Tx
	if err := InLazyTx(ctx, pool, func(tx Tx) error { kept = tx; return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := kept.Exec(ctx, "SELECT 1"); !errors.Is(err, errTxEnded) {
		t.Errorf("statement after commit: %v", err)
	}
}

// Serialization failures and deadlocks run the function again, as InTx.
func TestLazyTxRetriesRetryableErrors(t *testing.T) {
	pool, _ := tracedDB(t)
	ctx := t.Context()
	runs := 0
	err := InLazyTx(ctx, pool, func(tx Tx) error {
		runs++
		if _, err := tx.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES ($1, $2, 1)", runs, fmt.Sprint("run-", runs)); err != nil {
			return err
		}
		if runs == 1 {
			return &pgconn.PgError{Code: "40001", Message: "could not serialize access"}
		}
		return nil
	})
	if err != nil || runs != 2 {
		t.Fatalf("err %v after %d runs, want success on the second", err, runs)
	}
	var id int
	if err := pool.QueryRow(ctx, "SELECT id FROM items").Scan(&id); err != nil || id != 2 {
		t.Errorf("item %d (%v), want only the second run's", id, err)
	}
}
