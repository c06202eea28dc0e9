package partnercenter

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cosell/cosell/emulators/internal/odata"
)

const collection = "/v1.0/engagements/referrals"

func TestCreateValidation(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		name   string
		edit   func(m map[string]any)
		target string
	}{
		{"no type", func(m map[string]any) { delete(m, "type") }, "type"},
		{"no customerProfile", func(m map[string]any) { delete(m, "customerProfile") }, "customerProfile"},
		{"no consent", func(m map[string]any) { delete(m, "consent") }, "consent"},
		{"no details", func(m map[string]any) { delete(m, "details") }, "details"},
		{"no country", func(m map[string]any) { dig(m, "customerProfile/address").(map[string]any)["country"] = "" }, "customerProfile.address.country"},
		{"three-letter country", func(m map[string]any) { dig(m, "customerProfile/address").(map[string]any)["country"] = "USA" }, "customerProfile.address.country"},
		{"unassigned country", func(m map[string]any) { dig(m, "customerProfile/address").(map[string]any)["country"] = "UK" }, "customerProfile.address.country"},
		{"co-sell without solution", func(m map[string]any) {
			dig(m, "details/requirements").(map[string]any)["solutions"] = []any{}
		}, "details.requirements.solutions"},
		{"help requested without customer contact", func(m map[string]any) {
			m["inviteContext"] = map[string]any{"assistanceRequestCode": "ProofOfConceptOrDemo"}
			dig(m, "customerProfile").(map[string]any)["team"] = []any{}
		}, "customerProfile.team"},
		{"bad enum", func(m map[string]any) { m["type"] = "Private" }, "type"},
		{"bad number", func(m map[string]any) { dig(m, "details").(map[string]any)["dealValue"] = "lots" }, "details.dealValue"},
		{"bad date", func(m map[string]any) { dig(m, "details").(map[string]any)["closingDateTime"] = "soon" }, "details.closingDateTime"},
		{"wrong JSON type", func(m map[string]any) { m["team"] = "Pat" }, "team"},
		{"created closed", func(m map[string]any) { m["status"], m["substatus"] = "Closed", "Won" }, "status"},
		{"unknown engagement", func(m map[string]any) { m["engagementId"] = "0b1f4b0e-8d5c-4d7e-9c41-6f0a2b3c4d5e" }, "engagementId"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := validReferral()
			c.edit(body)
			r := e.api(http.MethodPost, collection, body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status = %d, want 400: %s", r.status, r.body)
			}
			if code, target := apiErr(t, r); code != "invalidRequest" || target != c.target {
				t.Errorf("error = %s/%s, want invalidRequest/%s", code, target, c.target)
			}
		})
	}
	t.Run("independent referral needs no solution", func(t *testing.T) {
		body := validReferral()
		body["type"] = "Independent"
		dig(body, "details/requirements").(map[string]any)["solutions"] = []any{}
		e.create(body)
	})
	t.Run("same property twice in different case", func(t *testing.T) {
		r := e.api(http.MethodPost, collection, `{"type":"Independent","Type":"Shared","customerProfile":{"name":"x","address":{"country":"US"}},"consent":{},"details":{}}`)
		if r.status != http.StatusBadRequest {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		if _, target := apiErr(t, r); target != "type" {
			t.Errorf("target %s", target)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		r := e.api(http.MethodPost, collection, "{not json")
		if r.status != http.StatusBadRequest {
			t.Fatalf("status %d", r.status)
		}
	})
	t.Run("wrong content type", func(t *testing.T) {
		r := e.do(http.MethodPost, collection, nil, "Authorization", "Bearer "+e.token, "Content-Type", "text/plain")
		if r.status != http.StatusUnsupportedMediaType {
			t.Fatalf("status %d", r.status)
		}
	})
	if n := len(e.srv.store.all()); n != 1 {
		t.Errorf("%d referrals stored, want only the valid one", n)
	}
}

func TestCreateSetsServerFieldsAndBindsCaseInsensitively(t *testing.T) {
	e := newEnv(t, nil)
	// PascalCase and mixed-case keys as in Microsoft's samples, client
	// values for server-owned fields, a numeric string and an unknown field.
	body := `{
	  "Name": "Mixed case", "TYPE": "shared", "Qualification": "salesqualified",
	  "Status": "New", "SubStatus": "Pending", "Id": "client-id", "ETag": "\"x\"", "Direction": "Incoming",
	  "CustomerProfile": {"Name": "Contoso", "Address": {"Country": "DE", "City": "Berlin"},
	                      "Team": [{"FirstName": "Ann", "EMAIL": "ann@contoso.example"}]},
	  "Consent": {"ConsentToToShareInfoWithOthers": true, "consentToContact": true},
	  "Details": {"DealValue": "12500.50", "Currency": "EUR",
	              "Requirements": {"Solutions": [{"Id": "SOL-9-XYZ", "Type": "name"}]}},
	  "somethingUnknown": 1
	}`
	r := e.api(http.MethodPost, collection, body)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	doc := r.json(t)
	cfg := e.srv.Config()
	checks := map[string]any{
		"name": "Mixed case", "type": "Shared", "qualification": "SalesQualified",
		"status": "Active", "substatus": "Accepted", "direction": "Outgoing",
		"organizationId": cfg.OrganizationID, "organizationName": cfg.OrganizationName,
		"customerProfile/address/country": "DE", "customerProfile/name": "Contoso",
		"consent/consentToToShareInfoWithOthers": true, "details/dealValue": 12500.5,
		"createdDateTime": "2026-03-02T09:00:00Z", "updatedDateTime": "2026-03-02T09:00:00Z",
		"acceptedDateTime": "2026-03-02T09:00:00Z",
	}
	for path, want := range checks {
		if got := dig(doc, path); got != want {
			t.Errorf("%s = %v, want %v", path, got, want)
		}
	}
	team := dig(doc, "customerProfile/team").([]any)[0].(map[string]any)
	if team["email"] != "ann@contoso.example" || team["firstName"] != "Ann" {
		t.Errorf("team member not bound case-insensitively: %v", team)
	}
	if doc["id"] == "client-id" || len(doc["id"].(string)) != 36 || doc["engagementId"] == nil {
		t.Errorf("id/engagementId not server-assigned: %v %v", doc["id"], doc["engagementId"])
	}
	etag, _ := doc["eTag"].(string)
	if etag == `"x"` || !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || r.header.Get("ETag") != etag {
		t.Errorf("eTag %q, header %q", etag, r.header.Get("ETag"))
	}
	if _, ok := doc["somethingUnknown"]; ok {
		t.Error("unknown property kept")
	}
	for _, k := range []string{"Name", "CustomerProfile", "TYPE"} {
		if _, ok := doc[k]; ok {
			t.Errorf("non-camelCase key %s in output", k)
		}
	}
	if got := dig(doc, "links/self/uri"); got != e.ts.URL+collection+"/"+doc["id"].(string) {
		t.Errorf("links.self.uri = %v", got)
	}
	if err := odata.ReferralSchema().Check(doc); err != nil {
		t.Errorf("stored document does not fit the OData schema: %v", err)
	}
}

func TestGetByID(t *testing.T) {
	e := newEnv(t, nil)
	created := e.create(validReferral())
	id := created["id"].(string)
	r := e.api(http.MethodGet, collection+"/"+id, nil, "MS-CorrelationId", "corr-1")
	if r.status != http.StatusOK {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	got := r.json(t)
	if got["@odata.context"] == nil || got["id"] != id || got["eTag"] != created["eTag"] || r.header.Get("ETag") != created["eTag"] {
		t.Errorf("get returned %v (ETag header %q)", got, r.header.Get("ETag"))
	}
	if r.header.Get("Request-ID") == "" || r.header.Get("MS-CorrelationId") != "corr-1" {
		t.Errorf("tracing headers: %v", r.header)
	}
	r = e.api(http.MethodGet, collection+"/"+strings.ToUpper(id), nil)
	if r.status != http.StatusOK {
		t.Errorf("upper-case GUID: %d", r.status)
	}
	r = e.api(http.MethodGet, collection+"/6c0d1a57-0000-4000-8000-000000000000", nil)
	if r.status != http.StatusNotFound {
		t.Fatalf("missing: %d", r.status)
	}
	if code, _ := apiErr(t, r); code != "itemNotFound" {
		t.Errorf("code %s", code)
	}
}

// walk follows @odata.nextLink from path and returns every item's id and
// the pages seen.
func walk(t *testing.T, e *env, path string) (ids []string, pages []map[string]any) {
	t.Helper()
	next := path
	for next != "" {
		r := e.api(http.MethodGet, next, nil)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", next, r.status, r.body)
		}
		page := r.json(t)
		pages = append(pages, page)
		for _, v := range page["value"].([]any) {
			ids = append(ids, v.(map[string]any)["id"].(string))
		}
		next, _ = page["@odata.nextLink"].(string)
		if len(pages) > 100 {
			t.Fatal("paging does not terminate")
		}
	}
	return ids, pages
}

func TestListPagingThroughWholeSet(t *testing.T) {
	e := newEnv(t, nil) // page size 5
	var all []string
	for i := 0; i < 23; i++ {
		body := validReferral()
		body["externalReferenceId"] = fmt.Sprintf("006%03d", i)
		all = append(all, e.create(body)["id"].(string))
		e.clock.Advance(time.Second)
	}
	ids, pages := walk(t, e, collection+"?$count=true")
	if !slices.Equal(ids, all) {
		t.Fatalf("walk returned %d ids %v, want all %d in creation order", len(ids), ids, len(all))
	}
	if len(pages) != 5 {
		t.Errorf("%d pages, want 5", len(pages))
	}
	for i, p := range pages {
		if p["@odata.count"] != 23.0 {
			t.Errorf("page %d @odata.count = %v", i, p["@odata.count"])
		}
		if p["@odata.context"] == nil {
			t.Errorf("page %d has no @odata.context", i)
		}
	}
	first := pages[0]["@odata.nextLink"].(string)
	if !strings.HasPrefix(first, e.ts.URL+collection+"?") || !strings.Contains(first, "$skiptoken=") || !strings.Contains(first, "$count=true") {
		t.Errorf("nextLink %s", first)
	}
	if pages[4]["@odata.nextLink"] != nil {
		t.Error("last page has a nextLink")
	}

	// $top spans pages and is honoured across them; $skip offsets.
	ids, _ = walk(t, e, collection+"?$top=12&$skip=3")
	if !slices.Equal(ids, all[3:15]) {
		t.Errorf("$top=12&$skip=3 gave %v", ids)
	}
	ids, _ = walk(t, e, collection+"?$orderby=createdDateTime%20desc&$top=7")
	want := slices.Clone(all)
	slices.Reverse(want)
	if !slices.Equal(ids, want[:7]) {
		t.Errorf("desc order gave %v", ids)
	}
	// No @odata.count unless asked for.
	if _, pages = walk(t, e, collection+"?$top=1"); pages[0]["@odata.count"] != nil {
		t.Error("@odata.count without $count=true")
	}

	// A token only works with the query it was issued for.
	u, _ := url.Parse(first)
	tok := u.Query().Get("$skiptoken")
	for _, bad := range []string{
		collection + "?$skiptoken=garbage",
		collection + "?$skiptoken=" + tok, // without $count=true
		collection + "?$count=true&$top=2&$skiptoken=" + tok,
	} {
		r := e.api(http.MethodGet, bad, nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("GET %s: %d, want 400", bad, r.status)
		}
	}
}

func TestListFiltersSelectAndErrors(t *testing.T) {
	e := newEnv(t, nil)
	mk := func(ext, country string, value float64, email string) string {
		b := validReferral()
		b["externalReferenceId"] = ext
		dig(b, "customerProfile/address").(map[string]any)["country"] = country
		dig(b, "details").(map[string]any)["dealValue"] = value
		b["team"] = []any{map[string]any{"firstName": "X", "email": email}}
		id := e.create(b)["id"].(string)
		e.clock.Advance(time.Minute)
		return id
	}
	a := mk("006A", "US", 100, "a@contoso.example")
	b := mk("006B", "DE", 5000, "b@contoso.example")
	c := mk("006C", "US", 20000, "c@contoso.example")
	in, _ := e.inbound(nil) // Incoming New/Pending, plus Microsoft's referral
	ms := e.srv.store.all()[3].id

	// Close c as won so status filters have something to find.
	rc := e.api(http.MethodPatch, collection+"/"+c, `[{"op":"replace","path":"/status","value":"Closed"},{"op":"replace","path":"/substatus","value":"Won"}]`)
	if rc.status != http.StatusNoContent {
		t.Fatalf("close c: %d %s", rc.status, rc.body)
	}
	cases := []struct {
		filter string
		want   []string
	}{
		{"externalReferenceId eq '006B'", []string{b}},
		{"externalReferenceId ne '006B' and direction eq 'Outgoing' and organizationId ne 'msft'", []string{a, c}},
		{"customerProfile/address/country eq 'US' and direction eq 'Outgoing'", []string{a, c, ms}},
		{"status eq 'Closed' and substatus eq 'Won'", []string{c}},
		{"(direction eq 'Incoming' and substatus eq 'Pending')", []string{in["id"].(string)}},
		{"organizationId eq 'msft'", []string{ms}},
		{"team/any(t:t/email eq 'b@contoso.example')", []string{b}},
		{"details/dealValue ge 5000 and details/dealValue lt 20000", []string{b}},
		{"not (details/dealValue ge 5000) and direction eq 'Outgoing'", []string{a}},
		{"externalReferenceId eq '006A' or externalReferenceId eq '006C'", []string{a, c}},
		{"createdDateTime gt 2026-03-02T09:00:30Z and direction eq 'Outgoing'", []string{b, c, ms}},
		{"engagementId eq '" + in["engagementId"].(string) + "'", []string{ms, in["id"].(string)}},
		{"engagementId eq " + in["engagementId"].(string), []string{ms, in["id"].(string)}},
	}
	for _, tc := range cases {
		ids, _ := walk(t, e, collection+"?$filter="+url.QueryEscape(tc.filter))
		if !slices.Equal(ids, tc.want) {
			t.Errorf("$filter=%s: got %v, want %v", tc.filter, ids, tc.want)
		}
	}

	r := e.api(http.MethodGet, collection+"?$select=id,status,customerProfile/name&$filter="+url.QueryEscape("externalReferenceId eq '006A'"), nil)
	items := r.json(t)["value"].([]any)
	if len(items) != 1 {
		t.Fatalf("select: %s", r.body)
	}
	item := items[0].(map[string]any)
	if len(item) != 3 || item["id"] != a || item["status"] != "Active" || dig(item, "customerProfile/name") != "Fabrikam Inc" {
		t.Errorf("$select item = %v", item)
	}

	for _, bad := range []string{
		"$filter=" + url.QueryEscape("contains(name,'x')"),
		"$filter=" + url.QueryEscape("status eq "),
		"$filter=" + url.QueryEscape("Status eq 'New'"),
		"$orderby=name",
		"$top=-1",
		"$expand=team",
	} {
		r := e.api(http.MethodGet, collection+"?"+bad, nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", bad, r.status, r.body)
			continue
		}
		if code, _ := apiErr(t, r); code != "invalidRequest" {
			t.Errorf("%s: code %s", bad, code)
		}
	}
}

func TestPutRequiresMatchingETag(t *testing.T) {
	e := newEnv(t, nil)
	doc := e.create(validReferral())
	id := doc["id"].(string)
	path := collection + "/" + id
	oldTag := doc["eTag"].(string)

	doc["externalReferenceId"] = "006XYZ"
	r := e.api(http.MethodPut, path, doc)
	if r.status != http.StatusBadRequest {
		t.Fatalf("PUT without If-Match: %d", r.status)
	}
	if _, target := apiErr(t, r); target != "If-Match" {
		t.Errorf("target %s", target)
	}

	e.clock.Advance(time.Minute)
	r = e.api(http.MethodPut, path, doc, "If-Match", oldTag)
	if r.status != http.StatusOK {
		t.Fatalf("PUT: %d %s", r.status, r.body)
	}
	put := r.json(t)
	newTag := put["eTag"].(string)
	if newTag == oldTag || r.header.Get("ETag") != newTag {
		t.Errorf("eTag did not change: %s -> %s (header %s)", oldTag, newTag, r.header.Get("ETag"))
	}
	if put["updatedDateTime"] != "2026-03-02T09:01:00Z" || put["createdDateTime"] != doc["createdDateTime"] {
		t.Errorf("timestamps: %v %v", put["createdDateTime"], put["updatedDateTime"])
	}
	if put["externalReferenceId"] != "006XYZ" {
		t.Errorf("PUT did not apply: %v", put["externalReferenceId"])
	}

	// The stale eTag now fails with exactly the documented body.
	r = e.api(http.MethodPut, path, doc, "If-Match", oldTag)
	if r.status != http.StatusPreconditionFailed {
		t.Fatalf("stale PUT: %d %s", r.status, r.body)
	}
	var got, want any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	_ = json.Unmarshal([]byte(`{"error":{"code":"preconditionFailed","message":"A precondition provided in the request (such as an if-match header) does not match the resource's current state.","target":"ETag","innerError":{"code":"99918","message":"One of the specified pre-condition is not met. Etag value did not Match","details":null}}}`), &want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("412 body = %s", r.body)
	}

	// Unquoted and wildcard If-Match are accepted.
	if r := e.api(http.MethodPut, path, put, "If-Match", strings.Trim(newTag, `"`)); r.status != http.StatusOK {
		t.Errorf("unquoted If-Match: %d %s", r.status, r.body)
	}
	if r := e.api(http.MethodPut, path, put, "If-Match", "*"); r.status != http.StatusOK {
		t.Errorf("If-Match *: %d %s", r.status, r.body)
	}
	// Server-owned fields in the body are ignored.
	put["organizationId"], put["id"] = "someone-else", "other"
	r = e.api(http.MethodPut, path, put, "If-Match", "*")
	if m := r.json(t); m["organizationId"] != e.srv.Config().OrganizationID || m["id"] != id {
		t.Errorf("server-owned fields changed by PUT: %v %v", m["organizationId"], m["id"])
	}
}

func TestPatchOperationsAndPaths(t *testing.T) {
	e := newEnv(t, nil)
	doc := e.create(validReferral())
	path := collection + "/" + doc["id"].(string)

	r := e.api(http.MethodPatch, path, `[
	  {"op":"replace","path":"/details/dealValue","value":"10000"},
	  {"op":"replace","path":"/details/notes","value":"Lorem ipsum"},
	  {"op":"add","path":"/team/-","value":{"Email":"jane.doe@contoso.example","FirstName":"Jane","LastName":"Doe"}},
	  {"op":"replace","path":"/Name","value":"Renamed"}
	]`)
	if r.status != http.StatusNoContent || len(r.body) != 0 {
		t.Fatalf("PATCH: %d %s", r.status, r.body)
	}
	tag := r.header.Get("ETag")
	if tag == "" || tag == doc["eTag"] {
		t.Errorf("ETag header after PATCH: %q", tag)
	}
	got := e.api(http.MethodGet, path, nil).json(t)
	if got["details"].(map[string]any)["dealValue"] != 10000.0 || dig(got, "details/notes") != "Lorem ipsum" || got["name"] != "Renamed" {
		t.Errorf("PATCH not applied: %v", got["details"])
	}
	team := got["team"].([]any)
	if len(team) != 2 || team[1].(map[string]any)["email"] != "jane.doe@contoso.example" {
		t.Errorf("team after add /team/-: %v", team)
	}

	r = e.api(http.MethodPatch, path, `[{"op":"replace","path":"/externalReferenceId","value":"006Q"}]`, "Prefer", "return=representation", "If-Match", tag)
	if r.status != http.StatusOK || r.json(t)["externalReferenceId"] != "006Q" || r.header.Get("ETag") == tag {
		t.Fatalf("PATCH with Prefer: %d %s", r.status, r.body)
	}
	if r := e.api(http.MethodPatch, path, `[{"op":"replace","path":"/salesStage","value":"Develop"}]`, "If-Match", tag); r.status != http.StatusPreconditionFailed {
		t.Errorf("stale If-Match: %d", r.status)
	}

	denied := []struct{ body, target string }{
		{`[{"op":"remove","path":"/details/notes"}]`, "op"},
		{`[{"op":"test","path":"/name","value":"Renamed"}]`, "op"},
		{`[{"op":"move","from":"/name","path":"/statusReason"}]`, "op"},
		{`[{"op":"replace","path":"/id","value":"x"}]`, "path"},
		{`[{"op":"replace","path":"/organizationId","value":"x"}]`, "path"},
		{`[{"op":"replace","path":"/trackingInfo/microsoftMsxId","value":"x"}]`, "path"},
		{`[{"op":"replace","path":"/customerProfile/address/country","value":"FR"}]`, "path"},
		{`[{"op":"replace","path":"/team/0/email","value":"x@y.example"}]`, "path"},
		{`[{"op":"add","path":"/registrations/-","value":{}}]`, "path"},
		{`[{"op":"replace","path":"/details/dealValue","value":"many"}]`, "details.dealValue"},
		{`[{"op":"replace","path":"/details/currency","value":"dollars"}]`, "details.currency"},
		{`[]`, "body"},
		{`{"op":"replace"}`, ""},
	}
	for _, d := range denied {
		r := e.api(http.MethodPatch, path, d.body)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400: %s", d.body, r.status, r.body)
			continue
		}
		if code, target := apiErr(t, r); code != "invalidRequest" || (d.target != "" && target != d.target) {
			t.Errorf("%s: error %s/%s, want target %s", d.body, code, target, d.target)
		}
	}
	if r := e.api(http.MethodPatch, collection+"/6c0d1a57-0000-4000-8000-000000000000", `[{"op":"replace","path":"/name","value":"x"}]`); r.status != http.StatusNotFound {
		t.Errorf("PATCH missing referral: %d", r.status)
	}
}

func patchStatus(status, sub, reason string) string {
	ops := []map[string]any{{"op": "replace", "path": "/status", "value": status}, {"op": "replace", "path": "/substatus", "value": sub}}
	if reason != "" {
		ops = append(ops, map[string]any{"op": "replace", "path": "/statusReason", "value": reason})
	}
	b, _ := json.Marshal(ops)
	return string(b)
}

func TestStatusTransitions(t *testing.T) {
	cases := []struct {
		name         string
		inbound      bool // start New/Pending (else Active/Accepted)
		status, sub  string
		reason       string
		wantStatus   int
		wantAccepted bool
	}{
		{"accept inbound", true, "Active", "Accepted", "", 204, true},
		{"receive inbound", true, "New", "Received", "", 204, false},
		{"decline inbound with reason", true, "Closed", "Declined", "Not a fit", 204, false},
		{"decline without reason", true, "Closed", "Declined", "", 400, false},
		{"New with Accepted", true, "New", "Accepted", "", 400, false},
		{"Active with Pending", true, "Active", "Pending", "", 400, false},
		{"client cannot expire", true, "Closed", "Expired", "", 400, false},
		{"win active", false, "Closed", "Won", "", 204, false},
		{"lose active", false, "Closed", "Lost", "Budget cut", 204, false},
		{"active back to new", false, "New", "Pending", "", 400, false},
		{"none status", false, "None", "None", "", 400, false},
		{"bad enum", false, "Open", "Accepted", "", 400, false},
	}
	e := newEnv(t, nil)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var id string
			if c.inbound {
				ours, _ := e.inbound(nil)
				id = ours["id"].(string)
			} else {
				id = e.create(validReferral())["id"].(string)
			}
			e.clock.Advance(time.Minute)
			at := formatTime(e.clock.Now())
			r := e.api(http.MethodPatch, collection+"/"+id, patchStatus(c.status, c.sub, c.reason))
			if r.status != c.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, c.wantStatus, r.body)
			}
			doc := e.api(http.MethodGet, collection+"/"+id, nil).json(t)
			if c.wantStatus != 204 {
				return
			}
			if doc["status"] != c.status || doc["substatus"] != c.sub {
				t.Errorf("stored %v/%v", doc["status"], doc["substatus"])
			}
			if c.wantAccepted && doc["acceptedDateTime"] != at {
				t.Errorf("acceptedDateTime = %v", doc["acceptedDateTime"])
			}
			if c.status == "Closed" && doc["closedDateTime"] != at {
				t.Errorf("closedDateTime = %v", doc["closedDateTime"])
			}
		})
	}
}

func TestClosedReferralIsImmutable(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusConflict} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.ClosedWriteStatus = status })
			doc := e.create(validReferral())
			path := collection + "/" + doc["id"].(string)
			if r := e.api(http.MethodPatch, path, patchStatus("Closed", "Won", "")); r.status != http.StatusNoContent {
				t.Fatalf("close: %d %s", r.status, r.body)
			}
			closed := e.api(http.MethodGet, path, nil).json(t)
			for name, r := range map[string]response{
				"patch notes":    e.api(http.MethodPatch, path, `[{"op":"replace","path":"/details/notes","value":"x"}]`),
				"patch reopen":   e.api(http.MethodPatch, path, patchStatus("Active", "Accepted", "")),
				"patch same":     e.api(http.MethodPatch, path, patchStatus("Closed", "Lost", "x")),
				"put":            e.api(http.MethodPut, path, closed, "If-Match", closed["eTag"].(string)),
				"control expire": e.do(http.MethodPost, "/_emulator/referrals/"+doc["id"].(string)+"/expire", nil),
			} {
				want := status
				if name == "control expire" {
					want = http.StatusConflict
				}
				if r.status != want {
					t.Errorf("%s: status %d, want %d: %s", name, r.status, want, r.body)
				}
			}
			after := e.api(http.MethodGet, path, nil).json(t)
			if after["eTag"] != closed["eTag"] || after["substatus"] != "Won" {
				t.Errorf("closed referral changed: %v %v", after["eTag"], after["substatus"])
			}
		})
	}
}

func TestMicrosoftReferralIsReadOnlyToPartner(t *testing.T) {
	e := newEnv(t, nil)
	_, ms := e.inbound(nil)
	path := collection + "/" + ms["id"].(string)
	if r := e.api(http.MethodGet, path, nil); r.status != http.StatusOK {
		t.Fatalf("GET Microsoft's referral: %d", r.status)
	}
	r := e.api(http.MethodPatch, path, `[{"op":"replace","path":"/details/notes","value":"x"}]`)
	if r.status != http.StatusForbidden {
		t.Fatalf("PATCH Microsoft's referral: %d %s", r.status, r.body)
	}
	if code, _ := apiErr(t, r); code != "accessDenied" {
		t.Errorf("code %s", code)
	}
}

func TestSharedReferralSecondStepJoinsEngagement(t *testing.T) {
	e := newEnv(t, nil)
	own := e.create(validReferral())
	forMS := validReferral()
	forMS["engagementId"] = own["engagementId"]
	forMS["target"] = []any{map[string]any{"type": "BusinessProfileLocation", "id": "msft"}}
	second := e.create(forMS)
	if second["engagementId"] != own["engagementId"] || second["id"] == own["id"] {
		t.Fatalf("second referral not in the engagement: %v", second["engagementId"])
	}
	// Microsoft accepting sets microsoftMsxId on the referral "for Microsoft".
	r := e.do(http.MethodPost, "/_emulator/referrals/"+own["id"].(string)+"/accept", map[string]any{"microsoftMsxId": "7-ABCDEFGHIJ"})
	if r.status != http.StatusOK {
		t.Fatalf("accept: %d %s", r.status, r.body)
	}
	if got := r.json(t); got["id"] != second["id"] || dig(got, "trackingInfo/microsoftMsxId") != "7-ABCDEFGHIJ" {
		t.Errorf("accept changed %v (msx %v)", got["id"], dig(got, "trackingInfo/microsoftMsxId"))
	}
}

func TestConcurrentWritesWithSameETagOnlyOneWins(t *testing.T) {
	e := newEnv(t, nil)
	doc := e.create(validReferral())
	path := collection + "/" + doc["id"].(string)
	tag := doc["eTag"].(string)
	const writers = 12
	statuses := make(chan int, writers)
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := fmt.Sprintf(`[{"op":"replace","path":"/details/notes","value":"writer %d"}]`, i)
			statuses <- e.api(http.MethodPatch, path, body, "If-Match", tag).status
		}(i)
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for s := range statuses {
		counts[s]++
	}
	if counts[http.StatusNoContent] != 1 || counts[http.StatusPreconditionFailed] != writers-1 {
		t.Fatalf("statuses %v, want one 204 and %d 412", counts, writers-1)
	}
}
