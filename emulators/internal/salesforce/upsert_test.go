package salesforce

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

func TestUpsertByExternalID(t *testing.T) {
	h := newHarness(t)
	path := v + "/sobjects/Opportunity/Referral_Identifier__c/REF-42"
	resp, body := h.do(http.MethodPatch, path, newOpp(map[string]any{"Amount": 500}))
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var res map[string]any
	mustUnmarshal(t, body, &res)
	id, _ := res["id"].(string)
	if res["created"] != true || res["success"] != true || len(res["errors"].([]any)) != 0 || !strings.HasPrefix(id, "006") {
		t.Fatalf("create body %s", body)
	}
	if rec := h.get("Opportunity", id); rec["Referral_Identifier__c"] != "REF-42" || rec["Amount"] != 500.0 {
		t.Fatalf("created record %v", rec)
	}

	h.clock.Advance(time.Minute)
	resp, body = h.do(http.MethodPatch, path, map[string]any{"StageName": "Closed Lost", "Amount": 750})
	if resp.StatusCode != 200 {
		t.Fatalf("update: %d %s", resp.StatusCode, body)
	}
	mustUnmarshal(t, body, &res)
	if res["created"] != false || res["id"] != id || res["success"] != true {
		t.Fatalf("update body %s", body)
	}
	rec := h.get("Opportunity", id)
	if rec["Amount"] != 750.0 || rec["IsClosed"] != true || rec["IsWon"] != false || rec["LastModifiedDate"] != "2026-03-01T12:01:00.000+0000" {
		t.Fatalf("updated record %v", rec)
	}
	// Matching is case-insensitive; the body may repeat the same value.
	h.expect(http.MethodPatch, v+"/sobjects/Opportunity/Referral_Identifier__c/ref-42", map[string]any{"Referral_Identifier__c": "REF-42", "NextStep": "call"}, 200, nil)
	h.expectError(http.MethodPatch, path, map[string]any{"Referral_Identifier__c": "REF-43"}, 400, "INVALID_FIELD", "")
	h.expectError(http.MethodPatch, path, map[string]any{"Id": id}, 400, "INVALID_FIELD", "The Id field should not be specified in the sobject data.")
	h.expectError(http.MethodPatch, v+"/sobjects/Opportunity/Referral_Identifier__c/REF-NEW", map[string]any{"Name": "x"}, 400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [StageName, CloseDate]")

	// Not an External ID field, or no such field: 404.
	h.expectError(http.MethodPatch, v+"/sobjects/Opportunity/Name/Foo", newOpp(nil), 404, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: Name")
	h.expectError(http.MethodPatch, v+"/sobjects/Opportunity/Nope__c/Foo", newOpp(nil), 404, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: Nope__c")

	// updateOnly never creates.
	h.expectError(http.MethodPatch, v+"/sobjects/Opportunity/Referral_Identifier__c/REF-NONE?updateOnly=true", newOpp(nil), 404, "NOT_FOUND", msgNotFound)
	h.expect(http.MethodPatch, path+"?updateOnly=true", map[string]any{"NextStep": "demo"}, 200, nil)

	// Upsert on Id updates an existing record only.
	h.expect(http.MethodPatch, v+"/sobjects/Opportunity/Id/"+id, map[string]any{"NextStep": "by id"}, 200, &res)
	if res["created"] != false {
		t.Fatalf("Id upsert %v", res)
	}
	h.expectError(http.MethodPatch, v+"/sobjects/Opportunity/Id/"+sfschema.NewID("006", 4242), map[string]any{"NextStep": "x"}, 404, "NOT_FOUND", "")
	// POST …/Id creates.
	h.expect(http.MethodPost, v+"/sobjects/Opportunity/Id", newOpp(nil), 201, nil)

	// Read and delete by External ID, with URL-encoded values.
	h.expectError(http.MethodPatch, v+"/sobjects/Opportunity/Referral_Identifier__c/a%2Fb", newOpp(nil), 404, "NOT_FOUND", msgNotFound)
	enc := v + "/sobjects/Opportunity/Referral_Identifier__c/a%20b%3Fc"
	h.expect(http.MethodPatch, enc, newOpp(nil), 201, nil)
	var got map[string]any
	h.expect(http.MethodGet, enc, nil, 200, &got)
	if got["Referral_Identifier__c"] != "a b?c" {
		t.Fatalf("read by encoded external id %v", got["Referral_Identifier__c"])
	}
	h.expect(http.MethodDelete, enc, nil, 204, nil)
	h.expectError(http.MethodGet, enc, nil, 404, "NOT_FOUND", msgNotFound)
	// A deleted record no longer matches: the next upsert creates.
	h.expect(http.MethodPatch, enc, newOpp(nil), 201, nil)
}

// withCustomerNumber adds a non-unique External ID to Account, so several
// records can match one value (the 300 case).
func withCustomerNumber(c *Config) {
	schema := sfschema.Default(sfschema.Options{})
	objs := schema.Objects()
	for _, o := range objs {
		if o.Name == sfschema.ObjAccount {
			o.Fields = append(o.Fields, &sfschema.Field{
				Name: "Customer_Number__c", Label: "Customer Number", Type: sfschema.TypeString, Length: 20,
				Nillable: true, Createable: true, Updateable: true, Filterable: true, Sortable: true,
				ExternalID: true, IDLookup: true, Custom: true,
			})
		}
	}
	c.Schema = sfschema.New(objs...)
}

func TestUpsertMultipleMatches(t *testing.T) {
	h := newHarness(t, withCustomerNumber)
	a := h.create("Account", map[string]any{"Name": "A", "Customer_Number__c": "C-1"})
	b := h.create("Account", map[string]any{"Name": "B", "Customer_Number__c": "C-1"})
	var urls []string
	path := v + "/sobjects/Account/Customer_Number__c/C-1"
	h.expect(http.MethodPatch, path, map[string]any{"Name": "C"}, http.StatusMultipleChoices, &urls)
	if len(urls) != 2 || urls[0] != v+"/sobjects/Account/"+a || urls[1] != v+"/sobjects/Account/"+b {
		t.Fatalf("300 body %v", urls)
	}
	h.expect(http.MethodGet, path, nil, http.StatusMultipleChoices, &urls)
	if h.get("Account", a)["Name"] != "A" {
		t.Fatal("300 must not write")
	}
	// A parent lookup by that key is ambiguous too.
	h.expectError(http.MethodPost, v+"/sobjects/Opportunity", newOpp(map[string]any{"Account": map[string]any{"Customer_Number__c": "C-1"}}), 400, "INVALID_FIELD", "")
}

// TestConcurrentUpsertsCreateOnce checks the property the adapter relies on
// for "no duplicates": parallel upserts of one External ID create exactly
// one record.
func TestConcurrentUpsertsCreateOnce(t *testing.T) {
	h := newHarness(t)
	const n = 16
	created := make(chan bool, n)
	errs := make(chan string, n)
	path := v + "/sobjects/Opportunity/Referral_Identifier__c/REF-RACE"
	for i := 0; i < n; i++ {
		go func(i int) {
			req, _ := http.NewRequest(http.MethodPatch, h.ts.URL+path, strings.NewReader(`{"Name":"race","StageName":"Prospecting","CloseDate":"2026-06-30","NextStep":"`+strings.Repeat("x", i)+`"}`))
			req.Header.Set("Authorization", "Bearer "+h.token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := h.ts.Client().Do(req)
			if err != nil {
				errs <- err.Error()
				return
			}
			defer resp.Body.Close()
			switch resp.StatusCode {
			case 201:
				created <- true
			case 200:
				created <- false
			default:
				errs <- resp.Status
			}
		}(i)
	}
	creates := 0
	for i := 0; i < n; i++ {
		select {
		case c := <-created:
			if c {
				creates++
			}
		case e := <-errs:
			t.Fatal(e)
		}
	}
	if creates != 1 {
		t.Fatalf("%d upserts created a record, want 1", creates)
	}
	if c := h.count("SELECT COUNT() FROM Opportunity WHERE Referral_Identifier__c = 'REF-RACE'"); c != 1 {
		t.Fatalf("%d records for one External ID", c)
	}
}
