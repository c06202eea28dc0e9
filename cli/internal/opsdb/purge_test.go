package opsdb

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/libs/store/storetest"
	"github.com/cosell/cosell/migrations"
)

// purgeTestDSN returns a database with every service's schema, as in
// production.
func purgeTestDSN(t *testing.T) string {
	t.Helper()
	var sets []storetest.Migrations
	for _, svc := range migrations.Services() {
		fsys, err := migrations.FS(svc)
		if err != nil {
			t.Fatal(err)
		}
		sets = append(sets, storetest.Migrations{Service: svc, FS: fsys})
	}
	return storetest.NewDSN(t, sets...)
}

// customer is one customer's ids in the seeded database.
type customer struct {
	referral, related, opp, account, name string
}

var (
	contoso  = customer{"3f0c1a52-aaaa-4b1e-9a11-000000000001", "3f0c1a52-aaaa-4b1e-9a11-0000000000r1", "006000000000AAAAAA", "001000000000AAAAAA", "Contoso  Ltd"}
	fabrikam = customer{"7b9d2e10-bbbb-4c2f-8b22-000000000002", "", "006000000000BBBBBB", "001000000000BBBBBB", "Fabrikam Inc"}
)

// seedCustomer writes rows about c in every table that can hold them.
func seedCustomer(t *testing.T, pool *pgxpool.Pool, c customer, seq int) {
	t.Helper()
	doc, _ := json.Marshal(map[string]any{"id": c.referral, "customerProfile": map[string]any{"name": c.name,
		"team": []any{map[string]string{"email": "someone@example.com"}}}})
	snap, err := proto.Marshal(&cosellv1.ReferralObserved{ReferralId: c.referral, ReferralJson: doc})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var linkID int64
	if err := pool.QueryRow(ctx, `INSERT INTO mapper.links (referral_id, related_referral_id, opportunity_id, account_id, snapshot)
		VALUES ($1, $2, $3, $4, $5) RETURNING id`, c.referral, c.related, c.opp, c.account, snap).Scan(&linkID); err != nil {
		t.Fatal(err)
	}
	dl := func(schema string) string {
		return `INSERT INTO ` + schema + `.dead_letters (service, consumer, stream, stream_seq, subject, msg_id, deliveries, reason, permanent, payload)
			VALUES ('s', 'c', 'S', $1, 'subj', $2, 5, 'boom', false, $3)`
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO mapper.audit_events (link_id, referral_id, opportunity_id, kind, message) VALUES ($1, $2, $3, 'upsert_sent', 'sent')`, []any{linkID, c.referral, c.opp}},
		{`INSERT INTO mapper.audit_events (link_id, referral_id, opportunity_id, kind, message) VALUES ($1, $2, '', 'salesforce_written', 'written')`, []any{linkID, c.referral}},
		{`INSERT INTO mapper.audit_events (opportunity_id, kind, message) VALUES ($1, 'opportunity_not_linked', 'no link')`, []any{c.opp}},
		{`INSERT INTO mapper.inbox (consumer, msg_id) VALUES ('mapper-salesforce-results', $1)`, []any{"sf-upsert:" + c.referral + ":2026"}},
		{dl("mapper"), []any{seq, "", snap}},
		{dl("partnercenter_adapter"), []any{seq, "pc-patch:" + c.referral + ":x", []byte("x")}},
		{dl("salesforce_adapter"), []any{seq, "", []byte("cmd for " + c.opp)}},
		{`INSERT INTO partnercenter_adapter.missing_referrals (referral_id, event_name, msg_id) VALUES ($1, 'referral-updated', 'm')`, []any{c.referral}},
		{`INSERT INTO partnercenter_adapter.commands (command_id, kind, opportunity_id, external_reference_id) VALUES ($1, 'create', $2, $2)`, []any{"pc-create:" + c.opp, c.opp}},
		{`INSERT INTO salesforce_adapter.observed (opportunity_id, system_modstamp) VALUES ($1, now())`, []any{c.opp}},
		{`INSERT INTO salesforce_adapter.accounts (match_key, account_id) VALUES ($1, $2)`, []any{normalizeName(c.name) + "|de|10115", c.account}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
}

// allTables lists the tables a purge covers.
var allTables = func() []string {
	var out []string
	for _, s := range purgeSteps {
		out = append(out, s.schema+"."+s.table)
	}
	return out
}()

func rowCounts(t *testing.T, pool *pgxpool.Pool) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, tbl := range allTables {
		var n int64
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+tbl).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[tbl] = n
	}
	return out
}

// wantPerCustomer is what seedCustomer writes per table.
var wantPerCustomer = map[string]int64{
	"mapper.links": 1, "mapper.audit_events": 3, "mapper.inbox": 1, "mapper.dead_letters": 1,
	"partnercenter_adapter.dead_letters": 1, "partnercenter_adapter.missing_referrals": 1, "partnercenter_adapter.commands": 1,
	"salesforce_adapter.dead_letters": 1, "salesforce_adapter.observed": 1, "salesforce_adapter.accounts": 1,
}

func TestPurgeDryRunThenDeleteOneCustomer(t *testing.T) {
	dsn := purgeTestDSN(t)
	pool := storetest.Open(t, dsn)
	seedCustomer(t, pool, contoso, 1)
	seedCustomer(t, pool, fabrikam, 2)
	ctx := t.Context()
	db, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	dry, err := db.Purge(ctx, PurgeSelector{ReferralID: contoso.referral}, PurgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || dry.Links != 1 || dry.Total != 12 || len(dry.Tables) != len(purgeSteps) {
		t.Errorf("dry run: %+v", dry)
	}
	for _, pt := range dry.Tables {
		if want := wantPerCustomer[pt.Schema+"."+pt.Table]; pt.Rows != want {
			t.Errorf("dry run %s.%s = %d, want %d", pt.Schema, pt.Table, pt.Rows, want)
		}
	}
	if fmt.Sprint(dry.ReferralIDs) != fmt.Sprint([]string{contoso.referral, contoso.related}) || fmt.Sprint(dry.OpportunityIDs) != fmt.Sprint([]string{contoso.opp}) {
		t.Errorf("dry run ids: %v %v", dry.ReferralIDs, dry.OpportunityIDs)
	}
	for tbl, n := range rowCounts(t, pool) {
		if n != 2*wantPerCustomer[tbl] {
			t.Errorf("the dry run changed %s: %d rows", tbl, n)
		}
	}

	done, err := db.Purge(ctx, PurgeSelector{ReferralID: contoso.referral}, PurgeOptions{Execute: true, By: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if done.DryRun || done.Total != dry.Total || done.RecordID == 0 || done.PurgedBy != "alice" {
		t.Errorf("purge: %+v", done)
	}
	// Exactly the other customer's rows are left.
	for tbl, n := range rowCounts(t, pool) {
		if n != wantPerCustomer[tbl] {
			t.Errorf("after the purge %s has %d rows, want %d (the other customer's)", tbl, n, wantPerCustomer[tbl])
		}
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM mapper.links WHERE referral_id = $1`, fabrikam.referral).Scan(&left); err != nil || left != 1 {
		t.Errorf("the other customer's link: %d %v", left, err)
	}

	// The purge record: who, what ids, how many rows; no customer data.
	var (
		by, selector string
		refs, opps   []string
		deleted      map[string]int64
	)
	if err := pool.QueryRow(ctx, `SELECT purged_by, selector, referral_ids, opportunity_ids, deleted FROM mapper.purges WHERE id = $1`,
		done.RecordID).Scan(&by, &selector, &refs, &opps, &deleted); err != nil {
		t.Fatal(err)
	}
	if by != "alice" || selector != "referral" || len(refs) != 2 || refs[0] != contoso.referral || len(opps) != 1 ||
		deleted["mapper.audit_events"] != 3 || deleted["salesforce_adapter.accounts"] != 1 {
		t.Errorf("purge record: %s %s %v %v %v", by, selector, refs, opps, deleted)
	}
	var record string
	if err := pool.QueryRow(ctx, `SELECT row_to_json(p)::text FROM mapper.purges p WHERE id = $1`, done.RecordID).Scan(&record); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(record), "contoso") || strings.Contains(record, "example.com") {
		t.Errorf("the purge record holds customer data: %s", record)
	}
	if _, err := pool.Exec(ctx, `DELETE FROM mapper.purges`); err == nil {
		t.Error("a purge record could be deleted")
	}

	// Purging again finds nothing and still records it.
	again, err := db.Purge(ctx, PurgeSelector{ReferralID: contoso.referral}, PurgeOptions{Execute: true, By: "alice"})
	if err != nil || again.Total != 0 || again.RecordID == done.RecordID {
		t.Errorf("second purge: %+v %v", again, err)
	}
}

func TestPurgeByOpportunityAndCustomerName(t *testing.T) {
	dsn := purgeTestDSN(t)
	pool := storetest.Open(t, dsn)
	seedCustomer(t, pool, contoso, 1)
	seedCustomer(t, pool, fabrikam, 2)
	ctx := t.Context()
	db, err := Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	dry, err := db.Purge(ctx, PurgeSelector{OpportunityID: fabrikam.opp}, PurgeOptions{})
	if err != nil || dry.Links != 1 || dry.Total != 12 || fmt.Sprint(dry.ReferralIDs) != fmt.Sprint([]string{fabrikam.referral}) {
		t.Errorf("by opportunity: %+v %v", dry, err)
	}

	// By name: case and spacing do not matter; the other customer stays.
	res, err := db.Purge(ctx, PurgeSelector{CustomerName: "  contoso ltd "}, PurgeOptions{Execute: true, By: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Selector != "customer-name" || res.Links != 1 || res.Total != 12 {
		t.Errorf("by name: %+v", res)
	}
	for tbl, n := range rowCounts(t, pool) {
		if n != wantPerCustomer[tbl] {
			t.Errorf("after the purge by name %s has %d rows, want %d", tbl, n, wantPerCustomer[tbl])
		}
	}

	// A name nobody has: nothing to delete.
	none, err := db.Purge(ctx, PurgeSelector{CustomerName: "Northwind"}, PurgeOptions{})
	if err != nil || none.Links != 0 || none.Total != 0 {
		t.Errorf("unknown name: %+v %v", none, err)
	}
}

func TestPurgeSelectorChecks(t *testing.T) {
	for _, sel := range []PurgeSelector{
		{},
		{ReferralID: "a-long-referral-id", OpportunityID: "006000000000AAAAAA"},
		{ReferralID: "R-1"},
		{CustomerName: "   "},
	} {
		if _, err := sel.kind(); err == nil {
			t.Errorf("selector %+v accepted", sel)
		}
	}
}
