package salesforce

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/cosell/cosell/emulators/internal/soql"
)

func q(soql string) string { return v + "/query?q=" + url.QueryEscape(soql) }

// seedOpps creates n opportunities through sObject Collections, 200 at a
// time, named Opp-0000…
func (h *harness) seedOpps(n int, extra map[string]any) {
	h.t.Helper()
	for start := 0; start < n; start += maxCollection {
		var recs []map[string]any
		for i := start; i < min(n, start+maxCollection); i++ {
			r := newOpp(map[string]any{"attributes": map[string]any{"type": "Opportunity"}, "Name": fmt.Sprintf("Opp-%04d", i)})
			for k, v := range extra {
				r[k] = v
			}
			recs = append(recs, r)
		}
		var res []saveResult
		h.expect(http.MethodPost, v+"/composite/sobjects", map[string]any{"allOrNone": true, "records": recs}, 200, &res)
		for _, r := range res {
			if !r.Success {
				h.t.Fatalf("seed: %+v", r)
			}
		}
	}
}

func TestQueryBasicsAndRelationships(t *testing.T) {
	h := newHarness(t)
	acct := h.create("Account", map[string]any{"Name": "Contoso", "BillingCountry": "DE"})
	opp := h.create("Opportunity", newOpp(map[string]any{"AccountId": acct, "Amount": 10, "Referral_Identifier__c": "R-1"}))
	h.create("Opportunity", newOpp(map[string]any{"Name": "Other", "Amount": 99}))
	var res struct {
		TotalSize      int
		Done           bool
		NextRecordsURL *string `json:"nextRecordsUrl"`
		Records        []map[string]any
	}
	h.expect(http.MethodGet, q("SELECT Id, Name, Account.BillingCountry FROM Opportunity WHERE Amount < 50 AND Referral_Identifier__c LIKE 'R-%'"), nil, 200, &res)
	if res.TotalSize != 1 || !res.Done || res.NextRecordsURL != nil || len(res.Records) != 1 {
		t.Fatalf("query result %+v", res)
	}
	r := res.Records[0]
	if r["Id"] != opp || r["Account"].(map[string]any)["BillingCountry"] != "DE" {
		t.Fatalf("record %v", r)
	}
	if r["attributes"].(map[string]any)["url"] != v+"/sobjects/Opportunity/"+opp {
		t.Fatalf("attributes %v", r["attributes"])
	}
	// Datetime literals on SystemModstamp, COUNT().
	h.expect(http.MethodGet, q("SELECT COUNT() FROM Opportunity WHERE SystemModstamp > 2026-01-01T00:00:00Z"), nil, 200, &res)
	if res.TotalSize != 2 || len(res.Records) != 0 {
		t.Fatalf("count %+v", res)
	}
	h.expectError(http.MethodGet, q("SELECT Id FROM"), nil, 400, "MALFORMED_QUERY", "")
	h.expectError(http.MethodGet, q("SELECT Nope__c FROM Opportunity"), nil, 400, "INVALID_FIELD", "")
	h.expectError(http.MethodGet, q("SELECT Id FROM Nope__c"), nil, 400, "INVALID_TYPE", "")
	h.expectError(http.MethodGet, v+"/query", nil, 400, "MALFORMED_QUERY", "A query string has to be specified")
}

func TestQueryPagingAndQueryAll(t *testing.T) {
	h := newHarness(t)
	h.seedOpps(450, nil)
	var page struct {
		TotalSize      int
		Done           bool
		NextRecordsURL string `json:"nextRecordsUrl"`
		Records        []map[string]any
	}
	h.expect(http.MethodGet, q("SELECT Id, Name FROM Opportunity ORDER BY Name"), nil, 200, &page, "Sforce-Query-Options", "batchSize=200")
	var names []string
	pages := 0
	for {
		pages++
		if page.TotalSize != 450 {
			t.Fatalf("totalSize %d", page.TotalSize)
		}
		for _, r := range page.Records {
			names = append(names, r["Name"].(string))
		}
		if page.Done {
			if page.NextRecordsURL != "" {
				t.Fatalf("last page has nextRecordsUrl %q", page.NextRecordsURL)
			}
			break
		}
		if !strings.HasPrefix(page.NextRecordsURL, v+"/query/01g") || !strings.HasSuffix(page.NextRecordsURL, fmt.Sprintf("-%d", len(names))) {
			t.Fatalf("nextRecordsUrl %q", page.NextRecordsURL)
		}
		if len(page.Records) != 200 {
			t.Fatalf("page of %d records", len(page.Records))
		}
		next := page.NextRecordsURL
		page.NextRecordsURL, page.Records = "", nil
		h.expect(http.MethodGet, next, nil, 200, &page)
	}
	if pages != 3 || len(names) != 450 || names[0] != "Opp-0000" || names[449] != "Opp-0449" {
		t.Fatalf("%d pages, %d names (%s … %s)", pages, len(names), names[0], names[len(names)-1])
	}
	// Below 200 the hint is raised to 200; the default page is 2000.
	h.expect(http.MethodGet, q("SELECT Id FROM Opportunity"), nil, 200, &page, "Sforce-Query-Options", "batchSize=10")
	if len(page.Records) != 200 {
		t.Fatalf("batchSize=10 gave %d", len(page.Records))
	}
	h.expect(http.MethodGet, q("SELECT Id FROM Opportunity"), nil, 200, &page)
	if len(page.Records) != 450 || !page.Done {
		t.Fatalf("default page %d", len(page.Records))
	}

	// queryAll sees deleted records; query does not.
	var one struct{ Records []map[string]any }
	h.expect(http.MethodGet, q("SELECT Id FROM Opportunity WHERE Name = 'Opp-0007'"), nil, 200, &one)
	id := one.Records[0]["Id"].(string)
	h.expect(http.MethodDelete, v+"/sobjects/Opportunity/"+id, nil, 204, nil)
	h.expect(http.MethodGet, q("SELECT Id FROM Opportunity WHERE Name = 'Opp-0007'"), nil, 200, &one)
	if len(one.Records) != 0 {
		t.Fatalf("query returned a deleted record")
	}
	h.expect(http.MethodGet, v+"/queryAll?q="+url.QueryEscape("SELECT Id, IsDeleted FROM Opportunity WHERE Name = 'Opp-0007'"), nil, 200, &one)
	if len(one.Records) != 1 || one.Records[0]["IsDeleted"] != true {
		t.Fatalf("queryAll %v", one.Records)
	}
	h.expect(http.MethodGet, v+"/queryAll?q="+url.QueryEscape("SELECT Id FROM Opportunity"), nil, 200, &page, "Sforce-Query-Options", "batchSize=200")
	if !strings.HasPrefix(page.NextRecordsURL, v+"/queryAll/01g") {
		t.Fatalf("queryAll locator %q", page.NextRecordsURL)
	}

	// Locators expire after two days; bad ones are rejected.
	h.expectError(http.MethodGet, v+"/query/01gXXXXXXXXXXXXXXX-200", nil, 400, "INVALID_QUERY_LOCATOR", "")
	h.clock.Advance(49 * time.Hour)
	h.token = h.clientCredentials()
	h.expectError(http.MethodGet, page.NextRecordsURL, nil, 400, "INVALID_QUERY_LOCATOR", "")
}

// A change poll (a top-level SystemModstamp >= condition) is served from
// the SystemModstamp index; it must return exactly what a scan of every
// record returns, in the same order, after inserts, updates, deletes and
// allOrNone requests whose writes were undone.
func TestModstampPollMatchesFullScan(t *testing.T) {
	h := newHarness(t)
	var ids []string
	var cutoffs []string
	for i := range 12 {
		cutoffs = append(cutoffs, h.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
		ids = append(ids, h.create("Opportunity", newOpp(map[string]any{"Name": fmt.Sprintf("Poll-%02d", i)})))
		h.clock.Advance(time.Second)
	}
	// Older records change later, so stamp order differs from creation order.
	for _, i := range []int{0, 5, 2} {
		h.expect(http.MethodPatch, v+"/sobjects/Opportunity/"+ids[i], map[string]any{"Amount": 10 + i}, 204, nil)
		h.clock.Advance(time.Second)
	}
	h.expect(http.MethodDelete, v+"/sobjects/Opportunity/"+ids[7], nil, 204, nil)
	h.clock.Advance(time.Second)
	// allOrNone requests that fail: the insert and the update are undone.
	invalid := map[string]any{"attributes": map[string]any{"type": "Opportunity"}, "Name": "missing stage and close date"}
	h.expect(http.MethodPost, v+"/composite/sobjects", map[string]any{"allOrNone": true, "records": []any{
		newOpp(map[string]any{"attributes": map[string]any{"type": "Opportunity"}, "Name": "Undone"}), invalid}}, 200, nil)
	h.clock.Advance(time.Second)
	h.expect(http.MethodPost, v+"/composite", map[string]any{"allOrNone": true, "compositeRequest": []any{
		map[string]any{"method": "PATCH", "url": v + "/sobjects/Opportunity/" + ids[3], "referenceId": "up", "body": map[string]any{"Amount": 99}},
		map[string]any{"method": "DELETE", "url": v + "/sobjects/Opportunity/" + ids[4], "referenceId": "del"},
		map[string]any{"method": "POST", "url": v + "/sobjects/Opportunity", "referenceId": "bad", "body": newOpp(map[string]any{"StageName": "Nope"})},
	}}, 200, nil)
	if h.get("Opportunity", ids[3])["Amount"] == float64(99) {
		t.Fatal("the allOrNone composite request was not rolled back")
	}
	h.clock.Advance(time.Second)
	h.expect(http.MethodPatch, v+"/sobjects/Opportunity/"+ids[9], map[string]any{"Amount": 7}, 204, nil)
	cutoffs = append(cutoffs, h.clock.Now().UTC().Format("2006-01-02T15:04:05.000Z"))

	type result struct {
		TotalSize int
		Records   []map[string]any
	}
	names := func(r result) []string {
		var out []string
		for _, rec := range r.Records {
			out = append(out, fmt.Sprint(rec["Name"], "/", rec["IsDeleted"]))
		}
		return out
	}
	polled := 0
	for _, from := range cutoffs {
		for _, op := range []string{">=", ">"} {
			var indexed, scanned result
			h.expect(http.MethodGet, v+"/queryAll?q="+url.QueryEscape("SELECT Name, IsDeleted FROM Opportunity WHERE SystemModstamp "+op+" "+from+" AND Name LIKE 'Poll-%'"), nil, 200, &indexed)
			// A top-level OR is not the poll's shape: every record is scanned.
			h.expect(http.MethodGet, v+"/queryAll?q="+url.QueryEscape("SELECT Name, IsDeleted FROM Opportunity WHERE (SystemModstamp "+op+" "+from+" OR Name = 'none') AND Name LIKE 'Poll-%'"), nil, 200, &scanned)
			if got, want := strings.Join(names(indexed), " "), strings.Join(names(scanned), " "); got != want {
				t.Errorf("SystemModstamp %s %s:\n index %s\n scan  %s", op, from, got, want)
			}
			polled += indexed.TotalSize
		}
	}
	if polled == 0 {
		t.Fatal("no poll returned a record")
	}
	var undone result
	h.expect(http.MethodGet, v+"/queryAll?q="+url.QueryEscape("SELECT Name FROM Opportunity WHERE SystemModstamp >= "+cutoffs[0]+" AND (Name = 'Undone' OR Amount = 99)"), nil, 200, &undone)
	if undone.TotalSize != 0 {
		t.Errorf("undone writes visible to a poll: %v", undone.Records)
	}
}

// scanOnly is the store without its indexes: a query through it scans every
// record.
type scanOnly struct{ v *view }

func (s scanOnly) Scan(object string, fn func(map[string]any) bool) { s.v.Scan(object, fn) }

func (s scanOnly) Get(object, id string) (map[string]any, bool) { return s.v.Get(object, id) }

// countingView is the store with its indexes, counting full scans.
type countingView struct {
	*view
	scans int
}

func (c *countingView) Scan(object string, fn func(map[string]any) bool) {
	c.scans++
	c.view.Scan(object, fn)
}

// A filter on External IDs (a top-level Referral_Identifier__c = or IN) is
// served from the unique index; it must return exactly what a scan of every
// record returns, in the same order, after updates, deletes, undone writes
// and with values whose case folds differ between lower and upper case.
func TestUniqueFilterMatchesFullScan(t *testing.T) {
	h := newHarness(t)
	for i := range 8 {
		h.create("Opportunity", newOpp(map[string]any{"Name": fmt.Sprintf("RB-%02d", i), "Referral_Identifier__c": fmt.Sprintf("RB-%02d", i), "Amount": i}))
	}
	// ſ upper-cases to S, so a query for CASE-1 matches both; İ lower-cases
	// to i but upper-cases to itself, so a query for ID-1 matches neither.
	for _, ref := range []string{"caſe-1", "Case-1", "İd-1", "\u212a-1"} {
		h.create("Opportunity", newOpp(map[string]any{"Name": ref, "Referral_Identifier__c": ref}))
	}
	moved := h.create("Opportunity", newOpp(map[string]any{"Name": "moved", "Referral_Identifier__c": "OLD-1"}))
	h.expect(http.MethodPatch, v+"/sobjects/Opportunity/"+moved, map[string]any{"Referral_Identifier__c": "NEW-1"}, 204, nil)
	gone := h.create("Opportunity", newOpp(map[string]any{"Name": "deleted", "Referral_Identifier__c": "DEL-1"}))
	h.expect(http.MethodDelete, v+"/sobjects/Opportunity/"+gone, nil, 204, nil)
	h.create("Opportunity", newOpp(map[string]any{"Name": "reused", "Referral_Identifier__c": "del-1"}))
	h.expect(http.MethodPost, v+"/composite/sobjects", map[string]any{"allOrNone": true, "records": []any{
		newOpp(map[string]any{"attributes": map[string]any{"type": "Opportunity"}, "Name": "undone", "Referral_Identifier__c": "UNDONE-1"}),
		map[string]any{"attributes": map[string]any{"type": "Opportunity"}, "Name": "invalid"},
	}}, 200, nil)

	cases := []struct {
		where   string
		all     bool // queryAll
		indexed bool
		want    string
	}{
		{where: "Referral_Identifier__c = 'rb-03'", indexed: true, want: "RB-03"},
		{where: "Referral_Identifier__c IN ('RB-05', 'rb-01', 'RB-05', 'Rb-01', 'rb-03', 'none')", indexed: true, want: "RB-01 RB-03 RB-05"},
		{where: "Referral_Identifier__c IN ('RB-05', 'RB-01', 'RB-03') AND Amount > 2", indexed: true, want: "RB-03 RB-05"},
		{where: "Amount > 2 AND Referral_Identifier__c IN ('RB-05', 'RB-01', 'RB-03') ORDER BY Name DESC", indexed: true, want: "RB-05 RB-03"},
		{where: "Referral_Identifier__c IN ('case-1', 'CASE-1')", indexed: true, want: "caſe-1 Case-1"},
		{where: "Referral_Identifier__c = 'id-1'", indexed: true, want: ""},
		{where: "Referral_Identifier__c = 'İD-1'", indexed: true, want: "İd-1"},
		{where: "Referral_Identifier__c = 'k-1'", indexed: true, want: ""},
		{where: "Referral_Identifier__c IN ('old-1', 'new-1')", indexed: true, want: "moved"},
		{where: "Referral_Identifier__c = 'DEL-1'", indexed: true, want: "reused"},
		{where: "Referral_Identifier__c = 'undone-1'", indexed: true, want: ""},
		{where: "Referral_Identifier__c = 'DEL-1'", all: true, want: "deleted reused"},
		{where: "Referral_Identifier__c = 'rb-01' OR Referral_Identifier__c = 'rb-02'", want: "RB-01 RB-02"},
		{where: "Name = 'RB-01'", want: "RB-01"},
		{where: "Referral_Identifier__c NOT IN ('rb-01') AND Name LIKE 'rb-0%'", want: "RB-00 RB-02 RB-03 RB-04 RB-05 RB-06 RB-07"},
	}
	h.srv.store.read(context.Background(), func(vw *view) {
		for _, c := range cases {
			src := "SELECT Name, Referral_Identifier__c, Amount, IsDeleted FROM Opportunity WHERE " + c.where
			pq, err := soql.Parse(src, h.srv.schema)
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			opt := soql.ExecOptions{IncludeDeleted: c.all, Now: h.clock.Now()}
			want, wantN, err := pq.Execute(scanOnly{vw}, opt)
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			cv := &countingView{view: vw}
			got, gotN, err := pq.Execute(cv, opt)
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			if !reflect.DeepEqual(got, want) || gotN != wantN {
				t.Errorf("%s:\n index %v\n scan  %v", src, got, want)
			}
			var names []string
			for _, r := range want {
				names = append(names, r["Name"].(string))
			}
			if strings.Join(names, " ") != c.want {
				t.Errorf("%s: scan gives %q, want %q", src, strings.Join(names, " "), c.want)
			}
			if indexed := cv.scans == 0; indexed != c.indexed {
				t.Errorf("%s: %d full scans, want indexed %v", src, cv.scans, c.indexed)
			}
		}
	})

	// Through the REST API: query reads the index, queryAll still returns
	// the record in the recycle bin.
	var res queryResult
	h.expect(http.MethodGet, q("SELECT Id FROM Opportunity WHERE Referral_Identifier__c IN ('del-1', 'rb-02')"), nil, 200, &res)
	if res.TotalSize != 2 {
		t.Errorf("query: %+v", res)
	}
	h.expect(http.MethodGet, v+"/queryAll?q="+url.QueryEscape("SELECT Id, IsDeleted FROM Opportunity WHERE Referral_Identifier__c = 'del-1'"), nil, 200, &res)
	if res.TotalSize != 2 || res.Records[0]["Id"] != gone || res.Records[0]["IsDeleted"] != true {
		t.Errorf("queryAll: %+v", res)
	}
}

// The unique index finds every value a query's upper-cased text matches
// by looking up its lower-cased form, plus the values under unfolded keys.
// That holds when, for every character, a key that is not unfolded is
// what its values' upper-case form lowers to; this checks every code
// point against the Unicode tables Go ships.
func TestUnfoldedKeysCoverCaseFolding(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if !utf8.ValidRune(r) {
			continue
		}
		s := string(r)
		key := strings.ToLower(s)
		unfolded := strings.ToLower(strings.ToUpper(key)) != key
		if !unfolded && strings.ToLower(strings.ToUpper(s)) != key {
			t.Errorf("%U: key %q is not unfolded, but the value upper-cases to %q", r, key, strings.ToUpper(s))
		}
	}
}
