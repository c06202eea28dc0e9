package salesforce

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
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
