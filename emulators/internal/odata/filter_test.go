package odata

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"
)

// loadDocs returns the test referrals decoded with json.Number (useNumber)
// or float64 numbers.
func loadDocs(t testing.TB, useNumber bool) []map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/referrals.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if useNumber {
		dec.UseNumber()
	}
	var docs []map[string]any
	if err := dec.Decode(&docs); err != nil {
		t.Fatal(err)
	}
	return docs
}

// matches returns the first digit of the id of every matching document
// ("1", "12", ...).
func matches(t *testing.T, e Expr, docs []map[string]any) string {
	t.Helper()
	var out strings.Builder
	for _, d := range docs {
		ok, err := e.Eval(d)
		if err != nil {
			t.Fatalf("Eval on %v: %v", d["id"], err)
		}
		if ok {
			out.WriteByte(d["id"].(string)[0])
		}
	}
	return out.String()
}

func TestFilterMatches(t *testing.T) {
	cases := []struct{ filter, want string }{
		// comparison operators on strings
		{`status eq 'New'`, "1"},
		{`status ne 'New'`, "23"},
		{`status gt 'Active'`, "13"},
		{`status ge 'Active'`, "123"},
		{`status lt 'Closed'`, "2"},
		{`status le 'Closed'`, "23"},
		{`'New' eq status`, "1"},
		{`status eq 'new'`, ""}, // ordinal, case-sensitive
		{`details/notes eq 'it''s'`, "1"},
		{`name eq 'Contoso deal'`, "1"},
		// documented examples (reference §2.7)
		{`status eq 'New' and qualification eq 'SalesQualified'`, "1"},
		{`customerProfile/address/country eq 'US' and direction eq 'Incoming'`, "1"},
		{`(type eq 'Shared' and direction eq 'Incoming')`, "1"},
		{`(direction eq 'Incoming' and substatus eq 'Pending')`, "1"},
		{`status eq 'New' and direction eq 'Incoming' and type eq 'Shared' and team/any(t:t/email eq 'r2d2@contoso.com')`, "1"},
		{`engagementId eq 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa'`, "12"},
		// logic and precedence
		{`status eq 'New' or status eq 'Closed'`, "13"},
		{`not (status eq 'New')`, "23"},
		{`not(status eq 'New')`, "23"},
		{`not not (status eq 'New')`, "1"},
		{`status eq 'New' or status eq 'Active' and type eq 'Shared'`, "1"},
		{`(status eq 'New' or status eq 'Active') and type eq 'Independent'`, "2"},
		{`status eq 'Closed' or (status eq 'Active' and (type eq 'Independent' or type eq 'Shared'))`, "23"},
		{`true`, "123"},
		{`false`, ""},
		{`(status eq 'New') eq true`, "1"},
		{`((((status eq 'New'))))`, "1"},
		// nested paths and null
		{`customerProfile/address/country eq 'US'`, "1"},
		{`customerProfile/address/country ne 'US'`, "23"},
		{`customerProfile/address/country eq null`, "3"},
		{`customerProfile/address/state eq null`, "123"},
		{`customerProfile/address eq null`, "3"},
		{`customerProfile ne null`, "123"},
		{`customerProfile/address/city gt 'A'`, "12"},
		{`null eq externalReferenceId`, "2"},
		{`externalReferenceId eq null`, "2"},
		{`externalReferenceId eq ''`, "3"},
		{`externalReferenceId ne null`, "13"},
		{`externalReferenceId eq 'SF-001'`, "1"},
		{`inviteContext/invitedBy/organizationId eq 'msft'`, "1"},
		{`inviteContext/invitedBy/organizationName eq null`, "23"},
		{`trackingInfo/microsoftMsxId eq null`, "123"},
		// lambdas
		{`team/any(t: t/email eq 'r2d2@contoso.com')`, "1"},
		{`team/any(t: t/email eq 'nobody@contoso.com')`, ""},
		{`customerProfile/team/any(t: t/email eq 'a@contoso.com')`, "1"},
		{`customerProfile/team/any(c: c/firstName eq 'Ann' and c/lastName eq 'Lee')`, "1"},
		{`team/any()`, "1"},
		{`not team/any()`, "23"},
		{`team/all(t: t/email ne null)`, "123"},
		{`team/all(t: t/email eq 'r2d2@contoso.com')`, "23"},
		{`team/any(t: t/contactPreference/disableNotifications eq true)`, "1"},
		{`team/any(t: t/contactPreference/disableNotifications)`, "1"},
		{`team/any(t: t/email eq 'r2d2@contoso.com' and status eq 'New')`, "1"},
		{`team/any(t: t/email eq 'r2d2@contoso.com' and status eq 'Active')`, ""},
		{`registrations/any(r: r/solutionDetails/any(d: d/value gt 10))`, "2"},
		{`registrations/any(r: r/solutionDetails/any(d: d/value gt 10 and r/contract/value eq 100))`, "2"},
		{`registrations/any(r: r/solutionDetails/all(d: d/value gt 10))`, ""},
		{`details/requirements/solutions/any(s: s/price gt 10 and s/id eq 'SOL-1')`, "1"},
		{`details/requirements/solutions/any()`, "1"},
		{`target/any(x: x/type eq 'SolutionProfile')`, "1"},
		{`team/any(t: t/email eq 'r2d2@contoso.com') or team/any(t: t/email eq 'x')`, "1"},
		// date-times compare as instants
		{`updatedDateTime gt 2026-01-15T00:00:00Z`, "13"},
		{`updatedDateTime lt 2026-01-10T00:00:00Z`, "2"},
		{`updatedDateTime eq 2026-01-09T23:00:00Z`, "2"},
		{`updatedDateTime eq 2026-01-10T01:00:00+02:00`, "2"},
		{`updatedDateTime eq 2026-01-09T18:00-05:00`, "2"},
		{`createdDateTime ge 2026-01-05T10:00:00.1234567Z`, "1"},
		{`createdDateTime gt 2026-01-05T10:00:00.123456Z`, "1"},
		{`createdDateTime gt 2026-01-05T10:00:00.1234568Z`, ""},
		{`createdDateTime gt 2026-01-01T00:00Z`, "123"},
		{`createdDateTime lt updatedDateTime`, "123"},
		{`createdDateTime eq updatedDateTime`, ""},
		{`details/closingDateTime le 2026-12-31T00:00:00Z`, "1"},
		{`details/closingDateTime eq null`, "23"},
		{`expirationDateTime eq null`, "123"},
		// numbers
		{`details/dealValue gt 1000`, "1"},
		{`details/dealValue ge 3e4`, "1"},
		{`details/dealValue eq 30000.00`, "1"},
		{`details/dealValue eq 0.1`, "2"},
		{`details/dealValue eq 0.10`, "2"},
		{`details/dealValue lt 0`, ""},
		{`details/dealValue gt -1`, "12"},
		{`details/dealValue eq null`, "3"},
		{`details/dealValue gt null`, ""},
		{`details/dealValue ne null`, "12"},
		// booleans: null counts as false, not as true
		{`favorite`, "2"},
		{`favorite eq true`, "2"},
		{`favorite eq false`, "1"},
		{`favorite ne true`, "13"},
		{`not favorite`, "1"},
		{`favorite eq null`, "3"},
		{`favorite or status eq 'Closed'`, "23"},
		{`isSpam eq false`, "1"},
		// GUIDs: quoted (ordinal) and unquoted (as GUIDs)
		{`engagementId eq aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa`, "12"},
		{`engagementId eq AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA`, "12"},
		{`engagementId eq 'AAAAAAAA-AAAA-AAAA-AAAA-AAAAAAAAAAAA'`, ""},
		{`engagementId ne aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa`, "3"},
		{`id eq 33333333-3333-3333-3333-333333333333`, "3"},
		{`inviteContext/invitedBy/organizationId eq bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb`, "2"},
		{`inviteContext/invitedBy/organizationId ne bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb`, "13"},
		{`engagementId eq 'aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa' or id eq 33333333-3333-3333-3333-333333333333`, "123"},
		// open (untyped) properties
		{`details/requirements/additionalRequirements/iot/deviceCategory eq 'x'`, "1"},
		{`details/requirements/additionalRequirements/iot/count gt 2`, "1"},
		{`details/requirements/additionalRequirements/iot/since lt 2026-02-01T00:00:00Z`, "1"},
		{`details/requirements/additionalRequirements/missing eq null`, "123"},
		{`details/requirements/additionalRequirements ne null`, "1"},
		// whitespace
		{"  status   eq\t'New'  ", "1"},
		{`team/any( t : t/email eq 'r2d2@contoso.com' )`, "1"},
	}
	for _, useNumber := range []bool{false, true} {
		docs := loadDocs(t, useNumber)
		for _, c := range cases {
			e, err := ParseFilter(c.filter)
			if err != nil {
				t.Errorf("ParseFilter(%q): %v", c.filter, err)
				continue
			}
			if got := matches(t, e, docs); got != c.want {
				t.Errorf("useNumber=%v %q matched %q, want %q", useNumber, c.filter, got, c.want)
			}
		}
	}
}

func TestNumbersCompareExactlyWhenDecodedWithUseNumber(t *testing.T) {
	e, err := ParseFilter(`details/dealValue eq 0.1000000000000000001`)
	if err != nil {
		t.Fatal(err)
	}
	exact := map[string]any{"details": map[string]any{"dealValue": json.Number("0.1")}}
	if ok, _ := e.Eval(exact); ok {
		t.Error("json.Number 0.1 equals 0.1000000000000000001")
	}
	rounded := map[string]any{"details": map[string]any{"dealValue": 0.1}}
	if ok, _ := e.Eval(rounded); !ok {
		t.Error("a float64 document value should compare as float64")
	}
	e, _ = ParseFilter(`details/dealValue gt 9007199254740992`)
	big := map[string]any{"details": map[string]any{"dealValue": json.Number("9007199254740993")}}
	if ok, _ := e.Eval(big); !ok {
		t.Error("9007199254740993 gt 9007199254740992 is false")
	}
}

func TestFilterErrors(t *testing.T) {
	deep := strings.Repeat("(", 150) + "status eq 'New'" + strings.Repeat(")", 150)
	big := "status eq 'x'" + strings.Repeat(" or status eq 'x'", 40)
	cases := []struct{ filter, want string }{
		{``, "must not be empty"},
		{`   `, "must not be empty"},
		// unsupported constructs
		{`contains(name,'x')`, "function 'contains' is not supported"},
		{`startswith(name, 'C')`, "function 'startswith' is not supported"},
		{`tolower(status) eq 'new'`, "function 'tolower' is not supported"},
		{`foo(name)`, "unknown function with name 'foo'"},
		{`details/dealValue add 1 gt 2`, "'add' operator"},
		{`details/dealValue mul 2 gt 2`, "'mul' operator"},
		{`status in ('New','Active')`, "'in' operator"},
		{`status has 'x'`, "'has' operator"},
		{`$it/status eq 'New'`, "'$it'"},
		{`team/$count gt 1`, "'$count'"},
		{`status eq @p`, "Parameter aliases"},
		{`updatedDateTime gt duration'P1D'`, "Typed literals"},
		{`updatedDateTime gt datetime'2026-01-01T00:00:00'`, "Typed literals"},
		{`details/dealValue eq 5M`, "Unrecognized literal '5M'"},
		{`details/dealValue eq 12abc`, "Unrecognized literal"},
		{`details/dealValue eq 1e999`, "out of range"},
		{`details/dealValue eq -(1)`, "Syntax error at position 22"},
		{`team/all()`, "'all' operator requires a lambda"},
		// unknown properties (case-sensitive)
		{`Status eq 'New'`, "Could not find a property named 'Status' on type 'Referral'. Property names are case-sensitive; did you mean 'status'?"},
		{`bogus eq 1`, "Could not find a property named 'bogus' on type 'Referral'."},
		{`customerProfile/address/Country eq 'US'`, "did you mean 'country'?"},
		{`customerProfile/bogus eq 'x'`, "on type 'CustomerProfile'"},
		{`team/any(t: t/bogus eq 'x')`, "Could not find a property named 'bogus' on type 'Member'."},
		{`team/any(t: email eq 'x')`, "Could not find a property named 'email' on type 'Referral'."},
		{`t/email eq 'x'`, "Could not find a property named 't'"},
		// syntax
		{`status EQ 'New'`, "Syntax error at position 8"},
		{`status Eq 'New'`, "Syntax error"},
		{`status eq 'New' AND type eq 'Shared'`, "Syntax error"},
		{`status eq`, "Expression expected at position 10 in 'status eq'."},
		{`status eq 'New' and`, "Expression expected"},
		{`status eq 'New`, "unterminated string literal at position 11"},
		{`status eq "New"`, "Syntax error"},
		{`status = 'New'`, "Syntax error"},
		{`(status eq 'New'`, "')' or operator expected"},
		{`status eq 'New')`, "Syntax error at position 16"},
		{`status eq 'New' status eq 'Active'`, "Syntax error"},
		{`eq 'New'`, "Syntax error at position 1"},
		{`team/any(t t/email eq 'x')`, "Syntax error"},
		{`team/any(t: t/email eq 'x'`, "')' or operator expected"},
		{`team/any(eq: true)`, "Syntax error"},
		{`team/any(t: team/any(t: true))`, "range variable 't' has already been declared"},
		{`team/`, "Expression expected"},
		{`status eq ('New', 'Active')`, "Lists such as (a,b)"},
		{deep, "nested too deeply"},
		{big, "node count limit of '100' has been exceeded"},
		// types
		{`status eq 1`, "Found operand types 'Edm.String' and 'Edm.Decimal' for operator kind 'Equal'"},
		{`details/dealValue eq '1'`, "Found operand types 'Edm.Decimal' and 'Edm.String'"},
		{`details/dealValue gt true`, "operator kind 'GreaterThan'"},
		{`updatedDateTime gt '2026-01-01T00:00:00Z'`, "Found operand types 'Edm.DateTimeOffset' and 'Edm.String'"},
		{`updatedDateTime gt 5`, "incompatible types"},
		{`favorite gt true`, "operator kind 'GreaterThan'"},
		{`favorite eq 'true'`, "incompatible types"},
		{`status eq true`, "incompatible types"},
		{`status and favorite`, "operator kind 'And'"},
		{`favorite or status`, "operator kind 'Or'"},
		{`not status eq 'New'`, "Found operand type 'Edm.String' for operator kind 'Not'"},
		{`not 1`, "operator kind 'Not'"},
		{`status`, "must evaluate to a single boolean value"},
		{`details/dealValue`, "must evaluate to a single boolean value"},
		{`'New'`, "must evaluate to a single boolean value"},
		{`null`, "must evaluate to a single boolean value"},
		{`team eq null`, "incompatible types"},
		{`customerProfile eq 'x'`, "incompatible types"},
		{`customerProfile eq customerProfile`, "incompatible types"},
		{`team/email eq 'x'`, "is not a single value"},
		{`customerProfile/team/email eq 'x'`, "is not a single value"},
		{`status/foo eq 'x'`, "'status' is a primitive property; it has no property 'foo'"},
		{`status/any(x: true)`, "can only be applied to a collection"},
		{`customerProfile/any(x: true)`, "can only be applied to a collection"},
		{`team/any(t: t/email)`, "must be a boolean expression"},
		{`team/any(t: t)`, "must be a boolean expression"},
		{`name eq aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa`, "Found operand types 'Edm.String' and 'Edm.Guid'"},
		{`engagementId gt aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa`, "operator kind 'GreaterThan'"},
		{`details/dealValue eq aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa`, "incompatible types"},
		// date-time literals
		{`updatedDateTime gt 2026-01-01T00:00:00`, "Invalid DateTimeOffset literal '2026-01-01T00:00:00'"},
		{`updatedDateTime gt 2026-01-01T00:00:00 01:00`, "must be sent as %2B"},
		{`updatedDateTime gt 2026-01-01`, "Edm.Date literals"},
		{`updatedDateTime gt 2026-13-01T00:00:00Z`, "Invalid DateTimeOffset"},
		{`updatedDateTime gt 2026-02-30T00:00:00Z`, "Invalid DateTimeOffset"},
		{`updatedDateTime gt 2026-01-01T24:00:00Z`, "Invalid DateTimeOffset"},
		{`updatedDateTime gt 2026-01-01T00:00:00.Z`, "Invalid DateTimeOffset"},
		{`updatedDateTime gt 2026-01-01T00:00:00+0100`, "Invalid DateTimeOffset"},
		{`updatedDateTime gt 2026-01-01T00:00:00ZZ`, "Invalid DateTimeOffset"},
	}
	for _, c := range cases {
		_, err := ParseFilter(c.filter)
		if err == nil {
			t.Errorf("ParseFilter(%q) succeeded, want error containing %q", c.filter, c.want)
			continue
		}
		var oe *Error
		if !errors.As(err, &oe) {
			t.Errorf("ParseFilter(%q) error %T is not *Error", c.filter, err)
			continue
		}
		if oe.Code != "invalidRequest" || oe.Target != "$filter" {
			t.Errorf("ParseFilter(%q) error code/target = %q/%q", c.filter, oe.Code, oe.Target)
		}
		if !strings.Contains(oe.Message, c.want) {
			t.Errorf("ParseFilter(%q) error %q, want it to contain %q", c.filter, oe.Message, c.want)
		}
	}
}

func TestFilterRuntimeErrors(t *testing.T) {
	docs := loadDocs(t, true)
	// A comparison on an open property is checked against the stored value.
	e, err := ParseFilter(`details/requirements/additionalRequirements/iot/deviceCategory eq 5`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.Eval(docs[0])
	var oe *Error
	if !errors.As(err, &oe) || !strings.Contains(oe.Message, "Cannot compare a string value with a number value") {
		t.Fatalf("open-type mismatch: got %v, want *Error about comparing string and number", err)
	}
	if ok, err := e.Eval(docs[1]); ok || err != nil {
		t.Fatalf("open-type comparison on a document without the value: %v %v", ok, err)
	}
	e, _ = ParseFilter(`details/requirements/additionalRequirements/iot/deviceCategory/x eq 5`)
	if _, err := e.Eval(docs[0]); !errors.As(err, &oe) {
		t.Fatalf("path through an open string: got %v, want *Error", err)
	}
	e, _ = ParseFilter(`details/requirements/additionalRequirements/iot/any(x: true)`)
	if _, err := e.Eval(docs[0]); !errors.As(err, &oe) || !strings.Contains(oe.Message, "needs a collection") {
		t.Fatalf("lambda over an open object: got %v, want *Error", err)
	}
	// A document that does not fit the schema is a server bug: not a *Error.
	bad := map[string]any{"id": "x", "details": map[string]any{"dealValue": "10000"}, "status": 5}
	for _, f := range []string{`details/dealValue gt 5`, `status eq 'New'`, `updatedDateTime gt 2026-01-01T00:00:00Z and true`} {
		e, err := ParseFilter(f)
		if err != nil {
			t.Fatal(err)
		}
		if f == `updatedDateTime gt 2026-01-01T00:00:00Z and true` {
			bad["updatedDateTime"] = "yesterday"
		}
		_, err = e.Eval(bad)
		if err == nil || errors.As(err, &oe) {
			t.Errorf("%q on a bad document: got %v, want a non-*Error error", f, err)
		}
	}
	bad = map[string]any{"id": "x", "customerProfile": "oops"}
	e, _ = ParseFilter(`customerProfile/name eq 'x'`)
	if _, err := e.Eval(bad); err == nil || errors.As(err, &oe) {
		t.Errorf("path through a string where the schema has an object: got %v", err)
	}
}

func TestFilterConcurrentEval(t *testing.T) {
	docs := loadDocs(t, false)
	e, err := ParseFilter(`registrations/any(r: r/solutionDetails/any(d: d/value gt 10)) or team/any(t: t/email eq 'r2d2@contoso.com')`)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string)
	for g := 0; g < 8; g++ {
		go func() {
			var s string
			for i := 0; i < 200; i++ {
				s = ""
				for _, d := range docs {
					ok, err := e.Eval(d)
					if err != nil {
						s = err.Error()
						break
					}
					if ok {
						s += d["id"].(string)[:1]
					}
				}
			}
			done <- s
		}()
	}
	for g := 0; g < 8; g++ {
		if s := <-done; s != "12" {
			t.Errorf("concurrent eval got %q", s)
		}
	}
}

func TestSchemaMatchesTestDocuments(t *testing.T) {
	for _, d := range loadDocs(t, true) {
		if err := ReferralSchema().Check(d); err != nil {
			t.Errorf("%v", err)
		}
	}
	err := ReferralSchema().Check(map[string]any{
		"id": 5, "bogus": true, "details": map[string]any{"dealValue": "x"},
		"team": []any{map[string]any{"email": 1}}, "createdDateTime": "soon",
	})
	if err == nil {
		t.Fatal("Check accepted a bad document")
	}
	for _, want := range []string{"id: want string", "bogus: property not in schema", "details/dealValue: want number", "team[0]/email: want string", `createdDateTime: "soon" is not a date-time`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check error %q lacks %q", err, want)
		}
	}
}

func FuzzParseFilter(f *testing.F) {
	seeds := []string{
		`status eq 'New'`, `team/any(t: t/email eq 'x')`, `not (a eq b)`,
		`updatedDateTime gt 2026-01-01T00:00:00Z`, `engagementId eq aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa`,
		`details/dealValue ge -1.5e3 and favorite`, `((`, `'`, `registrations/any(r: r/solutionDetails/all(d: d/value gt 1))`,
		`details/requirements/additionalRequirements/x/any(y: y/z eq 1)`, `customerProfile eq null`,
	}
	for _, s := range seeds {
		f.Add(s)
	}
	docs := loadDocs(f, true)
	f.Fuzz(func(t *testing.T, s string) {
		e, err := ParseFilter(s)
		if err != nil {
			var oe *Error
			if !errors.As(err, &oe) {
				t.Fatalf("ParseFilter(%q) returned a non-*Error: %v", s, err)
			}
			return
		}
		for _, d := range docs {
			if _, err := e.Eval(d); err != nil {
				var oe *Error
				if !errors.As(err, &oe) {
					t.Fatalf("Eval(%q) on a schema-conforming document returned a non-*Error: %v", s, err)
				}
			}
		}
	})
}

func BenchmarkFilterEval(b *testing.B) {
	docs := loadDocs(b, true)
	e, err := ParseFilter(`status eq 'New' and direction eq 'Incoming' and type eq 'Shared' and team/any(t:t/email eq 'r2d2@contoso.com') and updatedDateTime gt 2026-01-01T00:00:00Z`)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, d := range docs {
			if _, err := e.Eval(d); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkParseQuery(b *testing.B) {
	v, _ := url.ParseQuery("$filter=status%20eq%20'New'%20and%20team/any(t:t/email%20eq%20'x')&$orderby=createdDateTime%20desc&$top=10&$select=id,status&$count=true")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseQuery(v); err != nil {
			b.Fatal(err)
		}
	}
}

// RequiredStrings names the values an indexed lookup must read, and
// declines whenever a document outside them could match.
func TestRequiredStrings(t *testing.T) {
	cases := []struct {
		filter string
		want   []string // nil: no index applies
	}{
		{`externalReferenceId eq 'A'`, []string{"A"}},
		{`'A' eq externalReferenceId`, []string{"A"}},
		{`externalReferenceId eq 'A' or externalReferenceId eq 'B'`, []string{"A", "B"}},
		{`externalReferenceId eq 'A' or externalReferenceId eq 'B' or 'A' eq externalReferenceId`, []string{"A", "B"}},
		{`(externalReferenceId eq 'A' or externalReferenceId eq 'B') and status eq 'New'`, []string{"A", "B"}},
		{`(externalReferenceId eq 'A' or externalReferenceId eq 'B') and externalReferenceId eq 'C'`, []string{"C"}},
		{`externalReferenceId eq 'A' and status eq 'New' or externalReferenceId eq 'B'`, []string{"A", "B"}},
		{`externalReferenceId eq 'A' or status eq 'New'`, nil},
		{`status eq 'New' or externalReferenceId eq 'A'`, nil},
		{`externalReferenceId ne 'A'`, nil},
		{`not (externalReferenceId ne 'A')`, nil},
		{`status eq 'New'`, nil},
		{`name eq 'A'`, nil},
	}
	for _, c := range cases {
		e, err := ParseFilter(c.filter)
		if err != nil {
			t.Fatalf("ParseFilter(%q): %v", c.filter, err)
		}
		got, ok := e.(interface {
			RequiredStrings(string) ([]string, bool)
		}).RequiredStrings("externalReferenceId")
		if ok != (c.want != nil) || strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("RequiredStrings(%q) = %q, %v; want %q", c.filter, got, ok, c.want)
		}
	}
}
