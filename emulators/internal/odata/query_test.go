package odata

import (
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

func TestParseQuery(t *testing.T) {
	q, err := ParseQuery(url.Values{})
	if err != nil {
		t.Fatal(err)
	}
	if q.Filter != nil || q.OrderBy != nil || q.Top != -1 || q.Skip != 0 || q.Select != nil || q.Count {
		t.Errorf("empty query = %+v", q)
	}

	v, _ := url.ParseQuery("$filter=status%20eq%20'New'&$orderby=createdDateTime%20desc,updatedDateTime&$top=10&$skip=5" +
		"&$select=id,status,customerProfile/address/country&$count=true&$skiptoken=abc&api-version=1")
	q, err = ParseQuery(v)
	if err != nil {
		t.Fatal(err)
	}
	if q.Filter == nil {
		t.Error("no filter")
	}
	wantOrder := []OrderTerm{{"createdDateTime", true}, {"updatedDateTime", false}}
	if !reflect.DeepEqual(q.OrderBy, wantOrder) {
		t.Errorf("OrderBy = %+v", q.OrderBy)
	}
	if q.Top != 10 || q.Skip != 5 || !q.Count {
		t.Errorf("Top/Skip/Count = %d/%d/%v", q.Top, q.Skip, q.Count)
	}
	if want := []string{"id", "status", "customerProfile/address/country"}; !reflect.DeepEqual(q.Select, want) {
		t.Errorf("Select = %q", q.Select)
	}

	ok := []struct {
		query string
		check func(*Query) bool
	}{
		{"$top=0", func(q *Query) bool { return q.Top == 0 }},
		{"$top=007", func(q *Query) bool { return q.Top == 7 }},
		{"$skip=0", func(q *Query) bool { return q.Skip == 0 }},
		{"$count=false", func(q *Query) bool { return !q.Count }},
		{"$orderby=createdDateTime", func(q *Query) bool { return len(q.OrderBy) == 1 && !q.OrderBy[0].Desc }},
		{"$orderby=createdDateTime%20asc", func(q *Query) bool { return len(q.OrderBy) == 1 && !q.OrderBy[0].Desc }},
		{"$orderby=updatedDateTime%20desc%20,%20createdDateTime%20desc", func(q *Query) bool { return len(q.OrderBy) == 2 && q.OrderBy[1].Desc }},
		{"$select=*", func(q *Query) bool { return q.Select == nil }},
		{"$select=id,*", func(q *Query) bool { return q.Select == nil }},
		{"$select=id%2C%20status", func(q *Query) bool { return len(q.Select) == 2 && q.Select[1] == "status" }},
		{"$select=team,customerProfile/team", func(q *Query) bool { return len(q.Select) == 2 }},
		{"$select=customerProfile,customerProfile/name", func(q *Query) bool { return len(q.Select) == 2 }},
		{"$select=details/requirements/additionalRequirements/iot", func(q *Query) bool { return len(q.Select) == 1 }},
		{"$skiptoken=xyz", func(q *Query) bool { return q.Top == -1 }},
		{"custom=1&api-version=2", func(q *Query) bool { return q.Filter == nil }},
		{"$top=2147483647", func(q *Query) bool { return q.Top == 2147483647 }},
	}
	for _, c := range ok {
		v, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		q, err := ParseQuery(v)
		if err != nil {
			t.Errorf("ParseQuery(%q): %v", c.query, err)
			continue
		}
		if !c.check(q) {
			t.Errorf("ParseQuery(%q) = %+v", c.query, q)
		}
	}
}

func TestParseQueryErrors(t *testing.T) {
	cases := []struct{ query, target, want string }{
		{"$expand=team", "$expand", "The query parameter '$expand' is not supported."},
		{"$search=contoso", "$search", "not supported"},
		{"$apply=groupby((status))", "$apply", "not supported"},
		{"$format=json", "$format", "not supported"},
		{"$bogus=1", "$bogus", "not supported"},
		{"$Filter=status%20eq%20'New'", "$Filter", "System query options are case-sensitive; use '$filter'"},
		{"$TOP=1", "$TOP", "use '$top'"},
		{"filter=status%20eq%20'New'", "filter", "need the '$' prefix: '$filter'"},
		{"Top=1", "Top", "need the '$' prefix: '$top'"},
		{"expand=team", "expand", "need the '$' prefix"},
		{"$top=1&$top=2", "$top", "specified more than once"},
		{"$filter=true&$filter=false", "$filter", "specified more than once"},
		{"$top=-1", "$top", "Invalid value '-1' for $top query option found. The $top query option requires a non-negative integer value."},
		{"$top=", "$top", "Invalid value ''"},
		{"$top=abc", "$top", "Invalid value 'abc'"},
		{"$top=1.5", "$top", "Invalid value"},
		{"$top=%2B5", "$top", "Invalid value '+5'"},
		{"$top=2147483648", "$top", "Invalid value"},
		{"$top=99999999999999999999", "$top", "Invalid value"},
		{"$skip=-3", "$skip", "Invalid value '-3' for $skip"},
		{"$skip=x", "$skip", "Invalid value"},
		{"$count=True", "$count", "'True' is not a valid count option"},
		{"$count=1", "$count", "not a valid count option"},
		{"$count=", "$count", "not a valid count option"},
		{"$filter=", "$filter", "must not be empty"},
		{"$filter=contains(name,'x')", "$filter", "function 'contains' is not supported"},
		{"$filter=bogus%20eq%201", "$filter", "Could not find a property named 'bogus'"},
		{"$orderby=", "$orderby", "must not be empty"},
		{"$orderby=status", "$orderby", "The property 'status' cannot be used in the $orderby query option."},
		{"$orderby=details/dealValue%20desc", "$orderby", "cannot be used in the $orderby query option"},
		{"$orderby=bogus", "$orderby", "Could not find a property named 'bogus' on type 'Referral'."},
		{"$orderby=CreatedDateTime", "$orderby", "did you mean 'createdDateTime'?"},
		{"$orderby=createdDateTime%20DESC", "$orderby", "expected asc or desc"},
		{"$orderby=createdDateTime%20descending", "$orderby", "expected asc or desc"},
		{"$orderby=createdDateTime%20desc%20asc", "$orderby", "Syntax error"},
		{"$orderby=createdDateTime,", "$orderby", "Syntax error"},
		{"$orderby=createdDateTime,createdDateTime%20desc", "$orderby", "Duplicate property named 'createdDateTime'"},
		{"$orderby=team", "$orderby", "is a collection"},
		{"$select=", "$select", "must not be empty"},
		{"$select=id,,status", "$select", "empty item"},
		{"$select=bogus", "$select", "Could not find a property named 'bogus' on type 'Referral'."},
		{"$select=Status", "$select", "did you mean 'status'?"},
		{"$select=customerProfile/bogus", "$select", "on type 'CustomerProfile'"},
		{"$select=team/email", "$select", "goes through the collection 'team'"},
		{"$select=status/x", "$select", "primitive property 'status'"},
		{"$select=id,id", "$select", "Found multiple select terms with same select path 'id'"},
		{"$select=customerProfile/", "$select", "not a valid property path"},
		{"$select=/id", "$select", "not a valid property path"},
		{"$select=id%20status", "$select", "not a valid property path"},
		{"$select=team(email)", "$select", "not a valid property path"},
	}
	for _, c := range cases {
		v, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseQuery(v)
		var oe *Error
		if !errors.As(err, &oe) {
			t.Errorf("ParseQuery(%q) = %v, want *Error", c.query, err)
			continue
		}
		if oe.Code != "invalidRequest" || oe.Target != c.target || !strings.Contains(oe.Message, c.want) {
			t.Errorf("ParseQuery(%q) = %q/%q/%q, want target %q and message containing %q", c.query, oe.Code, oe.Target, oe.Message, c.target, c.want)
		}
	}
}

func ids(docs []map[string]any) string {
	var s []string
	for _, d := range docs {
		s = append(s, d["id"].(string)[:1])
	}
	return strings.Join(s, "")
}

func TestSort(t *testing.T) {
	mk := func(id, created string, updated any) map[string]any {
		return map[string]any{"id": id, "createdDateTime": created, "updatedDateTime": updated}
	}
	base := func() []map[string]any {
		return []map[string]any{
			mk("4", "2026-01-02T00:00:00Z", "2026-01-05T00:00:00Z"),
			mk("2", "2026-01-01T00:00:00.5Z", nil),
			mk("1", "2026-01-02T00:00:00Z", "2026-01-05T00:00:00Z"),
			mk("3", "2026-01-01T01:00:00+02:00", "2026-01-04T00:00:00Z"), // 2025-12-31T23:00Z
			mk("5", "2026-01-01T00:00:00.1234567Z", "2026-01-06T00:00:00Z"),
		}
	}
	cases := []struct {
		terms []OrderTerm
		want  string
	}{
		{nil, "12345"},
		{[]OrderTerm{{"createdDateTime", false}}, "35214"},
		{[]OrderTerm{{"createdDateTime", true}}, "14253"},
		{[]OrderTerm{{"updatedDateTime", false}}, "23145"}, // null first ascending
		{[]OrderTerm{{"updatedDateTime", true}}, "51432"},  // null last descending
		{[]OrderTerm{{"updatedDateTime", true}, {"createdDateTime", false}}, "51432"},
		{[]OrderTerm{{"updatedDateTime", false}, {"createdDateTime", true}}, "23145"},
	}
	for _, c := range cases {
		docs := base()
		Sort(docs, c.terms)
		if got := ids(docs); got != c.want {
			t.Errorf("Sort(%v) = %s, want %s", c.terms, got, c.want)
		}
	}
	// Numbers (float64 and json.Number) sort numerically.
	docs := []map[string]any{
		{"id": "a", "n": json.Number("10")}, {"id": "b", "n": 9.5}, {"id": "c", "n": json.Number("-1")},
	}
	Sort(docs, []OrderTerm{{"n", false}})
	if got := docs[0]["id"].(string) + docs[1]["id"].(string) + docs[2]["id"].(string); got != "cba" {
		t.Errorf("numeric sort = %s", got)
	}
}

func TestProject(t *testing.T) {
	doc := loadDocs(t, true)[0]
	got := Project(doc, []string{"id", "customerProfile/address/country", "customerProfile/name", "team", "nosuch", "details/nosuch/x"})
	want := map[string]any{
		"id": doc["id"],
		"customerProfile": map[string]any{
			"name":    "Contoso",
			"address": map[string]any{"country": "US"},
		},
		"team":    doc["team"],
		"details": map[string]any{},
	}
	if !reflect.DeepEqual(got, want) {
		gb, _ := json.Marshal(got)
		t.Errorf("Project = %s", gb)
	}
	// The result is a deep copy.
	got["team"].([]any)[0].(map[string]any)["email"] = "changed"
	if doc["team"].([]any)[0].(map[string]any)["email"] != "r2d2@contoso.com" {
		t.Error("Project shares memory with the document")
	}
	// A parent and its child: the whole parent.
	got = Project(doc, []string{"customerProfile/name", "customerProfile"})
	if !reflect.DeepEqual(got["customerProfile"], doc["customerProfile"]) {
		t.Error("selecting a parent and a child should give the whole parent")
	}
	// A null intermediate stays null.
	doc3 := loadDocs(t, true)[2]
	got = Project(doc3, []string{"customerProfile/address/country", "inviteContext/invitedBy"})
	want = map[string]any{"customerProfile": map[string]any{"address": nil}, "inviteContext": nil}
	if !reflect.DeepEqual(got, want) {
		gb, _ := json.Marshal(got)
		t.Errorf("Project with null intermediates = %s", gb)
	}
	// nil and "*" copy everything.
	for _, paths := range [][]string{nil, {"*"}, {"id", "*"}} {
		if got := Project(doc, paths); !reflect.DeepEqual(got, doc) {
			t.Errorf("Project(%q) is not the whole document", paths)
		}
	}
	if got := Project(doc, []string{"nosuch"}); len(got) != 0 {
		t.Errorf("Project of a missing property = %v", got)
	}
}

func TestParseQueryWithCustomOptions(t *testing.T) {
	o := &Options{
		Schema:       Object("Thing", map[string]*Type{"id": String, "n": Number, "tags": CollectionOf(String)}),
		Sortable:     []string{"n"},
		MaxNodeCount: 5,
	}
	v, _ := url.ParseQuery("$orderby=n%20desc&$filter=tags/any(t:%20t%20eq%20'x')")
	q, err := o.ParseQuery(v)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := q.Filter.Eval(map[string]any{"tags": []any{"y", "x"}}); !ok || err != nil {
		t.Errorf("primitive collection lambda: %v %v", ok, err)
	}
	if _, err := o.ParseFilter("n eq 1 or n eq 2 or n eq 3"); err == nil || !strings.Contains(err.Error(), "node count limit of '5'") {
		t.Errorf("MaxNodeCount: %v", err)
	}
	v, _ = url.ParseQuery("$orderby=id")
	if _, err := o.ParseQuery(v); err == nil {
		t.Error("id is not sortable in these options")
	}
}
