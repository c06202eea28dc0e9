// Package storetest gives every Postgres test its own freshly migrated
// database, cheaply: the migrations run once into a template database, and
// each test clones it with CREATE DATABASE … TEMPLATE, which takes a few
// milliseconds instead of a migration run. Tests can then run in parallel
// without seeing each other's rows.
//
// The template's name is derived from a hash of the services and the full
// content of their migrations, so different packages, branches and versions
// never share a template that does not match their schema. Building a
// template is guarded by a Postgres advisory lock, so test binaries that
// `go test` runs in parallel build each template once and never race.
//
// The server is taken from TEST_DATABASE_URL (any database on it; the
// role needs CREATEDB), defaulting to DefaultURL. Templates are kept between
// runs; to reclaim their space run:
//
//	SELECT format('ALTER DATABASE %I IS_TEMPLATE false; DROP DATABASE %I;', datname, datname)
//	FROM pg_database WHERE datname LIKE 'cosell_tpl_%';
//
// and execute the statements it prints.
package storetest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cosell/cosell/libs/migrate"
)

// DefaultURL is the server used when TEST_DATABASE_URL is not set: the local
// Postgres the Makefile and CI start.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// Name prefixes of the databases this package creates.
const (
	templatePrefix = "cosell_tpl_"
	clonePrefix    = "cosell_t_"
)

// staleCloneAge is how old a clone must be before another test run drops it
// as left behind by a killed test binary; far longer than any test run.
const staleCloneAge = 6 * time.Hour

// templateLockKey serialises template builds and stale-clone cleanup across
// test binaries (advisory locks are per database; all binaries connect to
// the same admin database).
const templateLockKey = int64(0x636f73656c6c7470) // "coselltp"

// Migrations is one service's migrations folder.
type Migrations struct {
	// Service owns the migrations; it names the service's migrations table.
	Service string
	// FS holds the .sql files at its root.
	FS fs.FS
}

// NewDB returns a pool on a new database migrated with service's migrations,
// dropped when the test ends.
func NewDB(t testing.TB, service string, migrations fs.FS) *pgxpool.Pool {
	t.Helper()
	return Open(t, NewDSN(t, Migrations{Service: service, FS: migrations}))
}

// NewDSN creates a new database with every set of migrations applied in the
// order given (end-to-end tests put all services' tables in one database, as
// in production) and returns its connection string. The database is dropped,
// with any connections still open to it, when the test ends.
func NewDSN(t testing.TB, sets ...Migrations) string {
	t.Helper()
	ctx := context.Background()
	admin := AdminURL()

	tpl, err := templateName(sets)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("storetest: connect to %s (set TEST_DATABASE_URL): %v", redact(admin), err)
	}
	defer func() {
		if err := conn.Close(ctx); err != nil {
			t.Logf("storetest: close admin connection: %v", err)
		}
	}()

	if err := ensureTemplate(ctx, conn, admin, tpl, sets); err != nil {
		t.Fatalf("storetest: %v", err)
	}

	name, err := cloneName()
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+ident+" TEMPLATE "+pgx.Identifier{tpl}.Sanitize()); err != nil {
		t.Fatalf("storetest: clone %s: %v", tpl, err)
	}
	t.Cleanup(func() {
		dropDatabase(t, admin, name)
	})

	dsn, err := withDatabase(admin, name)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	return dsn
}

// Open returns a pool on dsn that is closed when the test ends.
func Open(t testing.TB, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatalf("storetest: open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// AdminURL is the connection string of the test server: TEST_DATABASE_URL or
// DefaultURL.
func AdminURL() string {
	if v := os.Getenv("TEST_DATABASE_URL"); v != "" {
		return v
	}
	return DefaultURL
}

// RepoMigrations returns the migrations folder of service in this
// repository (migrations/<service> next to go.work), found by walking up
// from the test's working directory, so services' tests use exactly the SQL
// that ships.
func RepoMigrations(t testing.TB, service string) fs.FS {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("storetest: no go.work above the test directory")
		}
		dir = parent
	}
	path := filepath.Join(dir, "migrations", service)
	if st, err := os.Stat(path); err != nil || !st.IsDir() {
		t.Fatalf("storetest: no migrations folder %s", path)
	}
	return os.DirFS(path)
}

// templateName hashes the services and every file of their migrations.
func templateName(sets []Migrations) (string, error) {
	if len(sets) == 0 {
		return "", errors.New("no migrations given")
	}
	h := sha256.New()
	for _, s := range sets {
		if s.FS == nil || s.Service == "" {
			return "", errors.New("migrations need a service name and a folder")
		}
		fmt.Fprintf(h, "service %q\n", s.Service)
		entries, err := fs.ReadDir(s.FS, ".")
		if err != nil {
			return "", fmt.Errorf("read migrations of %s: %w", s.Service, err)
		}
		names := make([]string, 0, len(entries))
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".sql") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			b, err := fs.ReadFile(s.FS, n)
			if err != nil {
				return "", fmt.Errorf("read migration %s/%s: %w", s.Service, n, err)
			}
			fmt.Fprintf(h, "file %q %d\n", n, len(b))
			h.Write(b)
		}
	}
	return templatePrefix + hex.EncodeToString(h.Sum(nil))[:24], nil
}

// ensureTemplate builds tpl unless it exists. It builds into a scratch
// database and renames it at the end, so a binary killed halfway never
// leaves a template that looks finished.
func ensureTemplate(ctx context.Context, conn *pgx.Conn, admin, tpl string, sets []Migrations) (err error) {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLockKey); err != nil {
		return fmt.Errorf("lock templates: %w", err)
	}
	defer func() {
		if _, uerr := conn.Exec(ctx, "SELECT pg_advisory_unlock($1)", templateLockKey); uerr != nil && err == nil {
			err = fmt.Errorf("unlock templates: %w", uerr)
		}
	}()

	if err := dropStaleClones(ctx, conn); err != nil {
		return err
	}

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", tpl).Scan(&exists); err != nil {
		return fmt.Errorf("look up template: %w", err)
	}
	if exists {
		return nil
	}

	build := tpl + "_build"
	buildIdent := pgx.Identifier{build}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+buildIdent+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop leftover %s: %w", build, err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+buildIdent); err != nil {
		return fmt.Errorf("create %s: %w", build, err)
	}
	dsn, err := withDatabase(admin, build)
	if err != nil {
		return err
	}
	for _, s := range sets {
		if err := migrate.Up(ctx, dsn, s.Service, s.FS); err != nil {
			return fmt.Errorf("build template: %w", err)
		}
	}
	tplIdent := pgx.Identifier{tpl}.Sanitize()
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+buildIdent+" RENAME TO "+tplIdent); err != nil {
		return fmt.Errorf("publish template: %w", err)
	}
	// A template nobody can connect to can always be cloned: CREATE DATABASE
	// fails while any session is connected to its template.
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+tplIdent+" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("protect template: %w", err)
	}
	return nil
}

// cloneName is unique per call and carries its creation time so that later
// runs can recognise clones a killed test binary never dropped.
func cloneName() (string, error) {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random name: %w", err)
	}
	return clonePrefix + strconv.FormatInt(time.Now().Unix(), 10) + "_" + hex.EncodeToString(b[:]), nil
}

func dropStaleClones(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, "SELECT datname FROM pg_database WHERE starts_with(datname, $1)", clonePrefix)
	if err != nil {
		return fmt.Errorf("list test databases: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("list test databases: %w", err)
	}
	cutoff := time.Now().Add(-staleCloneAge).Unix()
	for _, n := range names {
		ts, _, ok := strings.Cut(strings.TrimPrefix(n, clonePrefix), "_")
		created, perr := strconv.ParseInt(ts, 10, 64)
		if !ok || perr != nil || created >= cutoff {
			continue
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop stale test database %s: %w", n, err)
		}
	}
	return nil
}

// dropDatabase runs at test cleanup on its own connection, since the test's
// pools may already be closed or still open (FORCE ends them).
func dropDatabase(t testing.TB, admin, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Errorf("storetest: drop %s: %v", name, err)
		return
	}
	defer func() {
		if err := conn.Close(ctx); err != nil {
			t.Logf("storetest: close admin connection: %v", err)
		}
	}()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Errorf("storetest: drop %s: %v", name, err)
	}
}

// withDatabase returns dsn pointing at database name, for both URL and
// keyword/value connection strings.
func withDatabase(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return "", fmt.Errorf("parse TEST_DATABASE_URL: %w", err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// In keyword/value strings the last occurrence of a key wins.
	return dsn + " dbname=" + name, nil
}

// redact hides a password in a URL connection string for error messages.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		if strings.Contains(dsn, "password") {
			return "(connection string hidden: it contains a password)"
		}
		return dsn
	}
	return u.Redacted()
}
