package linkstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
)

func TestLockCreatesOnceAndAuditIsAppendOnly(t *testing.T) {
	ctx := context.Background()
	pool := storetest.NewDB(t, "mapper", storetest.RepoMigrations(t, "mapper"))
	var created []bool
	for range 2 {
		err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
			l, err := linkstore.Lock(ctx, tx, "r1", "e1")
			if err != nil {
				return err
			}
			created = append(created, l.Created)
			l.OpportunityID = "006A"
			return linkstore.Save(ctx, tx, l, linkstore.Audit{ReferralID: "r1", Kind: "k", Message: "m", Details: map[string]any{"a": 1}},
				linkstore.Audit{ReferralID: "r1", Kind: "k2", Message: "m2"})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !created[0] || created[1] {
		t.Errorf("created = %v, want [true false]", created)
	}
	trail, err := linkstore.AuditTrail(ctx, pool, "r1", 10)
	if err != nil || len(trail) != 4 || trail[0].Details["a"] != float64(1) {
		t.Fatalf("trail = %+v, %v", trail, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE mapper.audit_events SET message = 'changed'`); err == nil {
		t.Error("audit row updated")
	}
	if _, err := pool.Exec(ctx, `DELETE FROM mapper.audit_events`); err == nil {
		t.Error("audit row deleted")
	}
	err = store.InTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := linkstore.LockExisting(ctx, tx, "nope")
		return err
	})
	if !linkstore.IsNotFound(err) {
		t.Errorf("LockExisting of unknown referral: %v", err)
	}
	l, err := linkstore.Get(ctx, pool, "r1")
	if err != nil || l.OpportunityID != "006A" || l.EngagementID != "e1" || l.State != linkstore.StateActive {
		t.Errorf("link = %+v, %v", l, err)
	}
}

// Save writes a large column only when the caller changed it: an unchanged
// one is left out of the UPDATE (here a value written behind the link's
// back survives), a changed one is written, and a projection set to nil is
// cleared.
func TestSaveWritesOnlyChangedLargeColumns(t *testing.T) {
	ctx := context.Background()
	pool := storetest.NewDB(t, "mapper", storetest.RepoMigrations(t, "mapper"))
	inTx := func(fn func(tx pgx.Tx) error) {
		t.Helper()
		if err := store.InTx(ctx, pool, fn); err != nil {
			t.Fatal(err)
		}
	}
	inTx(func(tx pgx.Tx) error {
		l, err := linkstore.Lock(ctx, tx, "r2", "e2")
		if err != nil {
			return err
		}
		l.Snapshot, l.SFRecord, l.Projection = []byte("snap-1"), []byte(`{"a": 1}`), []byte(`{"p": 1}`)
		l.Command, l.PCCommand, l.Sync = []byte("cmd-1"), []byte("pc-1"), []byte(`{"s": 1}`)
		return linkstore.Save(ctx, tx, l)
	})
	const marker = `UPDATE mapper.links SET snapshot = 'm', sf_record = '{"m": 0}', sf_projection = '{"m": 0}',
		command = 'm', pc_command = 'm', sync = '{"m": 0}' WHERE referral_id = 'r2'`
	inTx(func(tx pgx.Tx) error {
		l, err := linkstore.LockWithSnapshot(ctx, tx, "r2")
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, marker); err != nil {
			return err
		}
		l.ParkReason = "unchanged blobs"
		return linkstore.Save(ctx, tx, l)
	})
	read := func() (snapshot, record, projection, command, pcCommand, sync, reason string) {
		t.Helper()
		var proj *string
		err := pool.QueryRow(ctx, `SELECT convert_from(snapshot, 'UTF8'), sf_record::text, sf_projection::text,
			convert_from(command, 'UTF8'), convert_from(pc_command, 'UTF8'), sync::text, park_reason
			FROM mapper.links WHERE referral_id = 'r2'`).Scan(&snapshot, &record, &proj, &command, &pcCommand, &sync, &reason)
		if err != nil {
			t.Fatal(err)
		}
		if proj != nil {
			projection = *proj
		}
		return
	}
	snap, rec, proj, cmd, pc, sync, reason := read()
	if snap != "m" || rec != `{"m": 0}` || proj != `{"m": 0}` || cmd != "m" || pc != "m" || sync != `{"m": 0}` || reason != "unchanged blobs" {
		t.Errorf("after saving unchanged columns: %q %q %q %q %q %q %q, want the marker values kept and the reason saved",
			snap, rec, proj, cmd, pc, sync, reason)
	}
	inTx(func(tx pgx.Tx) error {
		l, err := linkstore.LockWithSnapshot(ctx, tx, "r2")
		if err != nil {
			return err
		}
		l.Snapshot, l.Projection, l.Command, l.Sync = []byte("snap-2"), nil, []byte("cmd-2"), []byte(`{"s": 2}`)
		if err := linkstore.Save(ctx, tx, l); err != nil {
			return err
		}
		// A second Save in the same transaction compares with what the
		// first wrote.
		l.PCCommand = []byte("pc-2")
		return linkstore.Save(ctx, tx, l)
	})
	snap, rec, proj, cmd, pc, sync, _ = read()
	if snap != "snap-2" || rec != `{"m": 0}` || proj != "" || cmd != "cmd-2" || pc != "pc-2" || sync != `{"s": 2}` {
		t.Errorf("after changing columns: %q %q %q %q %q %q, want snap-2, the record kept, no projection, cmd-2, pc-2, sync 2",
			snap, rec, proj, cmd, pc, sync)
	}
}

// MarkAndLock answers as MarkProcessed followed by LockExisting or
// LockWithSnapshot: first only once per message, the link locked with or
// without its blobs, and not-found (with first) for an unknown referral.
func TestMarkAndLock(t *testing.T) {
	ctx := context.Background()
	pool := storetest.NewDB(t, "mapper", storetest.RepoMigrations(t, "mapper"))
	if err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
		l, err := linkstore.Lock(ctx, tx, "r1", "e1")
		if err != nil {
			return err
		}
		l.OpportunityID = "006A"
		l.Snapshot, l.SFRecord = []byte("snapshot-bytes"), []byte(`{"Id":"006A"}`)
		return linkstore.Save(ctx, tx, l)
	}); err != nil {
		t.Fatal(err)
	}
	call := func(msgID, referralID string, blobs bool) (bool, *linkstore.Link, error) {
		var first bool
		var link *linkstore.Link
		err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
			var err error
			first, link, err = linkstore.MarkAndLock(ctx, tx, "mapper-referrals", msgID, referralID, blobs)
			return err
		})
		return first, link, err
	}
	first, l, err := call("m1", "r1", true)
	if err != nil || !first || l.EngagementID != "e1" || string(l.Snapshot) != "snapshot-bytes" || string(l.SFRecord) != `{"Id": "006A"}` {
		t.Fatalf("first delivery: first=%v link=%+v err=%v", first, l, err)
	}
	first, l, err = call("m1", "r1", false)
	if err != nil || first || l.ReferralID != "r1" || l.Snapshot != nil {
		t.Fatalf("redelivery without blobs: first=%v link=%+v err=%v", first, l, err)
	}
	first, l, err = call("m2", "unknown", true)
	if !linkstore.IsNotFound(err) || !first || l != nil {
		t.Fatalf("unknown referral: first=%v link=%+v err=%v", first, l, err)
	}
	for _, opp := range []string{"006A", "006B", ""} {
		var first bool
		var l *linkstore.Link
		err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
			var err error
			first, l, err = linkstore.MarkAndLockByOpportunity(ctx, tx, "mapper-opportunities", "o-"+opp, opp)
			return err
		})
		switch {
		case opp == "006A" && (err != nil || !first || l.ReferralID != "r1" || string(l.Snapshot) != "snapshot-bytes"):
			t.Errorf("by opportunity %s: first=%v link=%+v err=%v", opp, first, l, err)
		case opp != "006A" && (!linkstore.IsNotFound(err) || !first):
			t.Errorf("by opportunity %q: first=%v err=%v, want first and not found", opp, first, err)
		}
	}
	// The lock is real: a second transaction waits for the first.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, _, err := linkstore.MarkAndLock(ctx, tx, "mapper-referrals", "m3", "r1", false); err != nil {
		t.Fatal(err)
	}
	var blocked bool
	if err := pool.QueryRow(ctx, `SELECT NOT EXISTS (SELECT 1 FROM mapper.links WHERE referral_id = 'r1' FOR UPDATE SKIP LOCKED)`).Scan(&blocked); err != nil {
		t.Fatal(err)
	}
	if !blocked {
		t.Error("link of r1 not locked by MarkAndLock's transaction")
	}
}

// BenchmarkMarkAndLock compares a handler's opening (inbox insert, then
// the link's lock with its blobs) as two round trips and as one, on the
// test Postgres.
func BenchmarkMarkAndLock(b *testing.B) {
	ctx := context.Background()
	pool := storetest.NewDB(b, "mapper", storetest.RepoMigrations(b, "mapper"))
	if err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
		_, err := linkstore.Lock(ctx, tx, "r1", "e1")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	// One transaction, rolled back: the commit's WAL flush would hide the
	// round trip.
	n := 0
	run := func(b *testing.B, open func(tx pgx.Tx, msgID string) error) {
		tx, err := pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		defer tx.Rollback(ctx)
		for b.Loop() {
			n++
			if err := open(tx, fmt.Sprintf("m%d", n)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("two-round-trips", func(b *testing.B) {
		run(b, func(tx pgx.Tx, msgID string) error {
			if _, err := store.MarkProcessed(ctx, tx, linkstore.InboxTable, "mapper-referrals", msgID); err != nil {
				return err
			}
			_, err := linkstore.LockWithSnapshot(ctx, tx, "r1")
			return err
		})
	})
	b.Run("one-round-trip", func(b *testing.B) {
		run(b, func(tx pgx.Tx, msgID string) error {
			_, _, err := linkstore.MarkAndLock(ctx, tx, "mapper-referrals", msgID, "r1", true)
			return err
		})
	})
}
