package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cosell/cosell/libs/store"
)

// holder runs a lease in the background and reports what happens to it.
type holder struct {
	acquired chan struct{}
	fnDone   chan error // the cause of fn's context when fn returned
	release  chan struct{}
	runDone  chan error // receives Run's result once
	stopped  chan struct{}
	cancel   context.CancelFunc
}

func startHolder(t *testing.T, lease *store.Lease) *holder {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	h := &holder{
		acquired: make(chan struct{}, 10),
		fnDone:   make(chan error, 10),
		release:  make(chan struct{}),
		runDone:  make(chan error, 1),
		stopped:  make(chan struct{}),
		cancel:   cancel,
	}
	go func() {
		defer close(h.stopped)
		h.runDone <- lease.Run(ctx, func(ctx context.Context) error {
			h.acquired <- struct{}{}
			select {
			case <-ctx.Done():
				h.fnDone <- context.Cause(ctx)
				return ctx.Err()
			case <-h.release:
				h.fnDone <- nil
				return nil
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-h.stopped
	})
	return h
}

// waitForWaiter blocks until some session is queued on an advisory lock in
// this database: proof that a second holder is blocked, not merely slow.
func waitForWaiter(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var waiting int
		err := pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks
			WHERE locktype = 'advisory' AND NOT granted
			  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&waiting)
		if err != nil {
			t.Fatalf("pg_locks: %v", err)
		}
		if waiting > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("gave up waiting for the second holder to queue on the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func assertNotAcquired(t *testing.T, h *holder) {
	t.Helper()
	select {
	case <-h.acquired:
		t.Fatal("second holder acquired the lease while the first held it")
	default:
	}
}

func TestLeaseSecondHolderWaitsUntilFirstReleases(t *testing.T) {
	pool := newDB(t)
	first := startHolder(t, store.NewLease(pool, "test/sweep"))
	wait(t, first.acquired, "first holder to acquire")

	second := startHolder(t, store.NewLease(pool, "test/sweep"))
	waitForWaiter(t, pool)
	assertNotAcquired(t, second)

	// A lease with another name is independent.
	other := startHolder(t, store.NewLease(pool, "test/other"))
	wait(t, other.acquired, "holder of another lease to acquire")

	close(first.release)
	if err := wait(t, first.runDone, "first Run to return"); err != nil {
		t.Fatalf("first Run: %v", err)
	}
	wait(t, second.acquired, "second holder to take over")

	// Stopping the holder cancels fn and Run returns cleanly.
	second.cancel()
	if cause := wait(t, second.fnDone, "second fn to stop"); !errors.Is(cause, context.Canceled) {
		t.Errorf("fn context cause = %v, want context.Canceled", cause)
	}
	if err := wait(t, second.runDone, "second Run to return"); err != nil {
		t.Errorf("second Run after cancel: %v", err)
	}
}

func TestLeaseTakenOverWhenHolderConnectionDies(t *testing.T) {
	pool := newDB(t)
	opts := []store.LeaseOption{store.WithLeaseCheckInterval(20 * time.Millisecond), store.WithLeaseRetryInterval(20 * time.Millisecond)}
	first := startHolder(t, store.NewLease(pool, "test/sweep", opts...))
	wait(t, first.acquired, "first holder to acquire")
	second := startHolder(t, store.NewLease(pool, "test/sweep", opts...))
	waitForWaiter(t, pool)
	assertNotAcquired(t, second)

	// Kill the first holder's lock connection, as a crash or a network cut
	// would.
	var terminated bool
	err := pool.QueryRow(t.Context(), `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND granted
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&terminated)
	if err != nil || !terminated {
		t.Fatalf("terminate holder: %v (terminated=%v)", err, terminated)
	}

	wait(t, second.acquired, "second holder to take over")
	if cause := wait(t, first.fnDone, "first fn to be stopped"); !errors.Is(cause, store.ErrLeaseLost) {
		t.Errorf("first fn's context cause = %v, want ErrLeaseLost", cause)
	}
	// The first holder went back to waiting rather than returning.
	waitForWaiter(t, pool)
	select {
	case err := <-first.runDone:
		t.Fatalf("first Run returned after losing the lease: %v", err)
	default:
	}

	close(second.release)
	wait(t, second.runDone, "second Run to return")
	wait(t, first.acquired, "first holder to re-acquire")
}

func TestLeaseReturnsFnError(t *testing.T) {
	pool := newDB(t)
	errBoom := errors.New("sweep failed")
	err := store.NewLease(pool, "test/err").Run(t.Context(), func(context.Context) error { return errBoom })
	if !errors.Is(err, errBoom) {
		t.Fatalf("Run = %v, want fn's error", err)
	}
	// The lock was released: another run acquires at once.
	ran := false
	if err := store.NewLease(pool, "test/err").Run(t.Context(), func(context.Context) error { ran = true; return nil }); err != nil || !ran {
		t.Fatalf("second Run: ran=%v err=%v", ran, err)
	}
}
