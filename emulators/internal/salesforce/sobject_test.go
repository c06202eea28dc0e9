package salesforce

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

func TestVersionsAndResources(t *testing.T) {
	h := newHarness(t)
	resp, body := h.doToken("", http.MethodGet, "/services/data/", nil)
	if resp.StatusCode != 200 || resp.Header.Get(limitInfoHeader) != "" {
		t.Fatalf("versions: %d, limit header %q", resp.StatusCode, resp.Header.Get(limitInfoHeader))
	}
	var vers []struct{ Label, URL, Version string }
	mustUnmarshal(t, body, &vers)
	if len(vers) != maxVersion-minVersion+1 || vers[0].Version != "50.0" || vers[12].Label != "Winter '25" || vers[12].URL != "/services/data/v62.0" || vers[len(vers)-1].Label != "Summer '26" {
		t.Fatalf("versions %+v", vers)
	}
	var res map[string]string
	h.expect(http.MethodGet, v+"/", nil, 200, &res)
	if res["sobjects"] != v+"/sobjects" || res["query"] != v+"/query" {
		t.Fatalf("resources %v", res)
	}
	h.expectError(http.MethodGet, "/services/data/v49.0/limits", nil, 404, "NOT_FOUND", msgNotFound)
	h.expectError(http.MethodGet, "/services/data/v68.0/limits", nil, 404, "NOT_FOUND", msgNotFound)
	h.expectError(http.MethodGet, v+"/nosuch", nil, 404, "NOT_FOUND", msgNotFound)
}

func TestCreateReadUpdateDelete(t *testing.T) {
	h := newHarness(t)
	acct := h.create("Account", map[string]any{"Name": "Contoso", "BillingCountry": "US"})
	if !strings.HasPrefix(acct, "001") {
		t.Fatalf("account id %s", acct)
	}
	resp, body := h.do(http.MethodPost, v+"/sobjects/Opportunity/", newOpp(map[string]any{"AccountId": acct, "Amount": 1000.5}))
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var created map[string]any
	mustUnmarshal(t, body, &created)
	id, _ := created["id"].(string)
	if !strings.HasPrefix(id, "006") || len(id) != 18 || created["success"] != true || len(created["errors"].([]any)) != 0 {
		t.Fatalf("create body %s", body)
	}
	if _, ok := sfschema.CanonicalID(id); !ok {
		t.Fatalf("id %s has a bad checksum", id)
	}
	if loc := resp.Header.Get("Location"); loc != v+"/sobjects/Opportunity/"+id {
		t.Errorf("Location %q", loc)
	}

	rec := h.get("Opportunity", id)
	attrs := rec["attributes"].(map[string]any)
	if attrs["type"] != "Opportunity" || attrs["url"] != v+"/sobjects/Opportunity/"+id {
		t.Errorf("attributes %v", attrs)
	}
	integ := h.srv.IntegrationUserID()
	created0 := "2026-03-01T12:00:00.000+0000"
	for k, want := range map[string]any{
		"Id": id, "IsDeleted": false, "Name": "Contoso expansion", "StageName": "Prospecting",
		"CloseDate": "2026-06-30", "Amount": 1000.5, "AccountId": acct, "IsClosed": false, "IsWon": false,
		"Probability": 10.0, "ForecastCategoryName": "Pipeline", "ForecastCategory": "Pipeline",
		"ExpectedRevenue": 100.05, "CurrencyIsoCode": "USD", "OwnerId": integ, "CreatedById": integ,
		"LastModifiedById": integ, "CreatedDate": created0, "LastModifiedDate": created0, "SystemModstamp": created0,
		"Sync_with_Partner_Center__c": false, "Referral_Identifier__c": nil,
	} {
		if rec[k] != want {
			t.Errorf("%s = %#v, want %#v", k, rec[k], want)
		}
	}
	// The 15-character id reads the same record.
	if r15 := h.get("Opportunity", id[:15]); r15["Id"] != id {
		t.Errorf("15-char read returned %v", r15["Id"])
	}

	var some map[string]any
	h.expect(http.MethodGet, v+"/sobjects/Opportunity/"+id+"?fields=Name,StageName", nil, 200, &some)
	if len(some) != 4 || some["Name"] != "Contoso expansion" || some["Id"] != id {
		t.Errorf("?fields result %v", some)
	}
	h.expectError(http.MethodGet, v+"/sobjects/Opportunity/"+id+"?fields=Name,Nope__c", nil, 400, "INVALID_FIELD", "")

	h.clock.Advance(90 * time.Second)
	resp, body = h.do(http.MethodPatch, v+"/sobjects/Opportunity/"+id, map[string]any{"StageName": "Closed Won", "Description": "won it", "Amount": nil})
	if resp.StatusCode != 204 || len(body) != 0 {
		t.Fatalf("update: %d %q", resp.StatusCode, body)
	}
	rec = h.get("Opportunity", id)
	mod := "2026-03-01T12:01:30.000+0000"
	if rec["IsClosed"] != true || rec["IsWon"] != true || rec["Probability"] != 100.0 || rec["ForecastCategoryName"] != "Closed" ||
		rec["Amount"] != nil || rec["ExpectedRevenue"] != nil || rec["Description"] != "won it" ||
		rec["LastModifiedDate"] != mod || rec["SystemModstamp"] != mod || rec["CreatedDate"] != created0 {
		t.Errorf("after update %v", rec)
	}
	// An explicit Probability wins over the stage default.
	h.expect(http.MethodPatch, v+"/sobjects/Opportunity/"+id, map[string]any{"StageName": "Negotiation/Review", "Probability": 55}, 204, nil)
	if rec = h.get("Opportunity", id); rec["Probability"] != 55.0 || rec["IsClosed"] != false {
		t.Errorf("explicit probability: %v %v", rec["Probability"], rec["IsClosed"])
	}

	resp, _ = h.do(http.MethodDelete, v+"/sobjects/Opportunity/"+id, nil)
	if resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	deleted := `[{"message":"entity is deleted","errorCode":"ENTITY_IS_DELETED","fields":[]}]`
	for _, m := range []string{http.MethodGet, http.MethodDelete, http.MethodPatch} {
		var body any
		if m == http.MethodPatch {
			body = map[string]any{"Name": "x"}
		}
		resp, b := h.do(m, v+"/sobjects/Opportunity/"+id, body)
		if resp.StatusCode != 404 || strings.TrimSpace(string(b)) != deleted {
			t.Errorf("%s deleted: %d %s", m, resp.StatusCode, b)
		}
	}
	missing := sfschema.NewID("006", 999)
	h.expectError(http.MethodGet, v+"/sobjects/Opportunity/"+missing, nil, 404, "NOT_FOUND", msgNotFound)
	h.expectError(http.MethodDelete, v+"/sobjects/Opportunity/"+missing, nil, 404, "NOT_FOUND", msgNotFound)
	h.expectError(http.MethodGet, v+"/sobjects/Opportunity/"+acct, nil, 404, "NOT_FOUND", msgNotFound)
	h.expectError(http.MethodPatch, v+"/sobjects/Opportunity/006abc", map[string]any{"Name": "x"}, 400, "MALFORMED_ID", "malformed id 006abc")
	h.expectError(http.MethodGet, v+"/sobjects/Opportunity/006abc", nil, 404, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: 006abc")
	h.expectError(http.MethodGet, v+"/sobjects/Nope__c/describe", nil, 404, "NOT_FOUND", msgNotFound)
	h.expectError(http.MethodPost, v+"/sobjects/Nope__c", newOpp(nil), 404, "NOT_FOUND", msgNotFound)
}

func TestConditionalRequests(t *testing.T) {
	h := newHarness(t)
	id := h.create("Opportunity", newOpp(nil))
	after := h.clock.Now().Add(time.Minute).Format(http.TimeFormat)
	before := h.clock.Now().Add(-time.Minute).Format(http.TimeFormat)
	if r, b := h.do(http.MethodGet, v+"/sobjects/Opportunity/"+id, nil, "If-Modified-Since", after); r.StatusCode != 304 || len(b) != 0 {
		t.Fatalf("If-Modified-Since: %d %s", r.StatusCode, b)
	}
	h.expect(http.MethodGet, v+"/sobjects/Opportunity/"+id, nil, 200, nil, "If-Modified-Since", before)
	h.expectError(http.MethodPatch, v+"/sobjects/Opportunity/"+id, map[string]any{"Name": "x"}, 412, "PRECONDITION_FAILED", "", "If-Unmodified-Since", before)
	if rec := h.get("Opportunity", id); rec["Name"] != "Contoso expansion" {
		t.Fatalf("412 must not write: %v", rec["Name"])
	}
	h.expect(http.MethodPatch, v+"/sobjects/Opportunity/"+id, map[string]any{"Name": "x"}, 204, nil, "If-Unmodified-Since", after)
	if r, _ := h.do(http.MethodGet, v+"/sobjects/Opportunity/describe", nil, "If-Modified-Since", after); r.StatusCode != 304 {
		t.Fatalf("describe If-Modified-Since: %d", r.StatusCode)
	}
}

func TestValidationErrors(t *testing.T) {
	h := newHarness(t)
	acct := h.create("Account", map[string]any{"Name": "Contoso"})
	ref := h.create("Opportunity", newOpp(map[string]any{"Referral_Identifier__c": "REF-1"}))
	opp := "/sobjects/Opportunity"
	cases := []struct {
		name    string
		method  string
		path    string
		body    any
		status  int
		code    string
		message string
		fields  []string
	}{
		{"required", "POST", opp, map[string]any{"Name": "x"}, 400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [StageName, CloseDate]", []string{"StageName", "CloseDate"}},
		{"required cleared on update", "PATCH", opp + "/" + ref, map[string]any{"CloseDate": nil}, 400, "REQUIRED_FIELD_MISSING", "Required fields are missing: [CloseDate]", []string{"CloseDate"}},
		{"unknown field", "POST", opp, newOpp(map[string]any{"Foo__c": 1}), 400, "INVALID_FIELD", "No such column 'Foo__c' on sobject of type Opportunity", nil},
		{"id in body", "POST", opp, newOpp(map[string]any{"Id": ref}), 400, "INVALID_FIELD", "The Id field should not be specified in the sobject data.", nil},
		{"read-only fields", "POST", opp, newOpp(map[string]any{"IsClosed": true, "SystemModstamp": "2026-01-01T00:00:00Z"}), 400, "INVALID_FIELD_FOR_INSERT_UPDATE",
			"Unable to create/update fields: IsClosed, SystemModstamp. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", []string{"IsClosed", "SystemModstamp"}},
		{"create-only field on update", "PATCH", opp + "/" + ref, map[string]any{"ContactId": nil}, 400, "INVALID_FIELD_FOR_INSERT_UPDATE", "", []string{"ContactId"}},
		{"restricted stage", "POST", opp, newOpp(map[string]any{"StageName": "Dreaming"}), 400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Stage: bad value for restricted picklist field: Dreaming", []string{"StageName"}},
		{"restricted currency", "PATCH", opp + "/" + ref, map[string]any{"CurrencyIsoCode": "XXX"}, 400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Opportunity Currency: bad value for restricted picklist field: XXX", []string{"CurrencyIsoCode"}},
		{"help picklist", "POST", opp, newOpp(map[string]any{"How_can_Microsoft_help__c": "Lunch"}), 400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "", []string{"How_can_Microsoft_help__c"}},
		{"too long", "POST", opp, newOpp(map[string]any{"Name": strings.Repeat("n", 121)}), 400, "STRING_TOO_LONG", "Name: data value too large: " + strings.Repeat("n", 121) + " (max length=120)", []string{"Name"}},
		{"malformed json", "POST", opp, `{"Name": "x",`, 400, "JSON_PARSER_ERROR", "", nil},
		{"empty body", "POST", opp, " ", 400, "JSON_PARSER_ERROR", "The HTTP entity body is required, but this request has no entity body.", nil},
		{"array body", "POST", opp, `[]`, 400, "JSON_PARSER_ERROR", "", nil},
		{"string for currency", "POST", opp, newOpp(map[string]any{"Amount": "lots"}), 400, "JSON_PARSER_ERROR", "Cannot deserialize instance of currency from VALUE_STRING value lots or request may be missing a required field", nil},
		{"number for date", "POST", opp, newOpp(map[string]any{"CloseDate": 20260630}), 400, "JSON_PARSER_ERROR", "Cannot deserialize instance of date from VALUE_NUMBER_INT value 20260630 or request may be missing a required field", nil},
		{"bad date", "POST", opp, newOpp(map[string]any{"CloseDate": "2026-13-45"}), 400, "JSON_PARSER_ERROR", "", nil},
		{"string for boolean", "POST", opp, newOpp(map[string]any{"Sync_with_Partner_Center__c": "yes"}), 400, "JSON_PARSER_ERROR", "", nil},
		{"number for string", "POST", opp, newOpp(map[string]any{"Name": 5}), 400, "JSON_PARSER_ERROR", "", nil},
		{"duplicate external id", "POST", opp, newOpp(map[string]any{"Referral_Identifier__c": "ref-1"}), 400, "DUPLICATE_VALUE", "duplicate value found: Referral_Identifier__c duplicates value on record with id: " + ref, []string{"Referral_Identifier__c"}},
		{"malformed lookup", "POST", opp, newOpp(map[string]any{"AccountId": "001xyz"}), 400, "MALFORMED_ID", "Account ID: id value of incorrect type: 001xyz", []string{"AccountId"}},
		{"lookup of wrong type", "POST", opp, newOpp(map[string]any{"AccountId": ref}), 400, "FIELD_INTEGRITY_EXCEPTION", "Account ID: id value of incorrect type: " + ref, []string{"AccountId"}},
		{"dangling lookup", "POST", opp, newOpp(map[string]any{"AccountId": sfschema.NewID("001", 77)}), 400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", []string{"AccountId"}},
		{"bad e-mail", "POST", "/sobjects/Contact", map[string]any{"LastName": "Doe", "Email": "not-an-address"}, 400, "INVALID_EMAIL_ADDRESS", "Email: invalid email address: not-an-address", []string{"Email"}},
		{"number out of range", "POST", opp, newOpp(map[string]any{"Amount": 1e17}), 400, "NUMBER_OUTSIDE_VALID_RANGE", "", []string{"Amount"}},
		{"user not createable", "POST", "/sobjects/User", map[string]any{"Username": "x@y.z"}, 400, "INVALID_FIELD_FOR_INSERT_UPDATE", "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := h.expectError(c.method, v+c.path, c.body, c.status, c.code, c.message)
			if c.fields != nil {
				if errs[0].Fields == nil || strings.Join(*errs[0].Fields, ",") != strings.Join(c.fields, ",") {
					t.Fatalf("fields %v, want %v", errs[0].Fields, c.fields)
				}
			}
		})
	}
	// Nothing above was written.
	var q queryResult
	h.expect(http.MethodGet, v+"/query?q=SELECT+Id+FROM+Opportunity", nil, 200, &q)
	if q.TotalSize != 1 {
		t.Fatalf("failed writes left records: %d", q.TotalSize)
	}
	// The emulator only speaks JSON.
	r, b := h.do(http.MethodPost, v+opp, "Name=x", "Content-Type", "application/x-www-form-urlencoded")
	if r.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(b), "UNSUPPORTED_MEDIA_TYPE") {
		t.Fatalf("form body: %d %s", r.StatusCode, b)
	}
	// Parent lookups by External ID resolve; unknown ones fail.
	h.expect(http.MethodPatch, v+opp+"/"+ref, map[string]any{"AccountId": acct}, 204, nil)
	h.expectError(http.MethodPost, v+"/sobjects/OpportunityContactRole", map[string]any{
		"Opportunity": map[string]any{"Referral_Identifier__c": "NOPE"}, "ContactId": h.create("Contact", map[string]any{"LastName": "Doe"}),
	}, 400, "INVALID_FIELD", "Foreign key external ID: NOPE not found for field Referral_Identifier__c in entity Opportunity")
}

func TestForeignKeyByExternalID(t *testing.T) {
	h := newHarness(t)
	opp := h.create("Opportunity", newOpp(map[string]any{"Referral_Identifier__c": "REF-9"}))
	contact := h.create("Contact", map[string]any{"FirstName": "Jane", "LastName": "Doe", "Email": "jane@contoso.example"})
	ocr := h.create("OpportunityContactRole", map[string]any{
		"Opportunity": map[string]any{"attributes": map[string]any{"type": "Opportunity"}, "Referral_Identifier__c": "ref-9"},
		"ContactId":   contact, "Role": "Decision Maker", "IsPrimary": true,
	})
	rec := h.get("OpportunityContactRole", ocr)
	if rec["OpportunityId"] != opp || rec["IsPrimary"] != true {
		t.Fatalf("contact role %v", rec)
	}
	if c := h.get("Contact", contact); c["Name"] != "Jane Doe" {
		t.Fatalf("contact name %v", c["Name"])
	}
}

func TestCascadeDelete(t *testing.T) {
	h := newHarness(t)
	opp := h.create("Opportunity", newOpp(nil))
	sol := h.create(sfschema.ObjMicrosoftSolution, map[string]any{"Opportunity__c": opp, "Solution_Identifier__c": "SOL-1"})
	if rec := h.get(sfschema.ObjMicrosoftSolution, sol); rec["Name"] != sol {
		t.Errorf("solution Name should default to its id, got %v", rec["Name"])
	}
	h.expect(http.MethodDelete, v+"/sobjects/Opportunity/"+opp, nil, 204, nil)
	h.expectError(http.MethodGet, v+"/sobjects/"+sfschema.ObjMicrosoftSolution+"/"+sol, nil, 404, "ENTITY_IS_DELETED", "entity is deleted")
	h.expectError(http.MethodPost, v+"/sobjects/"+sfschema.ObjMicrosoftSolution, map[string]any{"Opportunity__c": opp, "Solution_Identifier__c": "SOL-2"},
		400, "ENTITY_IS_DELETED", "entity is deleted")
}

func TestDescribe(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Stages = append(DefaultStages(), Stage{Name: "Co-sell Review", Probability: 40, ForecastCategory: "Pipeline"})
	})
	var d struct {
		Name               string
		KeyPrefix          string
		Createable         bool
		Urls               map[string]string
		Fields             []map[string]any
		ChildRelationships []map[string]any
	}
	h.expect(http.MethodGet, v+"/sobjects/Opportunity/describe/", nil, 200, &d)
	if d.Name != "Opportunity" || d.KeyPrefix != "006" || !d.Createable || d.Urls["describe"] != v+"/sobjects/Opportunity/describe" {
		t.Fatalf("describe header %+v", d)
	}
	fields := map[string]map[string]any{}
	for _, f := range d.Fields {
		fields[f["name"].(string)] = f
	}
	values := func(name string) []string {
		var out []string
		for _, p := range fields[name]["picklistValues"].([]any) {
			pv := p.(map[string]any)
			if pv["active"] != true || pv["label"] == nil {
				t.Errorf("picklist entry %v", pv)
			}
			out = append(out, pv["value"].(string))
		}
		return out
	}
	stages := strings.Join(values("StageName"), "|")
	if !strings.HasPrefix(stages, "Prospecting|Qualification") || !strings.Contains(stages, "On Hold|Declined|Co-sell Review") {
		t.Errorf("StageName values %s", stages)
	}
	if cur := values("CurrencyIsoCode"); len(cur) < 2 || cur[0] != "USD" {
		t.Errorf("CurrencyIsoCode values %v", cur)
	}
	if help := values("How_can_Microsoft_help__c"); len(help) != 6 || help[0] != "Workload specific value proposition" {
		t.Errorf("help values %v", help)
	}
	ref := fields["Referral_Identifier__c"]
	if ref["externalId"] != true || ref["unique"] != true || ref["custom"] != true || ref["length"] != 100.0 || ref["type"] != "string" {
		t.Errorf("Referral_Identifier__c %v", ref)
	}
	if f := fields["IsClosed"]; f["createable"] != false || f["updateable"] != false || f["type"] != "boolean" {
		t.Errorf("IsClosed %v", f)
	}
	if f := fields["AccountId"]; f["relationshipName"] != "Account" || f["referenceTo"].([]any)[0] != "Account" {
		t.Errorf("AccountId %v", f)
	}
	for _, name := range []string{"Sync_with_Partner_Center__c", "Referral_Link__c", "Audit__c", "Microsoft_CRM_Identifier__c", "Decline_Reason__c", "SystemModstamp", "LastModifiedById"} {
		if fields[name] == nil {
			t.Errorf("field %s missing", name)
		}
	}
	rels := map[string]bool{}
	for _, c := range d.ChildRelationships {
		rels[c["relationshipName"].(string)] = true
	}
	if !rels["Microsoft_Solutions__r"] || !rels["OpportunityContactRoles"] {
		t.Errorf("child relationships %v", d.ChildRelationships)
	}

	var global struct {
		MaxBatchSize int
		Sobjects     []map[string]any
	}
	h.expect(http.MethodGet, v+"/sobjects", nil, 200, &global)
	names := map[string]bool{}
	for _, o := range global.Sobjects {
		names[o["name"].(string)] = true
	}
	for _, n := range []string{"Opportunity", "Account", "Contact", "OpportunityContactRole", "User", sfschema.ObjMicrosoftSolution} {
		if !names[n] {
			t.Errorf("describeGlobal lacks %s", n)
		}
	}
	if global.MaxBatchSize != 200 {
		t.Errorf("maxBatchSize %d", global.MaxBatchSize)
	}
	var info struct {
		ObjectDescribe map[string]any
		RecentItems    []map[string]any
	}
	h.create("Opportunity", newOpp(nil))
	h.expect(http.MethodGet, v+"/sobjects/Opportunity", nil, 200, &info)
	if info.ObjectDescribe["name"] != "Opportunity" || len(info.RecentItems) != 1 {
		t.Errorf("basic info %+v", info)
	}
}

func TestStagesMatchSchemaDefaults(t *testing.T) {
	var names []string
	for _, st := range DefaultStages() {
		names = append(names, st.Name)
	}
	if got, want := strings.Join(names, "|"), strings.Join(sfschema.DefaultStages(), "|"); got != want {
		t.Fatalf("stage table %s\nschema stages %s", got, want)
	}
	st, err := ParseStages("Prospecting, On Hold:open:5, Won:won, Lost:closed")
	if err != nil {
		t.Fatal(err)
	}
	if st[0].Probability != 10 || st[1].Probability != 5 || st[1].Closed || !st[2].Won || st[2].Probability != 100 || !st[3].Closed || st[3].Won {
		t.Fatalf("parsed %+v", st)
	}
	for _, bad := range []string{"", "X:maybe", "X:open:200", "X:open:1:2"} {
		if _, err := ParseStages(bad); err == nil {
			t.Errorf("ParseStages(%q) should fail", bad)
		}
	}
}

func TestOpportunityStageQueryable(t *testing.T) {
	h := newHarness(t)
	var res struct {
		TotalSize int
		Records   []map[string]any
	}
	h.expect(http.MethodGet, q("SELECT ApiName, IsClosed, IsWon, DefaultProbability, ForecastCategoryName FROM OpportunityStage WHERE IsActive = true AND IsClosed = true ORDER BY SortOrder"), nil, 200, &res)
	if res.TotalSize != 3 {
		t.Fatalf("closed stages %+v", res)
	}
	got := []string{}
	for _, r := range res.Records {
		got = append(got, fmt.Sprintf("%v/%v/%v", r["ApiName"], r["IsWon"], r["DefaultProbability"]))
	}
	if strings.Join(got, ",") != "Closed Won/true/100,Closed Lost/false/0,Declined/false/0" {
		t.Fatalf("closed stages %v", got)
	}
	h.expectError(http.MethodPost, v+"/sobjects/OpportunityStage", map[string]any{}, 400, "INVALID_TYPE_FOR_OPERATION", "")
}
