package store_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/cosell/cosell/libs/store"
)

// TestRetentionDeletesExpiredRowsInBatches: only rows past their
// retention (and matching the rule's condition) go, in batches of the
// configured size; a trigger-guarded table is passed with the setting;
// the metric counts the rows.
func TestRetentionDeletesExpiredRowsInBatches(t *testing.T) {
	pool := newDB(t)
	ctx := t.Context()
	for _, q := range []string{
		`CREATE TABLE events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL, done boolean NOT NULL)`,
		`CREATE TABLE guarded (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL)`,
		`CREATE FUNCTION guard() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN
		   IF current_setting('test.allow_delete', true) = 'retention' THEN RETURN OLD; END IF;
		   RAISE EXCEPTION 'append-only';
		 END $$`,
		`CREATE TRIGGER guarded_only BEFORE DELETE ON guarded FOR EACH ROW EXECUTE FUNCTION guard()`,
		// 25 old and done, 5 old not done, 10 recent and done.
		`INSERT INTO events (at, done) SELECT now() - interval '40 days', true FROM generate_series(1, 25)`,
		`INSERT INTO events (at, done) SELECT now() - interval '40 days', false FROM generate_series(1, 5)`,
		`INSERT INTO events (at, done) SELECT now() - interval '1 day', true FROM generate_series(1, 10)`,
		`INSERT INTO guarded (at) SELECT now() - interval '400 days' FROM generate_series(1, 7)`,
		`INSERT INTO guarded (at) SELECT now() FROM generate_series(1, 3)`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := pool.Exec(ctx, `DELETE FROM guarded`); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("the guard lets a plain delete through: %v", err)
	}

	reader := sdkmetric.NewManualReader()
	meter := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)).Meter("test")
	var logs strings.Builder
	r, err := store.NewRetention(pool, []store.RetentionRule{
		{Table: "public.events", TimeColumn: "at", Where: "done", Retention: 30 * 24 * time.Hour},
		{Table: "public.guarded", TimeColumn: "at", Retention: 365 * 24 * time.Hour, AllowSetting: "test.allow_delete"},
		{Table: "public.items", TimeColumn: "at", Retention: 0}, // disabled: never touched
	}, store.RetentionConfig{Lease: "test/retention", Batch: 10, Meter: meter,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got["public.events"] != 25 || got["public.guarded"] != 7 || len(got) != 2 {
		t.Errorf("deleted %v, want 25 events and 7 guarded", got)
	}
	count := func(q string) int {
		var n int
		if err := pool.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(`SELECT count(*) FROM events WHERE done AND at < now() - interval '30 days'`); n != 0 {
		t.Errorf("%d expired events left", n)
	}
	if n := count(`SELECT count(*) FROM events`); n != 15 {
		t.Errorf("%d events left, want 15 (5 old not done, 10 recent)", n)
	}
	if n := count(`SELECT count(*) FROM guarded`); n != 3 {
		t.Errorf("%d guarded rows left, want 3", n)
	}
	if !strings.Contains(logs.String(), `"msg":"retention run"`) || !strings.Contains(logs.String(), `"deleted":32`) {
		t.Errorf("log: %s", logs.String())
	}
	if total := store.CounterTotals(t, reader)["cosell.retention.deleted"]; total != 32 {
		t.Errorf("cosell.retention.deleted = %d, want 32", total)
	}

	// A second run finds nothing.
	got, err = r.RunOnce(ctx)
	if err != nil || got["public.events"] != 0 || got["public.guarded"] != 0 {
		t.Errorf("second run: %v %v", got, err)
	}
}

// TestRetentionRunHoldsTheLease: Run runs at once under its lease and
// stops with its context.
func TestRetentionRunHoldsTheLease(t *testing.T) {
	pool := newDB(t)
	ctx, cancel := context.WithCancel(t.Context())
	if _, err := pool.Exec(ctx, `CREATE TABLE events (at timestamptz NOT NULL);
		INSERT INTO events SELECT now() - interval '2 hours' FROM generate_series(1, 3)`); err != nil {
		t.Fatal(err)
	}
	r, err := store.NewRetention(pool, []store.RetentionRule{{Table: "public.events", TimeColumn: "at", Retention: time.Hour}},
		store.RetentionConfig{Lease: "test/retention-run", Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var n int
		if err := pool.QueryRow(t.Context(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows still there", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop")
	}
}

func TestNewRetentionRejectsBadRules(t *testing.T) {
	for _, rule := range []store.RetentionRule{
		{Table: "a;drop", TimeColumn: "at", Retention: time.Hour},
		{Table: "t", TimeColumn: "at desc", Retention: time.Hour},
		{Table: "t", TimeColumn: "at", Retention: -time.Hour},
		{Table: "t", TimeColumn: "at", Retention: time.Hour, AllowSetting: "x'; --"},
	} {
		if _, err := store.NewRetention(nil, []store.RetentionRule{rule}, store.RetentionConfig{Lease: "x"}); err == nil {
			t.Errorf("rule %+v accepted", rule)
		}
	}
}
