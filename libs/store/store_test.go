package store_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/store/storetest"
)

func newDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	return storetest.NewDB(t, "storetest", os.DirFS("testdata/migrations"))
}

// wait blocks until ch delivers or the test's deadline guard trips; the guard
// only turns a hang into a failure, it asserts nothing about speed.
func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(30 * time.Second):
		t.Fatalf("gave up waiting for %s", what)
		var zero T
		return zero
	}
}

func TestNewDBGivesEachParallelTestItsOwnDatabase(t *testing.T) {
	names := make(chan string, 2)
	t.Run("group", func(t *testing.T) {
		for _, id := range []int64{1, 2} {
			t.Run("", func(t *testing.T) {
				t.Parallel()
				pool := newDB(t)
				ctx := t.Context()
				if _, err := pool.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES ($1, 'same-name', 1)", id); err != nil {
					t.Fatalf("insert: %v", err)
				}
				var n int
				if err := pool.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil {
					t.Fatalf("count: %v", err)
				}
				if n != 1 {
					t.Errorf("items = %d, want 1: the other test's row is visible", n)
				}
				var db string
				if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
					t.Fatalf("current_database: %v", err)
				}
				names <- db
			})
		}
	})
	a, b := <-names, <-names
	if a == b {
		t.Fatalf("both tests used database %s", a)
	}
	// Cleanup dropped both clones.
	conn, err := pgx.Connect(t.Context(), storetest.AdminURL())
	if err != nil {
		t.Fatalf("connect admin: %v", err)
	}
	defer conn.Close(t.Context())
	var left int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname IN ($1, $2)", a, b).Scan(&left); err != nil {
		t.Fatalf("look up clones: %v", err)
	}
	if left != 0 {
		t.Errorf("%d test databases left after cleanup", left)
	}
}

func TestInTxCommitsAndRollsBack(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	errBoom := errors.New("boom")

	err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (1, 'rolled-back', 1)"); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("InTx error = %v, want fn's error", err)
	}
	if err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (2, 'committed', 1)")
		return err
	}); err != nil {
		t.Fatalf("InTx: %v", err)
	}
	var names []string
	rows, err := pool.Query(ctx, "SELECT name FROM items ORDER BY id")
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	if len(names) != 1 || names[0] != "committed" {
		t.Fatalf("items = %v, want only [committed]", names)
	}
}

// raise makes Postgres fail the current statement with the given SQLSTATE,
// which is how the retry path is driven without staging a real race.
func raise(ctx context.Context, tx pgx.Tx, code string) error {
	_, err := tx.Exec(ctx, "DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '"+code+"'; END $$")
	return err
}

func TestInTxRetriesSerializationFailuresAndDeadlocks(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()

	for _, code := range []string{"40001", "40P01"} {
		attempts := 0
		err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
			attempts++
			if _, err := tx.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES ($1, $2, 1) ON CONFLICT (id) DO NOTHING", len(code), code); err != nil {
				return err
			}
			if attempts == 1 {
				return raise(ctx, tx, code)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: InTx: %v", code, err)
		}
		if attempts != 2 {
			t.Errorf("%s: attempts = %d, want 2", code, attempts)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil {
		t.Fatalf("count: %v", err)
	}
	if n != 1 {
		t.Errorf("rows = %d, want 1 (the first attempt's insert must have been rolled back)", n)
	}
}

func TestInTxGivesUpAfterBoundedAttempts(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()

	attempts := 0
	err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
		attempts++
		return raise(ctx, tx, "40001")
	})
	if !store.IsRetryable(err) {
		t.Fatalf("error = %v, want a retryable error", err)
	}
	if attempts != store.DefaultTxAttempts {
		t.Errorf("attempts = %d, want %d", attempts, store.DefaultTxAttempts)
	}

	attempts = 0
	err = store.InTx(ctx, pool, func(tx pgx.Tx) error {
		attempts++
		return raise(ctx, tx, "23505")
	})
	if err == nil || attempts != 1 {
		t.Errorf("non-retryable error: attempts = %d, err = %v; want one attempt and an error", attempts, err)
	}

	attempts = 0
	_ = store.InTx(ctx, pool, func(tx pgx.Tx) error {
		attempts++
		return raise(ctx, tx, "40001")
	}, store.Attempts(1))
	if attempts != 1 {
		t.Errorf("Attempts(1): attempts = %d, want 1", attempts)
	}
}

func TestInTxReadOnly(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (1, 'x', 1)")
		return err
	}, store.ReadOnly())
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
		t.Fatalf("write in a read-only transaction: err = %v, want SQLSTATE 25006", err)
	}
}

func TestMapError(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	if _, err := pool.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (1, 'a', 1)"); err != nil {
		t.Fatalf("seed: %v", err)
	}

	tests := []struct {
		name string
		run  func() error
		want error
	}{
		{"no rows", func() error {
			var id int64
			return pool.QueryRow(ctx, "SELECT id FROM items WHERE id = 42").Scan(&id)
		}, store.ErrNotFound},
		{"unique violation", func() error {
			_, err := pool.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (2, 'a', 1)")
			return err
		}, store.ErrConflict},
		{"check violation", func() error {
			_, err := pool.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (3, 'c', -1)")
			return err
		}, store.ErrInvalid},
		{"not null violation", func() error {
			_, err := pool.Exec(ctx, "INSERT INTO items (id, name, qty) VALUES (4, NULL, 1)")
			return err
		}, store.ErrInvalid},
		{"deadlock", func() error {
			return store.InTx(ctx, pool, func(tx pgx.Tx) error { return raise(ctx, tx, "40P01") }, store.Attempts(1))
		}, store.ErrRetryable},
		{"cancelled statement", func() error {
			_, err := pool.Exec(ctx, "SET statement_timeout = 1; SELECT pg_sleep(1)")
			return err
		}, store.ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := tc.run()
			if raw == nil {
				t.Fatal("statement succeeded, want an error")
			}
			err := store.MapError(raw)
			if !errors.Is(err, tc.want) {
				t.Fatalf("MapError(%v) = %v, want %v", raw, err, tc.want)
			}
			for _, other := range []error{store.ErrNotFound, store.ErrConflict, store.ErrInvalid, store.ErrRetryable, store.ErrUnavailable} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("MapError(%v) also matches %v", raw, other)
				}
			}
			if !errors.Is(err, raw) {
				t.Errorf("MapError lost the original error")
			}
			if store.MapError(err) != err {
				t.Errorf("MapError is not idempotent")
			}
		})
	}
	if store.MapError(nil) != nil {
		t.Error("MapError(nil) != nil")
	}
	plain := errors.New("plain")
	if store.MapError(plain) != plain {
		t.Error("MapError changed an unrecognised error")
	}
}

func TestMarkProcessedIsTrueOnlyTheFirstTime(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()

	mark := func(consumer, id string) bool {
		t.Helper()
		var first bool
		if err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
			var err error
			first, err = store.MarkProcessed(ctx, tx, "inbox", consumer, id)
			return err
		}); err != nil {
			t.Fatalf("MarkProcessed(%s, %s): %v", consumer, id, err)
		}
		return first
	}
	if !mark("mapper", "m-1") {
		t.Error("first delivery: first = false")
	}
	if mark("mapper", "m-1") {
		t.Error("redelivery: first = true")
	}
	if !mark("salesforce", "m-1") {
		t.Error("same message, other consumer: first = false")
	}

	// A rolled-back transaction leaves no trace, so the redelivery is
	// processed for real.
	errBoom := errors.New("effects failed")
	err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
		if _, err := store.MarkProcessed(ctx, tx, "inbox", "mapper", "m-2"); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("InTx: %v", err)
	}
	if !mark("mapper", "m-2") {
		t.Error("after rollback: first = false")
	}
}

// A queued MarkProcessed answers as MarkProcessed does, in one round trip
// with the statement queued after it.
func TestQueueMarkProcessedSharesTheRoundTrip(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	mark := func(id string) (bool, int) {
		t.Helper()
		var first bool
		var n int
		if err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
			b := &pgx.Batch{}
			if err := store.QueueMarkProcessed(b, "inbox", "mapper", id); err != nil {
				return err
			}
			b.Queue(`SELECT count(*) FROM inbox WHERE consumer = 'mapper'`)
			br := tx.SendBatch(ctx, b)
			var err error
			if first, err = store.MarkedResult(br); err != nil {
				br.Close()
				return err
			}
			if err := br.QueryRow().Scan(&n); err != nil {
				br.Close()
				return err
			}
			return br.Close()
		}); err != nil {
			t.Fatalf("queued MarkProcessed(%s): %v", id, err)
		}
		return first, n
	}
	if first, n := mark("q-1"); !first || n != 1 {
		t.Errorf("first delivery: first = %v, rows seen after it = %d; want true, 1", first, n)
	}
	if first, n := mark("q-1"); first || n != 1 {
		t.Errorf("redelivery: first = %v, rows = %d; want false, 1", first, n)
	}
	if err := store.QueueMarkProcessed(&pgx.Batch{}, "in box", "c", "m"); err == nil {
		t.Error("bad table name accepted")
	}
	if err := store.QueueMarkProcessed(&pgx.Batch{}, "inbox", "", "m"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("empty consumer: %v, want ErrInvalid", err)
	}
}

func TestMarkProcessedRejectsBadTableNames(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	for _, table := range []string{"", "Inbox", "inbox; DROP TABLE items", `in"box`, "a.b.c", "1inbox"} {
		err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
			_, err := store.MarkProcessed(ctx, tx, table, "c", "m")
			return err
		})
		if err == nil {
			t.Errorf("table %q accepted", table)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&n); err != nil {
		t.Fatalf("items table gone: %v", err)
	}
	err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := store.MarkProcessed(ctx, tx, "public.inbox", "c", "m")
		return err
	})
	if err != nil {
		t.Errorf("schema-qualified name: %v", err)
	}
}

func TestInboxDDLCreatesAWorkingInbox(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	ddl, err := store.InboxDDL("other_inbox")
	if err != nil {
		t.Fatalf("InboxDDL: %v", err)
	}
	if _, err := pool.Exec(ctx, ddl); err != nil {
		t.Fatalf("apply DDL: %v\n%s", err, ddl)
	}
	if _, err := store.InboxDDL("Bad Name"); err == nil {
		t.Error("InboxDDL accepted a bad name")
	}
	var first bool
	if err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
		first, err = store.MarkProcessed(ctx, tx, "other_inbox", "c", "m")
		return err
	}); err != nil || !first {
		t.Fatalf("MarkProcessed on DDL-made table: first=%v err=%v", first, err)
	}
}

func TestPruneInboxRemovesOnlyOldRows(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	if _, err := pool.Exec(ctx, `INSERT INTO inbox (consumer, msg_id, processed_at) VALUES
		('c', 'old', now() - interval '3 days'), ('c', 'new', now())`); err != nil {
		t.Fatalf("seed: %v", err)
	}
	n, err := store.PruneInbox(ctx, pool, "inbox", 24*time.Hour)
	if err != nil {
		t.Fatalf("PruneInbox: %v", err)
	}
	if n != 1 {
		t.Errorf("pruned %d rows, want 1", n)
	}
	var left []string
	rows, err := pool.Query(ctx, "SELECT msg_id FROM inbox")
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	if left, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatalf("collect: %v", err)
	}
	if strings.Join(left, ",") != "new" {
		t.Errorf("left %v, want [new]", left)
	}
}

func TestNewPoolAppliesDefaultsAndRespectsDSN(t *testing.T) {
	dsn := storetest.NewDSN(t, storetest.Migrations{Service: "storetest", FS: os.DirFS("testdata/migrations")})
	ctx := t.Context()

	pool, err := store.NewPool(ctx, dsn, store.WithApplicationName("store-test"))
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	defer pool.Close()
	if got := pool.Config().MaxConns; got != store.DefaultMaxConns {
		t.Errorf("MaxConns = %d, want %d", got, store.DefaultMaxConns)
	}
	var app string
	if err := pool.QueryRow(ctx, "SHOW application_name").Scan(&app); err != nil {
		t.Fatalf("show application_name: %v", err)
	}
	if app != "store-test" {
		t.Errorf("application_name = %q", app)
	}
	if err := store.Ping(pool)(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}

	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	tuned, err := store.NewPool(ctx, dsn+sep+"pool_max_conns=3")
	if err != nil {
		t.Fatalf("NewPool with pool_max_conns: %v", err)
	}
	defer tuned.Close()
	if got := tuned.Config().MaxConns; got != 3 {
		t.Errorf("MaxConns = %d, want the DSN's 3", got)
	}

	if _, err := store.NewPool(ctx, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"); err == nil {
		t.Error("NewPool against a closed port succeeded; want the startup ping to fail")
	}
}
