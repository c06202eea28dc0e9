package linkstore_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/cosell/cosell/libs/migrate"
	"github.com/cosell/cosell/libs/store"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/services/mapper/internal/linkstore"
)

// Large link columns are compressed with lz4 where the server has it
// (migration 000008), values stay readable across the change, and the
// migration rolls back to the server's default.
func TestLargeColumnsUseLZ4(t *testing.T) {
	ctx := context.Background()
	fsys := storetest.RepoMigrations(t, "mapper")
	dsn := storetest.NewDSN(t, storetest.Migrations{Service: "mapper", FS: fsys})
	pool := storetest.Open(t, dsn)

	var methods string
	if err := pool.QueryRow(ctx, `SELECT array_to_string(enumvals, ',') FROM pg_settings WHERE name = 'default_toast_compression'`).Scan(&methods); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(methods, "lz4") {
		t.Skipf("this Postgres was built without lz4 (%s); the migration keeps pglz", methods)
	}
	// A snapshot-sized value that compresses (TOAST compresses values
	// over about 2 KB).
	big := []byte(strings.Repeat(`{"name":"Contoso deal","dealValue":125000,"currency":"USD"},`, 80))
	write := func(referralID string) {
		t.Helper()
		err := store.InTx(ctx, pool, func(tx pgx.Tx) error {
			l, err := linkstore.Lock(ctx, tx, referralID, "")
			if err != nil {
				return err
			}
			l.Snapshot, l.Command = big, big
			return linkstore.Save(ctx, tx, l)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	method := func(referralID string) (snapshot, command string) {
		t.Helper()
		var got []byte
		err := pool.QueryRow(ctx, `SELECT coalesce(pg_column_compression(snapshot), ''), coalesce(pg_column_compression(command), ''), snapshot
			FROM mapper.links WHERE referral_id = $1`, referralID).Scan(&snapshot, &command, &got)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(big) {
			t.Fatalf("link %s: snapshot read back differs", referralID)
		}
		return snapshot, command
	}

	write("r-lz4")
	if s, c := method("r-lz4"); s != "lz4" || c != "lz4" {
		t.Errorf("after migrating up: snapshot %q, command %q, want lz4", s, c)
	}
	if err := migrate.Down(ctx, dsn, "mapper", fsys, 1); err != nil {
		t.Fatal(err)
	}
	write("r-default")
	var def string
	if err := pool.QueryRow(ctx, `SHOW default_toast_compression`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	if s, _ := method("r-default"); s != def {
		t.Errorf("after migrating down: snapshot %q, want the server's default %q", s, def)
	}
	if s, _ := method("r-lz4"); s != "lz4" {
		t.Errorf("after migrating down, an older value: %q, want it kept as lz4 and readable", s)
	}
	if err := migrate.Up(ctx, dsn, "mapper", fsys); err != nil {
		t.Fatal(fmt.Errorf("up again: %w", err))
	}
}
