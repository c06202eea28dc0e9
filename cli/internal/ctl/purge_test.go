package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/migrations"
)

// TestPurgeCommand runs cosellctl purge against a real database with every
// service's schema: the dry run counts and deletes nothing, --yes deletes
// only that customer's rows and writes the purge record, and both say that
// Salesforce, Partner Center and the streams are left alone.
func TestPurgeCommand(t *testing.T) {
	var sets []storetest.Migrations
	for _, svc := range migrations.Services() {
		fsys, err := migrations.FS(svc)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, storetest.Migrations{Service: svc, FS: fsys})
	}
	dsn := storetest.NewDSN(t, sets...)
	pool := storetest.Open(t, dsn)
	const (
		ref   = "9a1e5c3d-1111-4e2a-9c33-00000000aaaa"
		other = "9a1e5c3d-2222-4e2a-9c33-00000000bbbb"
	)
	for _, id := range []string{ref, other} {
		if _, err := pool.Exec(t.Context(), `WITH l AS (INSERT INTO mapper.links (referral_id, opportunity_id) VALUES ($1, $2) RETURNING id)
			INSERT INTO mapper.audit_events (link_id, referral_id, kind, message) SELECT id, $1, 'upsert_sent', 'sent' FROM l`,
			id, "006"+id[:15]); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		env := map[string]string{"DATABASE_URL": dsn, "USER": "carol"}
		app := &App{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return app.Run(ctx, args), out.String(), errOut.String()
	}
	count := func(q string, args ...any) int {
		var n int
		if err := pool.QueryRow(t.Context(), q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	code, out, errOut := run("purge", "--referral", ref)
	if code != 0 || !containsAll(out, "Would delete 2 rows of 1 link(s)", "audit_events", "Dry run: nothing was deleted",
		"Nothing was deleted or changed in Salesforce or Partner Center", "STREAM_MAX_AGE") {
		t.Errorf("dry run: exit %d\n%s%s", code, out, errOut)
	}
	if n := count(`SELECT count(*) FROM mapper.links`); n != 2 {
		t.Fatalf("the dry run deleted links: %d left", n)
	}

	code, out, errOut = run("purge", "--referral", ref, "--yes", "--json")
	if code != 0 {
		t.Fatalf("purge --yes: exit %d\n%s%s", code, out, errOut)
	}
	var res struct {
		DryRun   bool   `json:"dryRun"`
		Total    int64  `json:"total"`
		RecordID int64  `json:"recordId"`
		PurgedBy string `json:"purgedBy"`
		Tables   []struct {
			Schema, Table string
			Rows          int64
		} `json:"tables"`
		Notes []string `json:"notes"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("purge --json: %v\n%s", err, out)
	}
	if res.DryRun || res.Total != 2 || res.RecordID == 0 || res.PurgedBy != "carol" || len(res.Tables) == 0 ||
		!strings.Contains(strings.Join(res.Notes, " "), "Salesforce or Partner Center") {
		t.Errorf("purge --json: %+v", res)
	}
	if n := count(`SELECT count(*) FROM mapper.links WHERE referral_id = $1`, ref); n != 0 {
		t.Errorf("the purged link is still there")
	}
	if n := count(`SELECT count(*) FROM mapper.links WHERE referral_id = $1`, other); n != 1 {
		t.Errorf("the other customer's link is gone")
	}
	if n := count(`SELECT count(*) FROM mapper.audit_events WHERE referral_id = $1`, other); n != 1 {
		t.Errorf("the other customer's audit is gone")
	}
	if n := count(`SELECT count(*) FROM mapper.purges WHERE purged_by = 'carol' AND $1 = ANY(referral_ids)`, ref); n != 1 {
		t.Errorf("purge records: %d, want 1", n)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"purge"}, "give exactly one of --referral ID, --opportunity ID or --customer-name NAME"},
		{[]string{"purge", "--referral", ref, "--opportunity", "006000000000AAAAAA"}, "give exactly one"},
		{[]string{"purge", "--referral", "R-1"}, `id "R-1" is too short`},
		{[]string{"purge", "--referral", ref, "extra"}, `unexpected argument "extra"`},
	} {
		code, _, errOut := run(tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("cosellctl %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}
