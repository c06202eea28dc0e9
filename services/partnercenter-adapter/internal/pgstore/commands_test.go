package pgstore_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/partnercenter-adapter/internal/pgstore"
)

func newStore(t *testing.T) *pgstore.Store {
	t.Helper()
	return pgstore.New(storetest.NewDB(t, "partnercenter-adapter", storetest.RepoMigrations(t, "partnercenter-adapter")))
}

func TestCommandRecordLifecycle(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	c := pgstore.Command{ID: "c1", Kind: pgstore.KindCreate, OpportunityID: "006A", ExternalReferenceID: "006A"}

	if _, ok, err := s.Command(ctx, "c1"); err != nil || ok {
		t.Fatalf("before anything: ok=%v err=%v", ok, err)
	}
	for range 2 {
		if err := s.NotePost(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	got, ok, err := s.Command(ctx, "c1")
	if err != nil || !ok || got.PostAttempts != 2 || got.FirstPostAt.IsZero() || got.Done() {
		t.Fatalf("after two POSTs: %+v ok=%v err=%v", got, ok, err)
	}

	// FAILED keeps the record open.
	f := c
	f.Outcome, f.HTTPStatus, f.ErrorCode = "FAILED", 503, "serviceNotAvailable"
	if err := s.FailCommand(ctx, f); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Command(ctx, "c1"); got.Done() || got.Outcome != "FAILED" || got.PostAttempts != 2 {
		t.Errorf("after FAILED: %+v", got)
	}

	// The first completion wins; a late one gets the stored result back.
	first := c
	first.ReferralID, first.Outcome, first.Created, first.HTTPStatus, first.Result = "r1", "OK", true, 201, []byte("first")
	stored, err := s.CompleteCommand(ctx, first)
	if err != nil || !stored.Done() || string(stored.Result) != "first" || stored.ReferralID != "r1" || !stored.Created {
		t.Fatalf("complete: %+v %v", stored, err)
	}
	late := c
	late.ReferralID, late.Outcome, late.Result = "r2", "OK", []byte("late")
	stored, err = s.CompleteCommand(ctx, late)
	if err != nil || string(stored.Result) != "first" || stored.ReferralID != "r1" {
		t.Errorf("late completion replaced the first: %+v %v", stored, err)
	}
	if err := s.FailCommand(ctx, f); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Command(ctx, "c1"); got.Outcome != "OK" {
		t.Errorf("a FAILED after completion changed the record: %+v", got)
	}
	if _, err := s.CompleteCommand(ctx, pgstore.Command{ID: "c2", Kind: pgstore.KindPatch}); err == nil {
		t.Error("completion without a result accepted")
	}

	// Pruning keeps recent records.
	if n, err := s.PruneCommands(ctx, time.Hour); err != nil || n != 0 {
		t.Errorf("prune: %d %v", n, err)
	}
	if n, err := s.PruneCommands(ctx, time.Nanosecond); err != nil || n != 1 {
		t.Errorf("prune everything: %d %v", n, err)
	}
}

func TestLockCreateSerialisesOneOpportunity(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	release, err := s.LockCreate(ctx, "006A")
	if err != nil {
		t.Fatal(err)
	}
	// Another opportunity is not blocked.
	other, err := s.LockCreate(ctx, "006B")
	if err != nil {
		t.Fatal(err)
	}
	other()

	var acquired atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		r, err := s.LockCreate(ctx, "006A")
		if err != nil {
			t.Error(err)
			return
		}
		acquired.Store(true)
		r()
	}()
	time.Sleep(200 * time.Millisecond)
	if acquired.Load() {
		t.Fatal("a second lock on the same opportunity was granted while the first is held")
	}
	release()
	<-done
	if !acquired.Load() {
		t.Error("the second lock was never granted")
	}

	// A wait cut short by its context fails cleanly and leaves nothing held.
	release, err = s.LockCreate(ctx, "006A")
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := s.LockCreate(short, "006A"); err == nil {
		t.Fatal("lock granted while held")
	}
	release()
	r, err := s.LockCreate(ctx, "006A")
	if err != nil {
		t.Fatal(err)
	}
	r()
}
