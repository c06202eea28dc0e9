package mapping

import (
	"encoding/json"
	"testing"
)

func TestSyncFieldsOfTheDefault(t *testing.T) {
	got := mustDefault(t).SyncFields()
	want := []string{"Amount", "CloseDate", "CurrencyIsoCode", "Decline_Reason__c", "Description",
		"Microsoft_CRM_Identifier__c", "Microsoft_Solutions__r", "Name", "Products__c", "StageName"}
	b1, _ := json.Marshal(got)
	b2, _ := json.Marshal(want)
	if string(b1) != string(b2) {
		t.Errorf("SyncFields = %s\nwant       %s", b1, b2)
	}
}

func TestValuesOfBothSidesCompare(t *testing.T) {
	cfg := mustDefault(t)
	ref := current(t, "Active", "Accepted", nil)
	pc := cfg.PCValues(ref)
	sf := cfg.SFValues(opportunity(t, map[string]any{"StageName": "Qualification"}))
	for _, f := range []string{"Amount", "CloseDate", "CurrencyIsoCode", "Description", "StageName"} {
		if Canon(pc[f]) != Canon(sf[f]) {
			t.Errorf("%s: referral %s, opportunity %s", f, Canon(pc[f]), Canon(sf[f]))
		}
	}
	if _, ok := pc["Name"]; ok {
		t.Error("the referral speaks for Name, which inbound writes on create only")
	}
}

func TestApplyPatchPredictsTheReferral(t *testing.T) {
	cfg := mustDefault(t)
	ref := current(t, "New", "Pending", nil)
	plan := cfg.Patch(opportunity(t, map[string]any{"StageName": "Declined", "Decline_Reason__c": "No capacity", "Products__c": "SOL-7"}), ref,
		map[string]bool{"StageName": true, "Decline_Reason__c": true, "Products__c": true})
	after := ApplyPatch(ref, plan.Ops)
	v := cfg.PCValues(after)
	if v["StageName"] != "Declined" || v["Decline_Reason__c"] != "No capacity" {
		t.Errorf("predicted values = %v (ops %s)", v, plan.OpsJSON())
	}
	sols, _ := after.Value("details.requirements.solutions").([]any)
	if len(sols) != 4 {
		t.Errorf("solutions after append = %v", sols)
	}
	if ref.Text("status") != "New" {
		t.Error("ApplyPatch changed its input")
	}
}

func TestCanon(t *testing.T) {
	for _, tc := range []struct {
		a, b any
		eq   bool
	}{
		{json.Number("100.0"), json.Number("100"), true},
		{"", nil, true},
		{"a", "b", false},
		{map[string]any{"b": json.Number("1.0"), "a": "x"}, map[string]any{"a": "x", "b": 1.0}, true},
	} {
		if (Canon(tc.a) == Canon(tc.b)) != tc.eq {
			t.Errorf("Canon(%v)=%s Canon(%v)=%s", tc.a, Canon(tc.a), tc.b, Canon(tc.b))
		}
	}
	if v := Uncanon(Canon(json.Number("1.50"))); v != json.Number("1.5") {
		t.Errorf("Uncanon = %#v", v)
	}
}
