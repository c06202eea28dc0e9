package linkstore_test

import (
	"context"
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
