package salesforce

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

type itemResult struct {
	ID      string `json:"id"`
	Success bool   `json:"success"`
	Created *bool  `json:"created"`
	Errors  []struct {
		StatusCode string   `json:"statusCode"`
		Message    string   `json:"message"`
		Fields     []string `json:"fields"`
	} `json:"errors"`
}

func typed(obj string, m map[string]any) map[string]any {
	m["attributes"] = map[string]any{"type": obj}
	return m
}

func (h *harness) count(soql string) int {
	h.t.Helper()
	var res queryResult
	h.expect(http.MethodGet, q(soql), nil, 200, &res)
	return res.TotalSize
}

func TestCollectionsCreatePartialAndAllOrNone(t *testing.T) {
	h := newHarness(t)
	body := func(allOrNone bool) map[string]any {
		return map[string]any{"allOrNone": allOrNone, "records": []any{
			typed("Opportunity", newOpp(map[string]any{"Name": "ok-1"})),
			typed("Opportunity", map[string]any{"Name": "missing stage and date"}),
			typed("Account", map[string]any{"Name": "ok-2"}),
		}}
	}
	var res []itemResult
	h.expect(http.MethodPost, v+"/composite/sobjects", body(false), 200, &res)
	if len(res) != 3 || !res[0].Success || res[1].Success || !res[2].Success || !strings.HasPrefix(res[2].ID, "001") {
		t.Fatalf("partial results %+v", res)
	}
	e := res[1].Errors[0]
	if e.StatusCode != "REQUIRED_FIELD_MISSING" || e.Message != "Required fields are missing: [StageName, CloseDate]" || strings.Join(e.Fields, ",") != "StageName,CloseDate" || res[1].ID != "" {
		t.Fatalf("item error %+v", res[1])
	}
	if n := h.count("SELECT COUNT() FROM Opportunity"); n != 1 {
		t.Fatalf("partial success stored %d opportunities", n)
	}

	res = nil
	h.expect(http.MethodPost, v+"/composite/sobjects", body(true), 200, &res)
	if res[0].Success || res[2].Success || res[0].ID != "" {
		t.Fatalf("allOrNone results %+v", res)
	}
	for _, i := range []int{0, 2} {
		if e := res[i].Errors[0]; e.StatusCode != "ALL_OR_NONE_OPERATION_ROLLED_BACK" || e.Fields == nil {
			t.Fatalf("item %d: %+v", i, res[i])
		}
	}
	if res[1].Errors[0].StatusCode != "REQUIRED_FIELD_MISSING" {
		t.Fatalf("failing item %+v", res[1])
	}
	if n := h.count("SELECT COUNT() FROM Opportunity"); n != 1 {
		t.Fatalf("allOrNone rollback left %d opportunities", n)
	}
	if n := h.count("SELECT COUNT() FROM Account"); n != 1 {
		t.Fatalf("allOrNone rollback left %d accounts", n)
	}

	// Type and shape errors.
	res = nil
	h.expect(http.MethodPost, v+"/composite/sobjects", map[string]any{"records": []any{
		map[string]any{"Name": "no type"}, typed("Nope__c", map[string]any{}), typed("Opportunity", newOpp(map[string]any{"Id": sfschema.NewID("006", 1)})),
	}}, 200, &res)
	if res[0].Errors[0].StatusCode != "INVALID_TYPE" || res[1].Errors[0].StatusCode != "INVALID_TYPE" || res[2].Errors[0].StatusCode != "INVALID_FIELD" {
		t.Fatalf("shape errors %+v", res)
	}
	var many []any
	for i := 0; i < 201; i++ {
		many = append(many, typed("Account", map[string]any{"Name": "x"}))
	}
	// The 200-record limit holds for create, update and upsert alike.
	for _, call := range []struct{ method, path string }{
		{http.MethodPost, "/composite/sobjects"},
		{http.MethodPatch, "/composite/sobjects"},
		{http.MethodPatch, "/composite/sobjects/Opportunity/Referral_Identifier__c"},
	} {
		h.expectError(call.method, v+call.path, map[string]any{"records": many}, 400, "EXCEEDED_ID_LIMIT", "")
	}
	h.expectError(http.MethodPost, v+"/composite/sobjects", `{"records": 5}`, 400, "JSON_PARSER_ERROR", "")
}

func TestCollectionsUpdateUpsertDeleteRetrieve(t *testing.T) {
	h := newHarness(t)
	a := h.create("Opportunity", newOpp(map[string]any{"Referral_Identifier__c": "R-A"}))
	b := h.create("Opportunity", newOpp(map[string]any{"Referral_Identifier__c": "R-B"}))
	var res []itemResult

	h.expect(http.MethodPatch, v+"/composite/sobjects", map[string]any{"allOrNone": false, "records": []any{
		typed("Opportunity", map[string]any{"Id": a, "StageName": "Closed Won"}),
		typed("Opportunity", map[string]any{"StageName": "Closed Won"}),
		typed("Opportunity", map[string]any{"Id": b, "StageName": "Nope"}),
	}}, 200, &res)
	if !res[0].Success || res[0].ID != a || res[1].Errors[0].StatusCode != "MISSING_ARGUMENT" || res[2].Errors[0].StatusCode != "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST" {
		t.Fatalf("update results %+v", res)
	}
	if h.get("Opportunity", a)["IsWon"] != true {
		t.Fatal("update not applied")
	}

	up := v + "/composite/sobjects/Opportunity/Referral_Identifier__c"
	res = nil
	h.expect(http.MethodPatch, up, map[string]any{"allOrNone": false, "records": []any{
		typed("Opportunity", map[string]any{"Referral_Identifier__c": "R-B", "NextStep": "updated"}),
		typed("Opportunity", newOpp(map[string]any{"Referral_Identifier__c": "R-C"})),
		typed("Opportunity", map[string]any{"Name": "no key"}),
		typed("Opportunity", newOpp(map[string]any{"Referral_Identifier__c": "R-D"})),
		typed("Opportunity", newOpp(map[string]any{"Referral_Identifier__c": "r-d"})),
	}}, 200, &res)
	if !res[0].Success || res[0].ID != b || res[0].Created == nil || *res[0].Created {
		t.Fatalf("upsert update %+v", res[0])
	}
	if !res[1].Success || res[1].Created == nil || !*res[1].Created {
		t.Fatalf("upsert create %+v", res[1])
	}
	if res[2].Success || res[2].Errors[0].StatusCode != "MISSING_ARGUMENT" {
		t.Fatalf("missing key %+v", res[2])
	}
	if res[3].Errors[0].StatusCode != "DUPLICATE_EXTERNAL_ID" || res[4].Errors[0].StatusCode != "DUPLICATE_EXTERNAL_ID" {
		t.Fatalf("duplicate keys %+v %+v", res[3], res[4])
	}
	if h.get("Opportunity", b)["NextStep"] != "updated" {
		t.Fatal("upsert update not applied")
	}
	// allOrNone upsert: one bad record undoes the good one.
	res = nil
	h.expect(http.MethodPatch, up, map[string]any{"allOrNone": true, "records": []any{
		typed("Opportunity", newOpp(map[string]any{"Referral_Identifier__c": "R-E"})),
		typed("Opportunity", map[string]any{"Referral_Identifier__c": "R-A", "Foo__c": 1}),
	}}, 200, &res)
	if res[0].Errors[0].StatusCode != "ALL_OR_NONE_OPERATION_ROLLED_BACK" || res[1].Errors[0].StatusCode != "INVALID_FIELD" {
		t.Fatalf("allOrNone upsert %+v", res)
	}
	h.expectError(http.MethodGet, v+"/sobjects/Opportunity/Referral_Identifier__c/R-E", nil, 404, "NOT_FOUND", "")
	h.expectError(http.MethodPatch, v+"/composite/sobjects/Opportunity/Name", map[string]any{"records": []any{}}, 404, "NOT_FOUND", "")

	// Retrieve keeps request order and answers null for unknown ids.
	var recs []map[string]any
	missing := sfschema.NewID("006", 999)
	h.expect(http.MethodGet, v+"/composite/sobjects/Opportunity?ids="+b+","+missing+","+a+"&fields=Name,StageName", nil, 200, &recs)
	if len(recs) != 3 || recs[0]["Id"] != b || recs[1] != nil || recs[2]["StageName"] != "Closed Won" {
		t.Fatalf("retrieve %v", recs)
	}
	h.expect(http.MethodPost, v+"/composite/sobjects/Opportunity", map[string]any{"ids": []string{a}, "fields": []string{"Name"}}, 200, &recs)
	if len(recs) != 1 || recs[0]["Name"] != "Contoso expansion" {
		t.Fatalf("retrieve POST %v", recs)
	}

	res = nil
	h.expect(http.MethodDelete, v+"/composite/sobjects?ids="+a+","+a[:5]+","+missing, nil, 200, &res)
	if !res[0].Success || res[1].Errors[0].StatusCode != "MALFORMED_ID" || res[2].Errors[0].StatusCode != "NOT_FOUND" {
		t.Fatalf("delete %+v", res)
	}
	res = nil
	h.expect(http.MethodDelete, v+"/composite/sobjects?allOrNone=true&ids="+b+","+a, nil, 200, &res)
	if res[0].Errors[0].StatusCode != "ALL_OR_NONE_OPERATION_ROLLED_BACK" || res[1].Errors[0].StatusCode != "ENTITY_IS_DELETED" {
		t.Fatalf("allOrNone delete %+v", res)
	}
	h.get("Opportunity", b) // still there
}

type compositeResp struct {
	CompositeResponse []struct {
		Body           json.RawMessage   `json:"body"`
		HTTPHeaders    map[string]string `json:"httpHeaders"`
		HTTPStatusCode int               `json:"httpStatusCode"`
		ReferenceID    string            `json:"referenceId"`
	} `json:"compositeResponse"`
}

func TestCompositeReferences(t *testing.T) {
	h := newHarness(t)
	before, _ := h.srv.usage.current(h.clock.Now())
	req := map[string]any{"allOrNone": false, "compositeRequest": []any{
		map[string]any{"method": "POST", "url": v + "/sobjects/Account", "referenceId": "acct", "body": map[string]any{"Name": "Fabrikam", "BillingCountry": "FR"}},
		map[string]any{"method": "PATCH", "url": v + "/sobjects/Opportunity/Referral_Identifier__c/R-77", "referenceId": "opp",
			"body": newOpp(map[string]any{"AccountId": "@{acct.id}", "Description": "for @{acct.id}"})},
		map[string]any{"method": "GET", "url": v + "/query?q=" + url.QueryEscape("SELECT Id, Account.Name FROM Opportunity WHERE AccountId = ") + "'@{acct.id}'", "referenceId": "q"},
		map[string]any{"method": "GET", "url": v + "/sobjects/Opportunity/@{q.records[0].Id}?fields=Name,AccountId", "referenceId": "read"},
		map[string]any{"method": "POST", "url": v + "/sobjects/Contact", "referenceId": "bad", "body": map[string]any{"FirstName": "no last name"}},
		map[string]any{"method": "PATCH", "url": v + "/sobjects/Contact/@{bad.id}", "referenceId": "dependsOnBad", "body": map[string]any{"LastName": "x"}},
		map[string]any{"method": "GET", "url": v + "/sobjects/Account/@{acct.id}", "referenceId": "stillRuns"},
	}}
	var res compositeResp
	h.expect(http.MethodPost, v+"/composite", req, 200, &res)
	after, _ := h.srv.usage.current(h.clock.Now())
	r := res.CompositeResponse
	if len(r) != 7 {
		t.Fatalf("%d subresponses", len(r))
	}
	var acct, opp struct {
		ID      string `json:"id"`
		Created bool   `json:"created"`
	}
	mustUnmarshal(t, r[0].Body, &acct)
	mustUnmarshal(t, r[1].Body, &opp)
	if r[0].HTTPStatusCode != 201 || r[0].ReferenceID != "acct" || r[0].HTTPHeaders["Location"] != v+"/sobjects/Account/"+acct.ID {
		t.Fatalf("acct %+v", r[0])
	}
	if r[1].HTTPStatusCode != 201 || !opp.Created {
		t.Fatalf("opp %+v %s", r[1], r[1].Body)
	}
	var read map[string]any
	mustUnmarshal(t, r[3].Body, &read)
	if r[2].HTTPStatusCode != 200 || r[3].HTTPStatusCode != 200 || read["AccountId"] != acct.ID || read["Id"] != opp.ID {
		t.Fatalf("query/read %+v %s", r[3], r[3].Body)
	}
	if desc := h.get("Opportunity", opp.ID)["Description"]; desc != "for "+acct.ID {
		t.Fatalf("string interpolation: %v", desc)
	}
	if r[4].HTTPStatusCode != 400 || !strings.Contains(string(r[4].Body), "REQUIRED_FIELD_MISSING") {
		t.Fatalf("bad %+v", r[4])
	}
	if r[5].HTTPStatusCode != 400 || !strings.Contains(string(r[5].Body), "PROCESSING_HALTED") {
		t.Fatalf("dependsOnBad %d %s", r[5].HTTPStatusCode, r[5].Body)
	}
	if r[6].HTTPStatusCode != 200 {
		t.Fatalf("independent subrequest after a failure: %d %s", r[6].HTTPStatusCode, r[6].Body)
	}
	// The whole composite request counted once.
	if after != before+1 || h.srv.counted.Get("composite") != 1 || h.srv.counted.Get("sobject.create") != 0 {
		t.Fatalf("composite counted %d calls (%v)", after-before, h.srv.counted.Snapshot())
	}
}

func TestCompositeAllOrNoneRollsBack(t *testing.T) {
	h := newHarness(t)
	req := map[string]any{"allOrNone": true, "compositeRequest": []any{
		map[string]any{"method": "POST", "url": v + "/sobjects/Account", "referenceId": "acct", "body": map[string]any{"Name": "Rolled"}},
		map[string]any{"method": "POST", "url": v + "/sobjects/Opportunity", "referenceId": "opp", "body": newOpp(map[string]any{"AccountId": "@{acct.id}"})},
		map[string]any{"method": "POST", "url": v + "/sobjects/Opportunity", "referenceId": "bad", "body": newOpp(map[string]any{"StageName": "Nope"})},
		map[string]any{"method": "GET", "url": v + "/limits", "referenceId": "after"},
	}}
	var res compositeResp
	h.expect(http.MethodPost, v+"/composite", req, 200, &res)
	r := res.CompositeResponse
	halted := `[{"message":"The transaction was rolled back since another operation in the same transaction failed.","errorCode":"PROCESSING_HALTED"}]`
	for _, i := range []int{0, 1, 3} {
		if r[i].HTTPStatusCode != 400 || string(r[i].Body) != halted {
			t.Fatalf("subresponse %d: %d %s", i, r[i].HTTPStatusCode, r[i].Body)
		}
	}
	if r[2].HTTPStatusCode != 400 || !strings.Contains(string(r[2].Body), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST") {
		t.Fatalf("failing subrequest %d %s", r[2].HTTPStatusCode, r[2].Body)
	}
	if n := h.count("SELECT COUNT() FROM Account"); n != 0 {
		t.Fatalf("rollback left %d accounts", n)
	}
	if n := h.count("SELECT COUNT() FROM Opportunity"); n != 0 {
		t.Fatalf("rollback left %d opportunities", n)
	}
	// The store is usable afterwards (the transaction released its lock).
	h.create("Account", map[string]any{"Name": "after"})
}

func TestCompositeRequestValidation(t *testing.T) {
	h := newHarness(t)
	sub := func(ref string) map[string]any {
		return map[string]any{"method": "GET", "url": v + "/limits", "referenceId": ref}
	}
	var subs []any
	for i := 0; i < 26; i++ {
		subs = append(subs, sub(fmt.Sprintf("r%d", i)))
	}
	h.expectError(http.MethodPost, v+"/composite", map[string]any{"compositeRequest": subs}, 400, "LIMIT_EXCEEDED", "")
	h.expectError(http.MethodPost, v+"/composite", map[string]any{"compositeRequest": []any{sub("a"), sub("a")}}, 400, "INVALID_INPUT", "Duplicate ReferenceId provided in the request: a")
	h.expectError(http.MethodPost, v+"/composite", map[string]any{"compositeRequest": []any{sub("a-b")}}, 400, "INVALID_INPUT", "")
	h.expectError(http.MethodPost, v+"/composite", map[string]any{"compositeRequest": []any{}}, 400, "INVALID_INPUT", "")
	h.expectError(http.MethodPost, v+"/composite", map[string]any{"compositeRequest": []any{
		map[string]any{"method": "GET", "url": "/_emulator/state", "referenceId": "x"},
	}}, 400, "INVALID_INPUT", "")
	var qs []any
	for i := 0; i < 6; i++ {
		qs = append(qs, map[string]any{"method": "GET", "url": q("SELECT Id FROM Account"), "referenceId": fmt.Sprintf("q%d", i)})
	}
	h.expectError(http.MethodPost, v+"/composite", map[string]any{"compositeRequest": qs}, 400, "LIMIT_EXCEEDED", "")
	var res compositeResp
	h.expect(http.MethodPost, v+"/composite", map[string]any{"compositeRequest": []any{
		map[string]any{"method": "POST", "url": v + "/composite", "referenceId": "nested", "body": map[string]any{"compositeRequest": []any{sub("x")}}},
	}}, 200, &res)
	if res.CompositeResponse[0].HTTPStatusCode != 400 {
		t.Fatalf("nested composite %+v", res.CompositeResponse[0])
	}
}
