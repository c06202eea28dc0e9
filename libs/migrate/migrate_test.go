package migrate_test

import (
	"context"
	"os"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"

	"github.com/cosell/cosell/libs/migrate"
	"github.com/cosell/cosell/libs/store/storetest"
)

// emptyDSN returns a database with nothing of the services under test in it.
func emptyDSN(t *testing.T) string {
	t.Helper()
	base := fstest.MapFS{"000001_nothing.up.sql": {Data: []byte("SELECT 1;")}}
	return storetest.NewDSN(t, storetest.Migrations{Service: "migrate-test-base", FS: base})
}

func tableExists(t *testing.T, conn *pgx.Conn, name string) bool {
	t.Helper()
	var ok bool
	if err := conn.QueryRow(t.Context(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatalf("to_regclass(%s): %v", name, err)
	}
	return ok
}

func version(t *testing.T, dsn, service, dir string) (uint, bool) {
	t.Helper()
	v, dirty, err := migrate.Version(t.Context(), dsn, service, os.DirFS(dir))
	if err != nil {
		t.Fatalf("Version(%s): %v", service, err)
	}
	return v, dirty
}

func TestUpKeepsEachServiceInItsOwnTableAndIsIdempotent(t *testing.T) {
	dsn := emptyDSN(t)
	ctx := t.Context()
	a, b := os.DirFS("testdata/a"), os.DirFS("testdata/b")

	if v, _ := version(t, dsn, "svc-a", "testdata/a"); v != 0 {
		t.Fatalf("version before Up = %d, want 0", v)
	}
	for range 2 { // the second round must be a no-op
		if err := migrate.Up(ctx, dsn, "svc-a", a); err != nil {
			t.Fatalf("Up svc-a: %v", err)
		}
		if err := migrate.Up(ctx, dsn, "svc-b", b); err != nil {
			t.Fatalf("Up svc-b: %v", err)
		}
	}

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	for _, table := range []string{"widgets", "gadgets", "sprockets", "schema_migrations_svc_a", "schema_migrations_svc_b"} {
		if !tableExists(t, conn, table) {
			t.Errorf("table %s missing", table)
		}
	}
	if tableExists(t, conn, "schema_migrations") {
		t.Error("the shared default schema_migrations table was created")
	}
	var widgets int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM widgets").Scan(&widgets); err != nil {
		t.Fatalf("count widgets: %v", err)
	}
	if widgets != 1 {
		t.Errorf("widgets = %d, want 1 (migration 2 ran more than once?)", widgets)
	}
	if v, dirty := version(t, dsn, "svc-a", "testdata/a"); v != 2 || dirty {
		t.Errorf("svc-a version = %d dirty=%v, want 2 clean", v, dirty)
	}
	if v, dirty := version(t, dsn, "svc-b", "testdata/b"); v != 1 || dirty {
		t.Errorf("svc-b version = %d dirty=%v, want 1 clean", v, dirty)
	}

	// Rolling one service back leaves the other alone.
	if err := migrate.Down(ctx, dsn, "svc-a", a, 1); err != nil {
		t.Fatalf("Down 1: %v", err)
	}
	if v, _ := version(t, dsn, "svc-a", "testdata/a"); v != 1 {
		t.Errorf("after Down 1: version = %d, want 1", v)
	}
	if tableExists(t, conn, "gadgets") || !tableExists(t, conn, "widgets") {
		t.Error("Down 1 did not undo exactly the last migration")
	}
	if err := migrate.Down(ctx, dsn, "svc-a", a, 0); err != nil {
		t.Fatalf("Down all: %v", err)
	}
	if tableExists(t, conn, "widgets") {
		t.Error("Down all left widgets")
	}
	if !tableExists(t, conn, "sprockets") {
		t.Error("rolling back svc-a removed svc-b's table")
	}
	if v, _ := version(t, dsn, "svc-b", "testdata/b"); v != 1 {
		t.Errorf("svc-b version = %d after svc-a's rollback, want 1", v)
	}
}

func TestUpReportsAFailedMigrationAsDirty(t *testing.T) {
	dsn := emptyDSN(t)
	err := migrate.Up(t.Context(), dsn, "broken", os.DirFS("testdata/broken"))
	if err == nil {
		t.Fatal("Up with a failing migration succeeded")
	}
	v, dirty := version(t, dsn, "broken", "testdata/broken")
	if v != 2 || !dirty {
		t.Errorf("version = %d dirty=%v, want 2 dirty", v, dirty)
	}
}

func TestRejectsBadServiceNames(t *testing.T) {
	for _, s := range []string{"", "Mapper", "svc;drop", "a b", "-x"} {
		if _, err := migrate.Table(s); err == nil {
			t.Errorf("Table(%q) accepted", s)
		}
		if err := migrate.Up(context.Background(), "postgres://invalid", s, os.DirFS("testdata/a")); err == nil {
			t.Errorf("Up with service %q succeeded", s)
		}
	}
	if got, err := migrate.Table("partnercenter-adapter"); err != nil || got != "schema_migrations_partnercenter_adapter" {
		t.Errorf("Table(partnercenter-adapter) = %q, %v", got, err)
	}
}

func TestUpHonoursCancelledContext(t *testing.T) {
	dsn := emptyDSN(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := migrate.Up(ctx, dsn, "svc-a", os.DirFS("testdata/a")); err == nil {
		t.Fatal("Up with a cancelled context succeeded")
	}
}
