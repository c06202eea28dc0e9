package partnercenter

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
)

// The externalReferenceId index must give exactly the answer of evaluating
// the filter on every referral, also after a write changes the field.
func TestExternalReferenceIndexAgreesWithAFullScan(t *testing.T) {
	e := newEnv(t, nil)
	ids := map[string]string{}
	for _, ext := range []string{"A", "A", "B", "", "none", "moved"} {
		body := validReferral()
		if ext != "none" {
			body["externalReferenceId"] = ext
		}
		got := e.create(body)
		ids[ext] = got["id"].(string)
	}
	moved := ids["moved"]
	if r := e.api(http.MethodPatch, "/v1.0/engagements/referrals/"+moved,
		[]any{map[string]any{"op": "replace", "path": "/externalReferenceId", "value": "C"}},
		"Content-Type", "application/json"); r.status/100 != 2 {
		t.Fatalf("PATCH: %d %s", r.status, r.body)
	}
	list := func(filter string) []string {
		t.Helper()
		r := e.api(http.MethodGet, "/v1.0/engagements/referrals?"+url.Values{"$filter": {filter}, "$top": {"50"}}.Encode(), nil)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", filter, r.status, r.body)
		}
		var out []string
		for _, v := range r.json(t)["value"].([]any) {
			out = append(out, v.(map[string]any)["id"].(string))
		}
		return out
	}
	for _, c := range []struct{ indexed, scan string }{
		{`externalReferenceId eq 'A'`, `not (externalReferenceId ne 'A')`},
		{`'B' eq externalReferenceId`, `not ('B' ne externalReferenceId)`},
		{`externalReferenceId eq 'C'`, `not (externalReferenceId ne 'C')`},
		{`externalReferenceId eq 'moved'`, `not (externalReferenceId ne 'moved')`},
		{`externalReferenceId eq ''`, `not (externalReferenceId ne '')`},
		{`externalReferenceId eq 'A' and status eq 'Active'`, `not (externalReferenceId ne 'A') and status eq 'Active'`},
		{`status eq 'Closed' and externalReferenceId eq 'A'`, `status eq 'Closed' and not (externalReferenceId ne 'A')`},
		{`externalReferenceId eq 'nothing'`, `not (externalReferenceId ne 'nothing')`},
		{`externalReferenceId eq 'B' or externalReferenceId eq 'A' or externalReferenceId eq 'C'`,
			`not (externalReferenceId ne 'B') or not (externalReferenceId ne 'A') or not (externalReferenceId ne 'C')`},
		{`(externalReferenceId eq 'C' or externalReferenceId eq 'moved' or externalReferenceId eq 'nothing') and status eq 'Active'`,
			`(not (externalReferenceId ne 'C') or not (externalReferenceId ne 'moved') or not (externalReferenceId ne 'nothing')) and status eq 'Active'`},
	} {
		got, want := list(c.indexed), list(c.scan)
		if !slices.Equal(got, want) {
			t.Errorf("%s = %v, full scan %s = %v", c.indexed, got, c.scan, want)
		}
	}
	if got := list(`externalReferenceId eq 'C'`); len(got) != 1 || got[0] != moved {
		t.Errorf("after the PATCH, C = %v, want %s", got, moved)
	}
	if got := list(`externalReferenceId eq 'A'`); len(got) != 2 || got[0] != ids["A"] && got[1] != ids["A"] {
		t.Errorf("A = %v, want the two A referrals in creation order", got)
	}
	// An `or` of lookups answers in creation order, whatever order the
	// filter names the values in.
	if got := list(`externalReferenceId eq 'B' or externalReferenceId eq 'A'`); len(got) != 3 || got[2] != ids["B"] {
		t.Errorf("B or A = %v, want the two A referrals, then B", got)
	}
}
