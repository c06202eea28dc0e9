package salesforce

import (
	"net/http"
	"strings"
	"testing"
)

func TestJavaDouble(t *testing.T) {
	for x, want := range map[float64]string{
		0: "0.0", 100: "100.0", 1000.5: "1000.5", -3: "-3.0", 9999999: "9999999.0",
		1e7: "1.0E7", 12500000: "1.25E7", 0.001: "0.001", 0.0001: "1.0E-4", -2.5e-5: "-2.5E-5", 1.5e300: "1.5E300",
	} {
		if got := javaDouble(x); got != want {
			t.Errorf("javaDouble(%v) = %s, want %s", x, got, want)
		}
	}
}

// TestNumbersRenderedLikeSalesforce checks the raw JSON: doubles, currency
// and percent carry a fraction or an exponent, ints do not.
func TestNumbersRenderedLikeSalesforce(t *testing.T) {
	h := newHarness(t)
	acct := h.create("Account", map[string]any{"Name": "Big", "NumberOfEmployees": 250})
	opp := h.create("Opportunity", newOpp(map[string]any{"AccountId": acct, "Amount": 12500000}))
	h.create("OpportunityContactRole", map[string]any{"OpportunityId": opp, "ContactId": h.create("Contact", map[string]any{"LastName": "Doe"})})
	body := string(h.expect(http.MethodGet, v+"/sobjects/Opportunity/"+opp, nil, 200, nil))
	for _, want := range []string{`"Amount":1.25E7`, `"Probability":10.0`, `"ExpectedRevenue":1250000.0`, `{"attributes":{"type":"Opportunity"`} {
		if !strings.Contains(body, want) {
			t.Errorf("record lacks %s: %s", want, body)
		}
	}
	if body := string(h.expect(http.MethodGet, v+"/sobjects/Account/"+acct, nil, 200, nil)); !strings.Contains(body, `"NumberOfEmployees":250,`) {
		t.Errorf("int field: %s", body)
	}
	body = string(h.expect(http.MethodGet, q("SELECT Id, Amount, Account.NumberOfEmployees, (SELECT Id, ContactId FROM OpportunityContactRoles) FROM Opportunity"), nil, 200, nil))
	for _, want := range []string{`{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Opportunity"`, `"Amount":1.25E7`, `"NumberOfEmployees":250}`,
		`"OpportunityContactRoles":{"totalSize":1,"done":true,"records":[{"attributes":{"type":"OpportunityContactRole"`} {
		if !strings.Contains(body, want) {
			t.Errorf("query result lacks %s: %s", want, body)
		}
	}
}

func TestReferenceSubstitution(t *testing.T) {
	results := map[string]any{
		"acct": map[string]any{"id": "001A"},
		"q":    map[string]any{"records": []any{map[string]any{"Id": "006B", "Amount": 5.0}}},
	}
	for in, want := range map[string]string{
		"/x/@{acct.id}":                  "/x/001A",
		"@{q.records[0].Id}-@{acct.id}":  "006B-001A",
		"mail me@{not a ref} or @{}":     "mail me@{not a ref} or @{}",
		"broken @{acct.} and @{q[x]}":    "broken @{acct.} and @{q[x]}",
		"amount @{q.records[0].Amount}!": "amount 5!",
	} {
		got, bad := substituteText(in, results)
		if bad != "" || got != want {
			t.Errorf("substituteText(%q) = %q, %q; want %q", in, got, bad, want)
		}
	}
	if _, bad := substituteText("/x/@{nope.id}", results); bad != "nope.id" {
		t.Errorf("unresolved reference reported as %q", bad)
	}
	if _, bad := substituteText("@{q.records[3].Id}", results); bad != "q.records[3].Id" {
		t.Errorf("out-of-range index reported as %q", bad)
	}
	v, bad := substituteJSON(map[string]any{"n": "@{q.records[0].Amount}", "s": "id=@{acct.id}"}, results)
	m := v.(map[string]any)
	if bad != "" || m["n"] != 5.0 || m["s"] != "id=001A" {
		t.Errorf("substituteJSON = %v, %q", m, bad)
	}
}
