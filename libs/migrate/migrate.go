// Package migrate applies a service's SQL migrations (golang-migrate, numbered
// NNNNNN_name.up.sql/.down.sql pairs) to the shared cosell database.
//
// Every service owns its tables and migrates only them, so each keeps its
// version in its own table, schema_migrations_<service>: services can be
// migrated, released and rolled back independently, and golang-migrate's
// advisory lock (derived from that table name) serialises only concurrent
// runs for the same service. It is called by the services' migrate
// subcommands, the migrate Job and storetest.
package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"time"

	gomigrate "github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver golang-migrate runs on
)

// LockTimeout bounds the wait for another run of the same service's
// migrations (say, two replicas of a Job) to finish.
const LockTimeout = time.Minute

var serviceName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,40}$`)

// Table returns the name of service's migrations table:
// schema_migrations_<service> with hyphens turned into underscores.
func Table(service string) (string, error) {
	if !serviceName.MatchString(service) {
		return "", fmt.Errorf("service name %q: want lower-case letters, digits, '-' or '_'", service)
	}
	return "schema_migrations_" + strings.ReplaceAll(service, "-", "_"), nil
}

// Up applies every pending migration in fsys (a folder of .sql files, e.g.
// an embed.FS sub-tree or os.DirFS("migrations/mapper")) for service. Running
// it again when nothing is pending is a no-op. Cancelling ctx stops after the
// migration in progress.
func Up(ctx context.Context, dsn, service string, fsys fs.FS) error {
	err := run(ctx, dsn, service, fsys, func(m *gomigrate.Migrate) error { return m.Up() })
	if err != nil {
		return fmt.Errorf("migrate %s up: %w", service, err)
	}
	return nil
}

// Down rolls back the last steps migrations of service (all of them when
// steps <= 0). It is meant for development and tests; production rolls
// forward.
func Down(ctx context.Context, dsn, service string, fsys fs.FS, steps int) error {
	err := run(ctx, dsn, service, fsys, func(m *gomigrate.Migrate) error {
		if steps <= 0 {
			return m.Down()
		}
		return m.Steps(-steps)
	})
	if err != nil {
		return fmt.Errorf("migrate %s down: %w", service, err)
	}
	return nil
}

// Version reports service's current migration version (0 when none has been
// applied) and whether the last migration failed halfway (dirty), which
// needs an operator before anything else runs.
func Version(ctx context.Context, dsn, service string, fsys fs.FS) (version uint, dirty bool, err error) {
	err = run(ctx, dsn, service, fsys, func(m *gomigrate.Migrate) error {
		var verr error
		version, dirty, verr = m.Version()
		if errors.Is(verr, gomigrate.ErrNilVersion) {
			return nil
		}
		return verr
	})
	if err != nil {
		return 0, false, fmt.Errorf("migrate %s version: %w", service, err)
	}
	return version, dirty, nil
}

// run opens the source and database, runs op, and closes both. A
// gomigrate.ErrNoChange from op counts as success.
func run(ctx context.Context, dsn, service string, fsys fs.FS, op func(*gomigrate.Migrate) error) (err error) {
	table, err := Table(service)
	if err != nil {
		return err
	}
	src, err := iofs.New(fsys, ".")
	if err != nil {
		return fmt.Errorf("open migrations: %w", err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return errors.Join(fmt.Errorf("open database: %w", err), src.Close())
	}
	// One connection for the lock and one for the statements is all it needs.
	db.SetMaxOpenConns(2)
	if err := db.PingContext(ctx); err != nil {
		return errors.Join(fmt.Errorf("connect: %w", err), src.Close(), db.Close())
	}
	driver, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{MigrationsTable: table})
	if err != nil {
		return errors.Join(fmt.Errorf("prepare %s: %w", table, err), src.Close(), db.Close())
	}
	m, err := gomigrate.NewWithInstance("iofs", src, "pgx5", driver)
	if err != nil {
		return errors.Join(fmt.Errorf("init: %w", err), src.Close(), driver.Close())
	}
	m.LockTimeout = LockTimeout
	defer func() {
		srcErr, dbErr := m.Close()
		if err == nil && (srcErr != nil || dbErr != nil) {
			err = fmt.Errorf("close: %w", errors.Join(srcErr, dbErr))
		}
	}()

	// golang-migrate has no context; its graceful stop finishes the
	// migration in progress and skips the rest.
	stop := context.AfterFunc(ctx, func() {
		select {
		case m.GracefulStop <- true:
		default:
		}
	})
	defer stop()

	if err := op(m); err != nil && !errors.Is(err, gomigrate.ErrNoChange) {
		return err
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stopped: %w", ctx.Err())
	}
	return nil
}
