package sfschema

import (
	"strings"
	"testing"
	"time"
)

func TestChecksumMatchesRealIDs(t *testing.T) {
	// Ids from Salesforce's own getUpdated documentation sample.
	for _, id := range []string{"006D000000INjVeIAL", "006D000000INjVjIAL"} {
		if got := id[:15] + checksum(id[:15]); got != id {
			t.Errorf("checksum(%s) = %s, want %s", id[:15], got, id)
		}
		if !ValidID(id) || !ValidID(id[:15]) {
			t.Errorf("ValidID(%s) = false", id)
		}
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for seq := uint64(0); seq < 5000; seq += 7 {
		id := NewID("006", seq)
		if len(id) != 18 || !strings.HasPrefix(id, "006") || !ValidID(id) {
			t.Fatalf("NewID(006,%d) = %q: not a valid 18-char id", seq, id)
		}
		if seen[strings.ToLower(id)] {
			t.Fatalf("NewID(006,%d) = %q collides case-insensitively", seq, id)
		}
		seen[strings.ToLower(id)] = true
	}
	if NewID("001", 1) == NewID("001", 2) {
		t.Fatal("distinct sequence numbers gave the same id")
	}
}

func TestValidIDRejects(t *testing.T) {
	for _, s := range []string{"", "006", "006D000000INjVeAAA", "006D000000INjV!", "006D000000INjVeIA", "006D000000INjVeIAL1"} {
		if ValidID(s) {
			t.Errorf("ValidID(%q) = true", s)
		}
	}
	if id, ok := CanonicalID("006D000000INjVeial"); !ok || id != "006D000000INjVeIAL" {
		t.Errorf("CanonicalID with lower-case suffix = %q, %v", id, ok)
	}
}

func TestDateTimes(t *testing.T) {
	want := time.Date(2026, 1, 2, 13, 4, 5, 120_000_000, time.UTC)
	for _, in := range []string{
		"2026-01-02T13:04:05.12Z", "2026-01-02T13:04:05.120+0000", "2026-01-02T14:04:05.120+01:00",
		"2026-01-02T08:04:05.120-05", "2026-01-02T13:04:05.12",
	} {
		got, err := ParseDateTime(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseDateTime(%q) = %v, %v", in, got, err)
		}
	}
	if got := FormatDateTime(want.In(time.FixedZone("x", 3600))); got != "2026-01-02T13:04:05.120+0000" {
		t.Errorf("FormatDateTime = %q", got)
	}
	for _, bad := range []string{"2026-01-02", "02/01/2026", "2026-13-01T00:00:00Z", ""} {
		if _, err := ParseDateTime(bad); err == nil {
			t.Errorf("ParseDateTime(%q) accepted", bad)
		}
	}
	d, err := ParseDate("2026-01-02T23:30:00-02:00")
	if err != nil || FormatDate(d) != "2026-01-03" {
		t.Errorf("ParseDate(datetime) = %v, %v", d, err)
	}
	if _, err := ParseDate("2026-02-30"); err == nil {
		t.Error("ParseDate accepted Feb 30")
	}
}

func TestDefaultSchema(t *testing.T) {
	s := Default(Options{Stages: []string{"A", "B"}})
	opp := s.Object("opportunity")
	if opp == nil || opp.Name != "Opportunity" || s.ObjectByPrefix("006") != opp {
		t.Fatal("Opportunity lookup by name/prefix failed")
	}
	if f := opp.Field("referral_identifier__c"); f == nil || !f.ExternalID || !f.Unique || !f.Custom {
		t.Errorf("Referral_Identifier__c = %+v", f)
	}
	if f := opp.FieldByRelationship("account"); f == nil || f.Name != "AccountId" {
		t.Errorf("FieldByRelationship(account) = %+v", f)
	}
	if st := opp.Field("StageName"); len(st.Picklist) != 2 || !st.HasPicklistValue("B") || st.HasPicklistValue("b") {
		t.Errorf("StageName picklist = %+v", st.Picklist)
	}
	var req []string
	for _, f := range opp.Fields {
		if f.Required() {
			req = append(req, f.Name)
		}
	}
	if strings.Join(req, ",") != "Name,StageName,CloseDate" {
		t.Errorf("required Opportunity fields = %v", req)
	}
	if c := opp.Child("microsoft_solutions__r"); c == nil || c.ChildSObject != ObjMicrosoftSolution || s.Object(c.ChildSObject).Field(c.Field) == nil {
		t.Errorf("solutions child relationship = %+v", c)
	}
	if f := opp.Field("Audit__c"); f.Filterable || f.Length != 131072 {
		t.Errorf("Audit__c = %+v", f)
	}
	// Every child relationship points at a real lookup back to its parent,
	// and every lookup targets a modelled object.
	for _, o := range s.Objects() {
		for _, c := range o.ChildRelationships {
			child := s.Object(c.ChildSObject)
			if child == nil {
				t.Fatalf("%s.%s: unknown child %s", o.Name, c.RelationshipName, c.ChildSObject)
			}
			f := child.Field(c.Field)
			if f == nil || f.Type != TypeReference || f.ReferenceTo[0] != o.Name {
				t.Errorf("%s.%s: bad child field %s", o.Name, c.RelationshipName, c.Field)
			}
		}
		for _, f := range o.Fields {
			if f.Type == TypeReference && s.Object(f.ReferenceTo[0]) == nil {
				t.Errorf("%s.%s references unknown %v", o.Name, f.Name, f.ReferenceTo)
			}
		}
		if o.Field("Id") == nil || o.Field("SystemModstamp") == nil {
			t.Errorf("%s lacks system fields", o.Name)
		}
	}
	if code, ok := HelpCode(DefaultHelpValues()[2]); !ok || code != "ProofOfConceptOrDemo" {
		t.Errorf("HelpCode = %q, %v", code, ok)
	}
}

func TestDefaultOptions(t *testing.T) {
	s := Default(Options{Currencies: []string{"EUR", "USD"}, HelpValues: []string{"Help me"}})
	cur := s.Object("Account").Field("CurrencyIsoCode")
	if !cur.RestrictedPicklist || cur.DefaultValue != "EUR" || !cur.Picklist[0].DefaultValue || cur.Picklist[1].DefaultValue {
		t.Errorf("CurrencyIsoCode = %+v", cur)
	}
	help := s.Object("Opportunity").Field("How_can_Microsoft_help__c")
	if len(help.Picklist) != 1 || !help.HasPicklistValue("Help me") || !help.RestrictedPicklist {
		t.Errorf("How_can_Microsoft_help__c = %+v", help.Picklist)
	}
	if st := s.Object("Opportunity").Field("StageName"); len(st.Picklist) != len(DefaultStages()) {
		t.Errorf("default stages = %d", len(st.Picklist))
	}
	if u := s.Object("User"); u.Createable || u.Field("IsDeleted") != nil || u.Field("Username").Createable {
		t.Errorf("User must be read-only without IsDeleted: %+v", u)
	}
	// Each call builds an independent schema: changing one leaves others intact.
	s.Object("Opportunity").Field("Name").Length = 1
	if Default(Options{}).Object("Opportunity").Field("Name").Length != 120 {
		t.Error("schemas share field values")
	}
	if got := len(s.Objects()); got != 6 {
		t.Errorf("Objects() = %d, want 6", got)
	}
}
