package opprecord

import (
	"strings"
	"testing"
	"time"
)

const row = `{"attributes":{"type":"Opportunity","url":"/services/data/v62.0/sobjects/Opportunity/0068d0000000001AAA"},
	"Id":"0068d0000000001AAA","Amount":100.0,"Probability":1.25E1,"IsDeleted":false,
	"SystemModstamp":"2026-11-24T07:57:16.680+0000","LastModifiedById":"0058d0000000002AAA",
	"Referral_Identifier__c":"ref-1",
	"Account":{"attributes":{"type":"Account","url":"/x"},"Name":"Contoso","BillingCountry":"DE"},
	"OpportunityContactRoles":{"totalSize":1,"done":true,"records":[{"attributes":{"type":"OpportunityContactRole"},
		"ContactId":"0038d0000000001AAA","Contact":{"attributes":{"type":"Contact"},"Email":"j@example.com"}}]},
	"Microsoft_Solutions__r":null}`

func TestDecodeStripsAttributesAndKeepsNumbers(t *testing.T) {
	r, err := Decode([]byte(row))
	if err != nil {
		t.Fatal(err)
	}
	js := string(r.JSON)
	if strings.Contains(js, "attributes") {
		t.Fatalf("attributes left in %s", js)
	}
	for _, want := range []string{`"Amount":100.0`, `"Probability":1.25E1`, `"BillingCountry":"DE"`, `"Email":"j@example.com"`, `"Microsoft_Solutions__r":null`} {
		if !strings.Contains(js, want) {
			t.Errorf("record %s lacks %s", js, want)
		}
	}
	want := time.Date(2026, 11, 24, 7, 57, 16, 680e6, time.UTC)
	if r.ID != "0068d0000000001AAA" || !r.SystemModstamp.Equal(want) || r.Deleted || r.ReferralID != "ref-1" || r.LastModifiedByID != "0058d0000000002AAA" {
		t.Fatalf("record = %+v", r)
	}
	if got := r.MsgID(); got != "opp:0068d0000000001AAA:2026-11-24T07:57:16.680+0000" {
		t.Fatalf("MsgID = %s", got)
	}
	r.Deleted = true
	if got := r.MsgID(); got != "opp-deleted:0068d0000000001AAA:2026-11-24T07:57:16.680+0000" {
		t.Fatalf("deleted MsgID = %s", got)
	}
}

func TestDecodeRefusesRowsWithoutIdOrModstamp(t *testing.T) {
	for _, in := range []string{`[]`, `{"SystemModstamp":"2026-11-24T07:57:16.680+0000"}`, `{"Id":"0068d0000000001AAA"}`, `{"Id":"0068d0000000001AAA","SystemModstamp":"yesterday"}`} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%s) succeeded", in)
		}
		if _, err := Peek([]byte(in)); err == nil {
			t.Errorf("Peek(%s) succeeded", in)
		}
	}
}

func TestSOQL(t *testing.T) {
	q := SOQL("Id = '0068d0000000001AAA'", "SystemModstamp, Id")
	for _, want := range []string{"SELECT Id, Name, Amount", "Account.BillingCountry", "FROM OpportunityContactRoles WHERE IsDeleted = false",
		"FROM Microsoft_Solutions__r", " FROM Opportunity WHERE Id = '0068d0000000001AAA' ORDER BY SystemModstamp, Id"} {
		if !strings.Contains(q, want) {
			t.Errorf("SOQL lacks %q: %s", want, q)
		}
	}
	if strings.Contains(SOQL("", ""), "WHERE Id") || strings.HasSuffix(SOQL("", ""), "ORDER BY ") {
		t.Fatal("empty where/order rendered")
	}
}

func TestSOQLDateTimeTruncatesToTheSecond(t *testing.T) {
	ts := time.Date(2026, 1, 2, 3, 4, 5, 999e6, time.FixedZone("CET", 3600))
	if got := SOQLDateTime(ts); got != "2026-01-02T02:04:05Z" {
		t.Fatalf("SOQLDateTime = %s", got)
	}
}

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{
		"0068d0000000001AAA": true, "0068d0000000001": true, "0068d000000000": false,
		"0068d0000000001AA'": false, "": false, "0068d0000000001AAA0": false,
	} {
		if ValidID(id) != want {
			t.Errorf("ValidID(%q) = %v", id, !want)
		}
	}
}

func TestPeekAgreesWithDecode(t *testing.T) {
	raw := []byte(`{"attributes":{"type":"Opportunity"},"Id":"0068d0000000001AAA","Name":"N","SystemModstamp":"2026-11-24T07:57:16.680+0000","Account":{"Name":"A"}}`)
	v, err := Peek(raw)
	if err != nil {
		t.Fatal(err)
	}
	r, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if v.ID != r.ID || !v.SystemModstamp.Equal(r.SystemModstamp) {
		t.Fatalf("Peek = %+v, Decode = %s %s", v, r.ID, r.SystemModstamp)
	}
}
