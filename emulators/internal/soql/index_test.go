package soql

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// uniqueStore adds a UniqueIndex over the unique and External ID fields and
// counts the scans it serves. A loose one also calls fn for every other
// live record, as the contract allows, so only the engine's own evaluation
// of WHERE can narrow its result.
type uniqueStore struct {
	*memStore
	loose bool
	uses  *int
}

func (s uniqueStore) ScanByUnique(object, field string, values []string, fn func(map[string]any) bool) bool {
	f := s.schema.Object(object).Field(field)
	if f == nil || !f.Unique && !f.ExternalID {
		return false
	}
	*s.uses++
	for _, r := range s.recs[object] {
		if r["IsDeleted"] == true {
			continue
		}
		v, _ := r[field].(string)
		match := v != "" && slices.Contains(values, strings.ToUpper(v))
		if (match || s.loose) && !fn(r) {
			break
		}
	}
	return true
}

// TestUniqueIndexMatchesScan runs filters on a unique External ID field
// against a store without indexes and against one with a UniqueIndex: the
// results must be equal, and only the shapes the index serves may use it.
func TestUniqueIndexMatchesScan(t *testing.T) {
	f := newFixture()
	// The deleted opportunity shares a live one's External ID, as a record
	// in the recycle bin may.
	f.store.byID[f.oppX]["Referral_Identifier__c"] = "REF-1"
	cases := []struct {
		q       string
		deleted bool // queryAll
		indexed bool
		want    []string
	}{
		{q: "SELECT Name FROM Opportunity WHERE Referral_Identifier__c = 'REF-1'", indexed: true, want: []string{"Acme Deal"}},
		{q: "SELECT Name FROM Opportunity WHERE Referral_Identifier__c IN ('ref-2', 'Ref-1', 'REF-1', 'ref-2', 'none')", indexed: true, want: []string{"Acme Deal", "Fabrikam 100% Deal"}},
		{q: "SELECT Name FROM Opportunity WHERE Referral_Identifier__c IN ('ref-1', 'ref-2') ORDER BY Name DESC LIMIT 1", indexed: true, want: []string{"Fabrikam 100% Deal"}},
		{q: "SELECT Name FROM Opportunity WHERE Referral_Identifier__c IN ('ref-1', 'ref-2') AND Amount > 100", indexed: true, want: []string{"Acme Deal"}},
		{q: "SELECT Name FROM Opportunity WHERE Amount < 100 AND Referral_Identifier__c IN ('ref-1', 'ref-2')", indexed: true, want: []string{"Fabrikam 100% Deal"}},
		// Name is not indexed; the second term is.
		{q: "SELECT Name FROM Opportunity WHERE Name = 'Acme Deal' AND Referral_Identifier__c = 'ref-2'", indexed: true, want: []string{}},
		{q: "SELECT Name FROM Opportunity WHERE Referral_Identifier__c = 'ref-1' AND (Amount = null OR Name LIKE 'acme%')", indexed: true, want: []string{"Acme Deal"}},
		{q: "SELECT COUNT() FROM Opportunity WHERE Referral_Identifier__c IN ('REF-1', 'REF-2')", indexed: true, want: []string{}},
		// Shapes the index must not serve.
		{q: "SELECT Name FROM Opportunity WHERE Referral_Identifier__c = 'ref-1' OR Name = 'no_account deal'", want: []string{"Acme Deal", "no_account deal"}},
		{q: "SELECT Name FROM Opportunity WHERE NOT Referral_Identifier__c = 'ref-1'", want: []string{"Fabrikam 100% Deal", "no_account deal"}},
		{q: "SELECT Name FROM Opportunity WHERE Referral_Identifier__c IN ('ref-1', null)", want: []string{"Acme Deal", "no_account deal"}},
		{q: "SELECT Name FROM Opportunity WHERE Referral_Identifier__c = ''", want: []string{"no_account deal"}},
		{q: "SELECT Name FROM Opportunity WHERE Referral_Identifier__c != 'ref-1'", want: []string{"Fabrikam 100% Deal", "no_account deal"}},
		{q: "SELECT Name FROM Opportunity WHERE Name = 'Acme Deal'", want: []string{"Acme Deal"}},
		{q: "SELECT Name FROM Opportunity WHERE Owner.Username = 'INT@example.com' AND Amount > 100", want: []string{"Acme Deal"}},
		{q: "SELECT Name FROM Opportunity WHERE Referral_Identifier__c = 'ref-1'", deleted: true, want: []string{"Acme Deal", "Deleted deal"}},
	}
	for _, c := range cases {
		opt := ExecOptions{IncludeDeleted: c.deleted}
		want, wantN := run(t, f.store, f.schema, c.q, opt)
		if got := names(want); c.want != nil && !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: scan gives %v, want %v", c.q, got, c.want)
		}
		for _, loose := range []bool{false, true} {
			uses := 0
			f.store.scans = map[string]int{}
			got, gotN := run(t, uniqueStore{memStore: f.store, loose: loose, uses: &uses}, f.schema, c.q, opt)
			if !reflect.DeepEqual(got, want) || gotN != wantN {
				t.Errorf("%s (loose %v): index gives %v (%d), scan %v (%d)", c.q, loose, names(got), gotN, names(want), wantN)
			}
			if indexed := uses > 0 && f.store.scans["Opportunity"] == 0; indexed != c.indexed {
				t.Errorf("%s: %d index scans, %d full scans; want indexed %v", c.q, uses, f.store.scans["Opportunity"], c.indexed)
			}
		}
	}
}
