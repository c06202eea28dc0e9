package soql

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cosell/cosell/emulators/internal/sfschema"
)

// memStore is a Store over slices, in insertion order.
type memStore struct {
	schema *sfschema.Schema
	recs   map[string][]map[string]any
	byID   map[string]map[string]any
	scans  map[string]int // full scans per object
}

func newMemStore(s *sfschema.Schema) *memStore {
	return &memStore{schema: s, recs: map[string][]map[string]any{}, byID: map[string]map[string]any{}, scans: map[string]int{}}
}

func (m *memStore) Scan(object string, fn func(map[string]any) bool) {
	m.scans[object]++
	for _, r := range m.recs[object] {
		if !fn(r) {
			return
		}
	}
}

func (m *memStore) Get(object, id string) (map[string]any, bool) {
	r, ok := m.byID[id]
	if !ok || !strings.HasPrefix(id, m.schema.Object(object).KeyPrefix) {
		return nil, false
	}
	return r, true
}

// add stores a record of object with the seq-th id and returns the id.
func (m *memStore) add(object string, seq uint64, fields map[string]any) string {
	id := sfschema.NewID(m.schema.Object(object).KeyPrefix, seq)
	rec := map[string]any{"Id": id, "IsDeleted": false}
	for k, v := range fields {
		rec[k] = v
	}
	m.recs[object] = append(m.recs[object], rec)
	m.byID[id] = rec
	return id
}

// indexedStore adds a ReferenceIndex over every reference field.
type indexedStore struct{ *memStore }

func (s indexedStore) ScanByReference(object, field, id string, fn func(map[string]any) bool) bool {
	f := s.schema.Object(object).Field(field)
	if f == nil || f.Type != sfschema.TypeReference {
		return false
	}
	for _, r := range s.recs[object] {
		if r[field] == id && !fn(r) {
			break
		}
	}
	return true
}

type fixture struct {
	schema                         *sfschema.Schema
	store                          *memStore
	user, acme, fab                string
	oppAcme, oppFab, oppNone, oppX string
	c1, c2                         string
}

func newFixture() *fixture {
	s := sfschema.Default(sfschema.Options{})
	st := newMemStore(s)
	f := &fixture{schema: s, store: st}
	f.user = st.add("User", 1, map[string]any{"Username": "int@example.com", "Name": "Integration User", "IsActive": true})
	f.acme = st.add("Account", 1, map[string]any{"Name": "Acme", "BillingCountry": "US", "OwnerId": f.user})
	f.fab = st.add("Account", 2, map[string]any{"Name": "Fabrikam", "BillingCountry": "DE", "ParentId": f.acme, "OwnerId": f.user})
	f.oppAcme = st.add("Opportunity", 1, map[string]any{
		"Name": "Acme Deal", "AccountId": f.acme, "Amount": 1000.0, "StageName": "Prospecting",
		"CloseDate": "2026-03-01", "SystemModstamp": "2026-01-05T10:00:00.000+0000", "CreatedDate": "2026-01-05T10:00:00.000+0000",
		"Referral_Identifier__c": "ref-1", "Sync_with_Partner_Center__c": true, "OwnerId": f.user,
		"Description": "long text",
	})
	f.oppFab = st.add("Opportunity", 2, map[string]any{
		"Name": "Fabrikam 100% Deal", "AccountId": f.fab, "Amount": 50.5, "StageName": "Closed Won",
		"CloseDate": "2026-01-15", "SystemModstamp": "2025-12-31T23:59:59.000+0000",
		"Referral_Identifier__c": "REF-2", "Sync_with_Partner_Center__c": false, "OwnerId": f.user,
	})
	f.oppNone = st.add("Opportunity", 3, map[string]any{
		"Name": "no_account deal", "AccountId": nil, "Amount": nil, "StageName": "On Hold",
		"CloseDate": "2026-02-01", "SystemModstamp": "2026-01-01T00:00:00.000+0000",
		"Sync_with_Partner_Center__c": false, "OwnerId": f.user,
	})
	f.oppX = st.add("Opportunity", 4, map[string]any{
		"Name": "Deleted deal", "AccountId": f.acme, "Amount": 7.0, "StageName": "Prospecting",
		"CloseDate": "2026-02-01", "SystemModstamp": "2026-01-02T00:00:00.000+0000",
		"Sync_with_Partner_Center__c": true, "OwnerId": f.user,
	})
	st.byID[f.oppX]["IsDeleted"] = true
	f.c1 = st.add("Contact", 1, map[string]any{"LastName": "Smith", "FirstName": "Ann", "Email": "ann@acme.example", "AccountId": f.acme})
	f.c2 = st.add("Contact", 2, map[string]any{"LastName": "Jones", "AccountId": f.fab})
	st.add("OpportunityContactRole", 1, map[string]any{"OpportunityId": f.oppAcme, "ContactId": f.c1, "IsPrimary": true, "Role": "Decision Maker"})
	st.add("OpportunityContactRole", 2, map[string]any{"OpportunityId": f.oppAcme, "ContactId": f.c2, "IsPrimary": false, "Role": "Evaluator"})
	st.add("OpportunityContactRole", 3, map[string]any{"OpportunityId": f.oppFab, "ContactId": f.c2, "IsPrimary": true})
	st.add("Microsoft_Solution__c", 1, map[string]any{"Opportunity__c": f.oppAcme, "Solution_Identifier__c": "SOL-2", "Name": "b"})
	st.add("Microsoft_Solution__c", 2, map[string]any{"Opportunity__c": f.oppAcme, "Solution_Identifier__c": "SOL-1", "Name": "a"})
	return f
}

var fixedNow = time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)

func run(t *testing.T, st Store, s *sfschema.Schema, q string, opt ExecOptions) ([]map[string]any, int) {
	t.Helper()
	pq, err := Parse(q, s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", q, err)
	}
	if opt.Now.IsZero() {
		opt.Now = fixedNow
	}
	recs, n, err := pq.Execute(st, opt)
	if err != nil {
		t.Fatalf("Execute(%q): %v", q, err)
	}
	return recs, n
}

func names(recs []map[string]any) []string {
	out := []string{}
	for _, r := range recs {
		n, _ := r["Name"].(string)
		out = append(out, n)
	}
	return out
}

func TestExecuteFilters(t *testing.T) {
	f := newFixture()
	cases := []struct {
		q    string
		want []string
	}{
		{"SELECT Name FROM Opportunity", []string{"Acme Deal", "Fabrikam 100% Deal", "no_account deal"}},
		{"select name from opportunity where name = 'ACME deal'", []string{"Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE Name != 'Acme Deal' ORDER BY Name", []string{"Fabrikam 100% Deal", "no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE Amount > 100", []string{"Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE Amount <= 50.5", []string{"Fabrikam 100% Deal"}},
		{"SELECT Name FROM Opportunity WHERE Amount = null", []string{"no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE Referral_Identifier__c = ''", []string{"no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE AccountId != '' ORDER BY Name", []string{"Acme Deal", "Fabrikam 100% Deal"}},
		{"SELECT Name FROM Opportunity WHERE Amount != null ORDER BY Amount DESC", []string{"Acme Deal", "Fabrikam 100% Deal"}},
		{"SELECT Name FROM Opportunity WHERE Amount <> 1000", []string{"Fabrikam 100% Deal", "no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE NOT Amount > 100", []string{"Fabrikam 100% Deal", "no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE Sync_with_Partner_Center__c = true", []string{"Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE IsDeleted = true", []string{}},
		{"SELECT Name FROM Opportunity WHERE CloseDate >= 2026-02-01 ORDER BY CloseDate", []string{"no_account deal", "Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE SystemModstamp > 2026-01-01T00:00:00Z", []string{"Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE SystemModstamp >= 2026-01-01T00:00:00Z ORDER BY SystemModstamp", []string{"no_account deal", "Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE SystemModstamp > 2026-01-01T01:00:00.000+02:00", []string{"Acme Deal", "Fabrikam 100% Deal", "no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE SystemModstamp < 2026-01-01T00:00:00.001Z ORDER BY Name", []string{"Fabrikam 100% Deal", "no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE Name LIKE 'acme%'", []string{"Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE Name LIKE '%100\\%%'", []string{"Fabrikam 100% Deal"}},
		{"SELECT Name FROM Opportunity WHERE Name LIKE '%\\_%'", []string{"no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE Name LIKE '_cme _eal'", []string{"Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE NOT Name LIKE '%deal'", []string{}},
		{"SELECT Name FROM Opportunity WHERE StageName IN ('Prospecting', 'On Hold') ORDER BY Name DESC", []string{"no_account deal", "Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE StageName NOT IN ('Prospecting') ORDER BY Name", []string{"Fabrikam 100% Deal", "no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE Referral_Identifier__c NOT IN ('ref-1') ORDER BY Name", []string{"Fabrikam 100% Deal", "no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE Referral_Identifier__c = 'ref-2'", []string{"Fabrikam 100% Deal"}},
		{"SELECT Name FROM Opportunity WHERE Account.BillingCountry = 'de'", []string{"Fabrikam 100% Deal"}},
		{"SELECT Name FROM Opportunity WHERE Account.Parent.Name = 'Acme'", []string{"Fabrikam 100% Deal"}},
		{"SELECT Name FROM Opportunity WHERE Account.Name = null", []string{"no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE (Amount > 100 OR StageName = 'On Hold') AND Sync_with_Partner_Center__c = false", []string{"no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE Amount > 100 OR (StageName = 'On Hold' AND Name LIKE 'no%') OR Name = 'x'", []string{"Acme Deal", "no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE NOT (Amount > 100 OR Amount < 60)", []string{"no_account deal"}},
		{"SELECT Name FROM Opportunity o WHERE o.Amount > 100", []string{"Acme Deal"}},
		{"SELECT Opportunity.Name FROM Opportunity WHERE Opportunity.Amount > 100", []string{"Acme Deal"}},
		{"SELECT Name FROM Opportunity ORDER BY Amount", []string{"no_account deal", "Fabrikam 100% Deal", "Acme Deal"}},
		{"SELECT Name FROM Opportunity ORDER BY Amount DESC", []string{"no_account deal", "Acme Deal", "Fabrikam 100% Deal"}},
		{"SELECT Name FROM Opportunity ORDER BY Amount DESC NULLS LAST", []string{"Acme Deal", "Fabrikam 100% Deal", "no_account deal"}},
		{"SELECT Name FROM Opportunity ORDER BY Account.BillingCountry ASC NULLS LAST, Name", []string{"Fabrikam 100% Deal", "Acme Deal", "no_account deal"}},
		{"SELECT Name FROM Opportunity ORDER BY Sync_with_Partner_Center__c DESC, Name DESC", []string{"Acme Deal", "no_account deal", "Fabrikam 100% Deal"}},
		{"SELECT Name FROM Opportunity ORDER BY Name LIMIT 2", []string{"Acme Deal", "Fabrikam 100% Deal"}},
		{"SELECT Name FROM Opportunity ORDER BY Name LIMIT 2 OFFSET 2", []string{"no_account deal"}},
		{"SELECT Name FROM Opportunity ORDER BY Name OFFSET 5", []string{}},
		{"SELECT Name FROM Opportunity LIMIT 0", []string{}},
		{"SELECT Name FROM Opportunity WHERE CloseDate = TODAY", []string{}},
		{"SELECT Name FROM Opportunity WHERE CreatedDate = TODAY", []string{"Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE SystemModstamp = LAST_N_DAYS:4 ORDER BY Name", []string{"Acme Deal", "no_account deal"}},
		{"SELECT Name FROM Opportunity WHERE SystemModstamp < N_DAYS_AGO:4", []string{"Fabrikam 100% Deal"}},
		{"SELECT Name FROM Opportunity WHERE CloseDate > NEXT_N_DAYS:30 ORDER BY Name", []string{"Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE CloseDate < YESTERDAY", []string{}},
		{"SELECT Name FROM Opportunity WHERE OwnerId = '{USERID}' AND Amount > 100", []string{"Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE Id = '{OPPFAB}'", []string{"Fabrikam 100% Deal"}},
		{"SELECT Name FROM Opportunity WHERE Id IN ('{OPPFAB}', '{OPPACME}', '{OPPFAB}') AND Amount > 100", []string{"Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE Id = '{OPPX}'", []string{}},
		{"SELECT Name FROM Opportunity WHERE AccountId = '{ACME}'", []string{"Acme Deal"}},
		{"SELECT Name FROM Opportunity WHERE AccountId = '{ACME15}'", []string{"Acme Deal"}},
		{"SELECT Name FROM Account WHERE Name > 'b'", []string{"Fabrikam"}},
	}
	replacer := strings.NewReplacer("{OPPFAB}", f.oppFab, "{OPPACME}", f.oppAcme, "{OPPX}", f.oppX,
		"{ACME15}", f.acme[:15], "{ACME}", f.acme, "{USERID}", f.user)
	for _, st := range []Store{f.store, indexedStore{f.store}} {
		for _, c := range cases {
			q := replacer.Replace(c.q)
			recs, n := run(t, st, f.schema, q, ExecOptions{})
			if got := names(recs); !reflect.DeepEqual(got, c.want) || n != len(c.want) {
				t.Errorf("%T %s\n got %v (totalSize %d)\nwant %v", st, q, got, n, c.want)
			}
		}
	}
}

func TestQueryAllAndCount(t *testing.T) {
	f := newFixture()
	recs, n := run(t, f.store, f.schema, "SELECT Name, IsDeleted FROM Opportunity WHERE StageName = 'Prospecting' ORDER BY Name", ExecOptions{IncludeDeleted: true})
	if got := names(recs); !reflect.DeepEqual(got, []string{"Acme Deal", "Deleted deal"}) || n != 2 || recs[1]["IsDeleted"] != true {
		t.Errorf("queryAll = %v", recs)
	}
	recs, n = run(t, f.store, f.schema, "SELECT COUNT() FROM Opportunity", ExecOptions{})
	if n != 3 || recs == nil || len(recs) != 0 {
		t.Errorf("COUNT() = %v, %d", recs, n)
	}
	_, n = run(t, f.store, f.schema, "select count() from Opportunity where Sync_with_Partner_Center__c = true", ExecOptions{IncludeDeleted: true})
	if n != 2 {
		t.Errorf("queryAll COUNT() = %d, want 2", n)
	}
	_, n = run(t, f.store, f.schema, "SELECT COUNT() FROM Opportunity LIMIT 2", ExecOptions{})
	if n != 2 {
		t.Errorf("COUNT() LIMIT 2 = %d", n)
	}
}

func TestShape(t *testing.T) {
	f := newFixture()
	q := "SELECT id, name, account.billingcountry, Account.Owner.Name, Account.Name, amount, " +
		"(SELECT contact.email, isprimary FROM opportunitycontactroles WHERE IsPrimary = true), " +
		"(SELECT Solution_Identifier__c FROM Microsoft_Solutions__r ORDER BY Solution_Identifier__c LIMIT 1) " +
		"FROM opportunity WHERE Id IN ('" + f.oppAcme + "', '" + f.oppNone + "') ORDER BY Name"
	for _, st := range []Store{f.store, indexedStore{f.store}} {
		recs, n := run(t, st, f.schema, q, ExecOptions{InstancePath: "/services/data/v62.0"})
		got, err := json.Marshal(map[string]any{"totalSize": n, "records": recs})
		if err != nil {
			t.Fatal(err)
		}
		u := "/services/data/v62.0/sobjects/"
		want := `{"records":[{"Account":{"BillingCountry":"US","Name":"Acme","Owner":{"Name":"Integration User","attributes":{"type":"User","url":"` + u + `User/` + f.user + `"}},"attributes":{"type":"Account","url":"` + u + `Account/` + f.acme + `"}},` +
			`"Amount":1000,"Id":"` + f.oppAcme + `",` +
			`"Microsoft_Solutions__r":{"done":true,"records":[{"Solution_Identifier__c":"SOL-1","attributes":{"type":"Microsoft_Solution__c","url":"` + u + `Microsoft_Solution__c/` + f.store.recs["Microsoft_Solution__c"][1]["Id"].(string) + `"}}],"totalSize":1},` +
			`"Name":"Acme Deal",` +
			`"OpportunityContactRoles":{"done":true,"records":[{"Contact":{"Email":"ann@acme.example","attributes":{"type":"Contact","url":"` + u + `Contact/` + f.c1 + `"}},"IsPrimary":true,"attributes":{"type":"OpportunityContactRole","url":"` + u + `OpportunityContactRole/` + f.store.recs["OpportunityContactRole"][0]["Id"].(string) + `"}}],"totalSize":1},` +
			`"attributes":{"type":"Opportunity","url":"` + u + `Opportunity/` + f.oppAcme + `"}},` +
			`{"Account":null,"Amount":null,"Id":"` + f.oppNone + `","Microsoft_Solutions__r":null,"Name":"no_account deal","OpportunityContactRoles":null,` +
			`"attributes":{"type":"Opportunity","url":"` + u + `Opportunity/` + f.oppNone + `"}}],"totalSize":2}`
		if string(got) != want {
			t.Errorf("%T shape mismatch\n got %s\nwant %s", st, got, want)
		}
	}
}

func TestChildSubqueryScansOnce(t *testing.T) {
	f := newFixture()
	for i := uint64(10); i < 200; i++ {
		f.store.add("Opportunity", i, map[string]any{"Name": "bulk", "StageName": "Prospecting", "CloseDate": "2026-01-01"})
	}
	recs, _ := run(t, f.store, f.schema, "SELECT Id, (SELECT Id FROM OpportunityContactRoles) FROM Opportunity", ExecOptions{})
	if len(recs) != 193 || f.store.scans["OpportunityContactRole"] != 1 {
		t.Errorf("got %d records, %d scans of the child object; want 193 and 1", len(recs), f.store.scans["OpportunityContactRole"])
	}
	f.store.scans = map[string]int{}
	run(t, indexedStore{f.store}, f.schema, "SELECT Id, (SELECT Id FROM OpportunityContactRoles) FROM Opportunity WHERE Id = '"+f.oppAcme+"'", ExecOptions{})
	if len(f.store.scans) != 0 {
		t.Errorf("Id lookup with an indexed store scanned %v", f.store.scans)
	}
}

func TestAccountChildren(t *testing.T) {
	f := newFixture()
	recs, _ := run(t, f.store, f.schema, "SELECT Name, (SELECT Name FROM Opportunities ORDER BY Name DESC), (SELECT LastName FROM Contacts), (SELECT Name FROM ChildAccounts) FROM Account ORDER BY Name", ExecOptions{})
	acme := recs[0]
	opps := acme["Opportunities"].(map[string]any)
	if opps["totalSize"] != 1 || names(opps["records"].([]map[string]any))[0] != "Acme Deal" {
		t.Errorf("Acme opportunities = %v", opps)
	}
	kids := acme["ChildAccounts"].(map[string]any)["records"].([]map[string]any)
	if len(kids) != 1 || kids[0]["Name"] != "Fabrikam" {
		t.Errorf("ChildAccounts = %v", kids)
	}
	if recs[1]["ChildAccounts"] != nil {
		t.Errorf("Fabrikam ChildAccounts = %v, want null", recs[1]["ChildAccounts"])
	}
	// queryAll also returns deleted children.
	recs, _ = run(t, f.store, f.schema, "SELECT Name, (SELECT Name FROM Opportunities ORDER BY Name) FROM Account WHERE Name = 'Acme'", ExecOptions{IncludeDeleted: true})
	if got := names(recs[0]["Opportunities"].(map[string]any)["records"].([]map[string]any)); !reflect.DeepEqual(got, []string{"Acme Deal", "Deleted deal"}) {
		t.Errorf("queryAll children = %v", got)
	}
	// Nested subquery: accounts → opportunities → contact roles.
	recs, _ = run(t, f.store, f.schema, "SELECT Name, (SELECT Name, (SELECT Role FROM OpportunityContactRoles ORDER BY Role) FROM Opportunities) FROM Account WHERE Name = 'Acme'", ExecOptions{})
	opp := recs[0]["Opportunities"].(map[string]any)["records"].([]map[string]any)[0]
	roles := opp["OpportunityContactRoles"].(map[string]any)["records"].([]map[string]any)
	if len(roles) != 2 || roles[0]["Role"] != "Decision Maker" || roles[1]["Role"] != "Evaluator" {
		t.Errorf("nested roles = %v", roles)
	}
}

func TestParseErrors(t *testing.T) {
	s := sfschema.Default(sfschema.Options{})
	cases := []struct {
		q, code, msg string
	}{
		{"SELECT Foo FROM Opportunity", CodeInvalidField, "No such column 'Foo' on entity 'Opportunity'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names."},
		{"SELECT Id FROM Opportunity WHERE Referral_Identifier = 'x'", CodeInvalidField, "No such column 'Referral_Identifier' on entity 'Opportunity'"},
		{"SELECT Account.Foo FROM Opportunity", CodeInvalidField, "No such column 'Foo' on entity 'Account'"},
		{"SELECT Acount.Name FROM Opportunity", CodeInvalidField, "Didn't understand relationship 'Acount' in field path"},
		{"SELECT AccountId.Name FROM Opportunity", CodeInvalidField, "Didn't understand relationship 'AccountId'"},
		{"SELECT Id FROM Opportunity ORDER BY Foo__c", CodeInvalidField, "No such column 'Foo__c'"},
		{"SELECT Id FROM Opp", CodeInvalidType, "sObject type 'Opp' is not supported."},
		{"SELECT Id, (SELECT Id FROM Contacts) FROM Opportunity", CodeInvalidType, "Didn't understand relationship 'Contacts' in FROM part of query call"},
		{"SELECT Id, (SELECT Foo FROM OpportunityContactRoles) FROM Opportunity", CodeInvalidField, "No such column 'Foo' on entity 'OpportunityContactRole'"},
		{"SELECT Id FROM Opportunity WHERE SystemModstamp > 2026-01-01", CodeInvalidFilterOperator, "value of filter criterion for field 'SystemModstamp' must be of type dateTime and should not be enclosed in quotes"},
		{"SELECT Id FROM Opportunity WHERE CloseDate > 2026-01-01T00:00:00Z", CodeInvalidFilterOperator, "field 'CloseDate' must be of type date"},
		{"SELECT Id FROM Opportunity WHERE CloseDate > '2026-01-01'", CodeInvalidFilterOperator, "must be of type date and should not be enclosed in quotes"},
		{"SELECT Id FROM Opportunity WHERE Name = 5", CodeInvalidFilterOperator, "value of filter criterion for field 'Name' must be of type string and should be enclosed in quotes"},
		{"SELECT Id FROM Opportunity WHERE Amount = '5'", CodeInvalidFilterOperator, "field 'Amount' must be of type double and should not be enclosed in quotes"},
		{"SELECT Id FROM Opportunity WHERE IsWon = 'true'", CodeInvalidFilterOperator, "must be of type boolean"},
		{"SELECT Id FROM Opportunity WHERE IsWon > true", CodeInvalidFilterOperator, "invalid operator on boolean field"},
		{"SELECT Id FROM Opportunity WHERE Amount LIKE '5%'", CodeInvalidFilterOperator, "invalid operator on double field"},
		{"SELECT Id FROM Opportunity WHERE Id = 'abc'", CodeInvalidFilterOperator, "invalid ID field: abc"},
		{"SELECT Id FROM Opportunity WHERE AccountId IN ('001000000000000BBB')", CodeInvalidFilterOperator, "invalid ID field"},
		{"SELECT Id FROM Opportunity WHERE Amount > null", CodeInvalidFilterOperator, "invalid operator for null"},
		{"SELECT Id FROM Opportunity WHERE Description = 'x'", CodeInvalidField, "field 'Description' can not be filtered in a query call"},
		{"SELECT Id FROM Opportunity ORDER BY Audit__c", CodeInvalidField, "field 'Audit__c' can not be sorted in a query call"},
		{"SELECT Id FROM Opportunity WHERE Amount > 1 AND Amount < 5 OR Name = 'x'", CodeMalformedQuery, "unexpected token: 'OR'"},
		{"SELECT Id FROM Opportunity WHERE Amount > 1 OR Amount < 5 AND Name = 'x'", CodeMalformedQuery, "unexpected token: 'AND'"},
		{"SELECT Id FROM Opportunity WHERE", CodeMalformedQuery, "unexpected token: <EOF>"},
		{"SELECT FROM Opportunity", CodeMalformedQuery, "unexpected token: 'FROM'"},
		{"SELECT Id Opportunity", CodeMalformedQuery, "unexpected token: 'Opportunity'"},
		{"SELECT Id, Name, id FROM Opportunity", CodeMalformedQuery, "duplicate field selected: Id"},
		{"SELECT Id FROM Opportunity WHERE Name = 'unterminated", CodeMalformedQuery, "unterminated string literal"},
		{"SELECT Id FROM Opportunity WHERE Name = 'bad \\q escape'", CodeMalformedQuery, "Illegal character sequence '\\q'"},
		{"SELECT Id FROM Opportunity WHERE Name = :name", CodeMalformedQuery, "unexpected token: ':'"},
		{"SELECT Id FROM Opportunity WHERE Amount = 1e5", CodeMalformedQuery, "unexpected token: '1e5'"},
		{"SELECT Id FROM Opportunity WHERE SystemModstamp > 2026-01-01T00:00:00", CodeMalformedQuery, "invalid dateTime literal"},
		{"SELECT Id FROM Opportunity WHERE CloseDate > 2026-02-30", CodeMalformedQuery, "invalid date literal"},
		{"SELECT Id FROM Opportunity LIMIT -1", CodeMalformedQuery, "LIMIT must be a non-negative integer"},
		{"SELECT Id FROM Opportunity LIMIT 1.5", CodeMalformedQuery, "LIMIT must be a non-negative integer"},
		{"SELECT Id FROM Opportunity OFFSET 2001", CodeNumberOutsideRange, "Maximum SOQL offset allowed is 2000"},
		{"SELECT Id FROM Opportunity LIMIT 5 LIMIT 5", CodeMalformedQuery, "unexpected token: 'LIMIT'"},
		{"SELECT Id FROM Opportunity OFFSET 5 LIMIT 5", CodeMalformedQuery, "unexpected token: 'LIMIT'"},
		{"SELECT COUNT(Id) FROM Opportunity", CodeMalformedQuery, "COUNT() (aggregate, date and formatting functions, FIELDS()) is not supported by the cosell Salesforce emulator"},
		{"SELECT FIELDS(ALL) FROM Opportunity", CodeMalformedQuery, "FIELDS() (aggregate"},
		{"SELECT COUNT(), Id FROM Opportunity", CodeMalformedQuery, "COUNT() must be the only element"},
		{"SELECT Id, COUNT() FROM Opportunity", CodeMalformedQuery, "COUNT() must be the only element"},
		{"SELECT COUNT() FROM Opportunity ORDER BY Name", CodeMalformedQuery, "ORDER BY cannot be used with COUNT()"},
		{"SELECT StageName FROM Opportunity GROUP BY StageName", CodeMalformedQuery, "GROUP BY and HAVING is not supported"},
		{"SELECT Id FROM Opportunity WITH SECURITY_ENFORCED", CodeMalformedQuery, "WITH clause is not supported"},
		{"SELECT Id FROM Opportunity FOR UPDATE", CodeMalformedQuery, "FOR UPDATE"},
		{"SELECT Id FROM Opportunity USING SCOPE mine", CodeMalformedQuery, "USING SCOPE is not supported"},
		{"SELECT TYPEOF Owner WHEN User THEN Name END FROM Opportunity", CodeMalformedQuery, "TYPEOF is not supported"},
		{"SELECT Id FROM Opportunity WHERE AccountId IN (SELECT Id FROM Account)", CodeMalformedQuery, "semi-join"},
		{"SELECT Id FROM Opportunity WHERE CALENDAR_YEAR(CloseDate) = 2026", CodeMalformedQuery, "CALENDAR_YEAR() in WHERE is not supported"},
		{"SELECT Id FROM Opportunity WHERE CloseDate = THIS_MONTH", CodeMalformedQuery, "the date literal THIS_MONTH is not supported"},
		{"SELECT Id FROM Opportunity WHERE CloseDate = LAST_N_DAYS", CodeMalformedQuery, "unexpected token: <EOF>"},
		{"SELECT Id FROM Opportunity WHERE CloseDate = NOTADATE", CodeMalformedQuery, "unexpected token: 'NOTADATE'"},
		{"SELECT Id FROM Opportunity WHERE Name INCLUDES ('a')", CodeMalformedQuery, "INCLUDES and EXCLUDES is not supported"},
		{"SELECT Id, (SELECT Id FROM OpportunityContactRoles OFFSET 1) FROM Opportunity", CodeMalformedQuery, "OFFSET in a subquery is not supported"},
		{"SELECT Id, (SELECT COUNT() FROM OpportunityContactRoles) FROM Opportunity", CodeMalformedQuery, "COUNT() must be the only element"},
		{"SELECT Id, (SELECT Id FROM OpportunityContactRoles), (SELECT Id FROM opportunitycontactroles) FROM Opportunity", CodeMalformedQuery, "duplicate field selected: OpportunityContactRoles"},
		{"SELECT Id FROM Opportunity WHERE Name = 'a' extra", CodeMalformedQuery, "unexpected token: 'extra'"},
		{"SELECT Id FROM Opportunity ORDER BY Name NULLS", CodeMalformedQuery, "unexpected token: <EOF>"},
		{"SELECT Id FROM Opportunity WHERE (Name = 'a'", CodeMalformedQuery, "unexpected token: <EOF>"},
		{"SELECT Id FROM Opportunity WHERE Name = 'a' #", CodeMalformedQuery, "unexpected token: '#'"},
		{"DELETE FROM Opportunity", CodeMalformedQuery, "unexpected token: 'DELETE'"},
		{"", CodeMalformedQuery, "unexpected token: <EOF>"},
		{"SELECT A.B.C.D.E.F.G FROM Opportunity", CodeMalformedQuery, "more than 5 levels"},
	}
	for _, c := range cases {
		_, err := Parse(c.q, s)
		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("Parse(%q) = %v, want *Error %s", c.q, err, c.code)
			continue
		}
		if e.Code != c.code || !strings.Contains(e.Message, c.msg) {
			t.Errorf("Parse(%q)\n got %s: %q\nwant %s containing %q", c.q, e.Code, e.Message, c.code, c.msg)
		}
	}
}

func TestErrorPosition(t *testing.T) {
	s := sfschema.Default(sfschema.Options{})
	_, err := Parse("SELECT Id,\n  Foo FROM Opportunity", s)
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v", err)
	}
	want := "\n  Foo FROM Opportunity\n  ^\nERROR at Row:2:Column:3\nNo such column 'Foo'"
	if !strings.HasPrefix(e.Message, want) {
		t.Errorf("message = %q, want prefix %q", e.Message, want)
	}
	if !strings.HasPrefix(e.Error(), "INVALID_FIELD: ") {
		t.Errorf("Error() = %q", e.Error())
	}
}

func TestCanonicalNames(t *testing.T) {
	f := newFixture()
	q, err := Parse("sElEcT ID, referral_identifier__C, ACCOUNT.billingcountry FrOm OPPORTUNITY wHeRe name like 'acme%'", f.schema)
	if err != nil {
		t.Fatal(err)
	}
	if q.Object() != "Opportunity" || q.IsCount() {
		t.Errorf("Object() = %q", q.Object())
	}
	recs, _, err := q.Execute(f.store, ExecOptions{})
	if err != nil || len(recs) != 1 {
		t.Fatalf("recs = %v, %v", recs, err)
	}
	r := recs[0]
	acct, _ := r["Account"].(map[string]any)
	if r["Id"] != f.oppAcme || r["Referral_Identifier__c"] != "ref-1" || acct["BillingCountry"] != "US" {
		t.Errorf("record = %v", r)
	}
	if got := r["attributes"].(map[string]any)["url"]; got != "/services/data/v60.0/sobjects/Opportunity/"+f.oppAcme {
		t.Errorf("default url = %v", got)
	}
}

func TestLikeMatch(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"abc", "ABC", true},
		{"a%", "a", true},
		{"%a%b%", "xxaYYbzz", true},
		{"%a%b", "xxaYYbzz", false},
		{"a_c", "abc", true},
		{"a_c", "ac", false},
		{"%", "", true},
		{"_", "", false},
		{"%%x", "abx", true},
		{"ü%", "Über", true},
		{"a\x00%b", "a%b", true},
		{"a\x00%b", "axb", false},
	}
	for _, c := range cases {
		if got := likeMatch(compileLike(c.pattern), c.s); got != c.want {
			t.Errorf("likeMatch(%q, %q) = %v", c.pattern, c.s, got)
		}
	}
}

func FuzzParse(f *testing.F) {
	s := sfschema.Default(sfschema.Options{})
	fx := newFixture()
	for _, seed := range []string{
		"SELECT Id, Name, Account.BillingCountry, (SELECT Id FROM OpportunityContactRoles WHERE IsPrimary = true LIMIT 1) FROM Opportunity WHERE SystemModstamp > 2026-01-01T00:00:00Z AND (Name LIKE 'a\\%%' OR Amount IN (1, 2.5)) ORDER BY Name DESC NULLS LAST LIMIT 10 OFFSET 5",
		"SELECT COUNT() FROM Account WHERE Name != null",
		"SELECT Id FROM Opportunity WHERE CloseDate = LAST_N_DAYS:7 AND NOT Id IN ('006000000000000')",
		"select id from opportunity o where o.name = 'x\\'y'",
		"SELECT Id FROM Opportunity WHERE Name = '\\",
		"SELECT (SELECT (SELECT",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, q string) {
		pq, err := Parse(q, s)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code == "" || e.Message == "" {
				t.Fatalf("Parse(%q) returned %T %v", q, err, err)
			}
			return
		}
		if _, _, err := pq.Execute(fx.store, ExecOptions{Now: fixedNow}); err != nil {
			t.Fatalf("Execute(%q): %v", q, err)
		}
	})
}

func BenchmarkPollingQuery(b *testing.B) {
	f := newFixture()
	for i := uint64(10); i < 10010; i++ {
		f.store.add("Opportunity", i, map[string]any{
			"Name": "bulk", "StageName": "Prospecting", "CloseDate": "2026-01-01", "AccountId": f.acme,
			"SystemModstamp": "2026-01-0" + string(rune('1'+i%9)) + "T00:00:00.000+0000",
		})
	}
	q, err := Parse("SELECT Id, Name, StageName, Amount, Account.BillingCountry, Referral_Identifier__c, SystemModstamp FROM Opportunity WHERE SystemModstamp > 2026-01-08T00:00:00Z ORDER BY SystemModstamp, Id", f.schema)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := q.Execute(f.store, ExecOptions{Now: fixedNow}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestCompareUpperMatchesToUpper(t *testing.T) {
	words := []string{"", "a", "A", "ab", "AB", "Contoso", "CONTOSO", "contoso ltd", "Straße", "STRASSE", "ǆemal", "Ǆ", "ß",
		"İstanbul", "ıi", "Ωmega", "\xff", "a\xffb", "\uFFFD", "zz", "Z", "日本", "日本語", "é", "É", "e\u0301"}
	sign := func(n int) int {
		switch {
		case n < 0:
			return -1
		case n > 0:
			return 1
		}
		return 0
	}
	for _, s := range words {
		for _, u := range words {
			upper := strings.ToUpper(u)
			if got, want := sign(compareUpper(s, upper)), strings.Compare(strings.ToUpper(s), upper); got != want {
				t.Errorf("compareUpper(%q, %q) = %d, want %d", s, upper, got, want)
			}
		}
	}
}

func BenchmarkCompareUpper(b *testing.B) {
	for b.Loop() {
		compareUpper("Bench Customer 0042 GmbH", "BENCH CUSTOMER 0042 GMBH")
	}
}
