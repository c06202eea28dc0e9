package accounts

import (
	"encoding/json"
	"testing"
)

func TestKey(t *testing.T) {
	a := Key(Customer{Name: "  Contoso   Ltd ", Country: "us", PostalCode: " 98052 "})
	b := Key(Customer{Name: "contoso ltd", Country: "US", PostalCode: "98052", City: "Elsewhere"})
	if a != b || a != "contoso ltd|us|98052" {
		t.Fatalf("keys %q and %q, want equal", a, b)
	}
	if Key(Customer{Name: "Contoso", Country: "US"}) == Key(Customer{Name: "Contoso", Country: "GB"}) {
		t.Fatal("different countries share a key")
	}
	if Key(Customer{Country: "US"}) != "" {
		t.Fatal("nameless customer has a key")
	}
}

func TestMatchConditionEscapes(t *testing.T) {
	got := matchCondition(Customer{Name: `A'B\C`, Country: "US"}.normalized())
	want := `Name = 'A\'B\\C' AND BillingCountry = 'US'`
	if got != want {
		t.Fatalf("condition = %s, want %s", got, want)
	}
}

func TestAccountRecordKeepsMatchedFields(t *testing.T) {
	rec := accountRecord(Customer{Name: "N", Country: "US", Fields: map[string]json.RawMessage{
		"Name": json.RawMessage(`"Other"`), "Industry": json.RawMessage(`"Retail"`), "Id": json.RawMessage(`"x"`), "bad key": json.RawMessage(`1`),
	}})
	if rec["Name"] != "N" || rec["BillingCountry"] != "US" || string(rec["Industry"].(json.RawMessage)) != `"Retail"` {
		t.Fatalf("record = %v", rec)
	}
	if _, ok := rec["Id"]; ok {
		t.Fatal("Id passed through")
	}
	if _, ok := rec["bad key"]; ok {
		t.Fatal("invalid field name passed through")
	}
}
