package mapping

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// inbound is a referral as a Microsoft seller sends it.
const inbound = `{
  "id": "5dd4dc44-2c1a-4e16-8478-f783ebe815de",
  "engagementId": "65921e35-4f28-472f-9ae4-58ddd6ae6270",
  "organizationId": "b97870f2-0000-0000-0000-000000000001",
  "name": "Contoso Retail cloud migration",
  "status": "New", "substatus": "Pending", "statusReason": null,
  "updatedDateTime": "2026-03-07T09:18:01.6076542Z",
  "externalReferenceId": null,
  "customerProfile": {
    "name": "Contoso Retail Inc",
    "address": {"addressLine1": "One Microsoft Way", "city": "Redmond", "state": null, "region": "WA", "postalCode": "98052", "country": "us"},
    "team": [{"firstName": "Sue", "email": "sue@contoso.example"}]
  },
  "details": {"notes": "Move retail workloads to Azure.", "dealValue": 30000.50, "currency": "USD", "closingDateTime": "2026-05-24T18:30:00Z"},
  "target": [{"type": "SolutionProfile", "id": "SOL-6115380-IPC"}],
  "trackingInfo": {"microsoftMsxId": null}
}`

func mustDefault(t *testing.T) *Config {
	t.Helper()
	cfg, err := Default()
	if err != nil {
		t.Fatalf("default mapping: %v", err)
	}
	return cfg
}

// referral parses inbound with the changes applied (a JSON object merged
// at the top level and, for "details"/"customerProfile", one level down).
func referral(t *testing.T, changes map[string]any) Referral {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(inbound), &doc); err != nil {
		t.Fatal(err)
	}
	for k, v := range changes {
		if sub, ok := v.(map[string]any); ok {
			if cur, ok := doc[k].(map[string]any); ok {
				for sk, sv := range sub {
					cur[sk] = sv
				}
				continue
			}
		}
		doc[k] = v
	}
	b, _ := json.Marshal(doc)
	r, err := ParseReferral(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDefaultCreateMapsEveryField(t *testing.T) {
	cfg := mustDefault(t)
	p, err := cfg.Project(referral(t, nil), Create)
	if err != nil {
		t.Fatalf("project: %v", err)
	}
	want := map[string]string{
		"Name":                        `"Contoso Retail cloud migration"`,
		"Amount":                      `30000.5`,
		"CurrencyIsoCode":             `"USD"`,
		"CloseDate":                   `"2026-05-24"`,
		"Description":                 `"Move retail workloads to Azure."`,
		"StageName":                   `"On Hold"`,
		"Referral_Link__c":            `"https://partner.microsoft.com/dashboard/referrals/v2/opportunities/5dd4dc44-2c1a-4e16-8478-f783ebe815de"`,
		"Sync_with_Partner_Center__c": `true`,
	}
	got := map[string]string{}
	for k, v := range p.Fields {
		b, _ := json.Marshal(v)
		got[k] = string(b)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %s, want %s", k, got[k], w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected field %s = %s", k, got[k])
		}
	}
	if cfg.ExternalIDField != "Referral_Identifier__c" || cfg.Object != "Opportunity" {
		t.Errorf("external id %s on %s", cfg.ExternalIDField, cfg.Object)
	}
	wantAcct := Account{Name: "Contoso Retail Inc", Country: "US", PostalCode: "98052", City: "Redmond", State: "WA", Street: "One Microsoft Way"}
	if p.Account == nil || *p.Account != wantAcct {
		t.Errorf("account = %+v, want %+v", p.Account, wantAcct)
	}
}

func TestDefaultUpdateLeavesCreateOnlyFields(t *testing.T) {
	cfg := mustDefault(t)
	p, err := cfg.Project(referral(t, nil), Update)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Name", "Referral_Link__c"} {
		if _, ok := p.Fields[f]; ok {
			t.Errorf("update writes %s", f)
		}
	}
	for _, f := range []string{"Amount", "CurrencyIsoCode", "CloseDate", "Description", "StageName"} {
		if _, ok := p.Fields[f]; !ok {
			t.Errorf("update does not write %s", f)
		}
	}
}

func TestStageMap(t *testing.T) {
	cfg := mustDefault(t)
	tests := []struct {
		status, substatus, reason string
		stage                     string
		declineReason             string
	}{
		{"New", "Pending", "", "On Hold", ""},
		{"New", "Received", "", "On Hold", ""},
		{"Active", "Accepted", "", "Qualification", ""},
		{"Closed", "Won", "", "Closed Won", ""},
		{"Closed", "Lost", "Budget cut", "Closed Lost", ""},
		{"Closed", "Declined", "Not our region", "Declined", "Not our region"},
		{"Closed", "Expired", "", "Closed Lost", ""},
	}
	for _, tc := range tests {
		t.Run(tc.status+"/"+tc.substatus, func(t *testing.T) {
			ch := map[string]any{"status": tc.status, "substatus": tc.substatus}
			if tc.reason != "" {
				ch["statusReason"] = tc.reason
			}
			p, err := cfg.Project(referral(t, ch), Update)
			if err != nil {
				t.Fatal(err)
			}
			if p.Fields["StageName"] != tc.stage {
				t.Errorf("StageName = %v, want %s", p.Fields["StageName"], tc.stage)
			}
			got, ok := p.Fields["Decline_Reason__c"]
			if tc.declineReason == "" && ok {
				t.Errorf("Decline_Reason__c set to %v", got)
			}
			if tc.declineReason != "" && got != tc.declineReason {
				t.Errorf("Decline_Reason__c = %v, want %s", got, tc.declineReason)
			}
		})
	}
}

func TestUnknownStageFails(t *testing.T) {
	cfg := mustDefault(t)
	_, err := cfg.Project(referral(t, map[string]any{"status": "Weird", "substatus": "Thing"}), Update)
	var pe *ProjectionError
	if !errors.As(err, &pe) || len(pe.Fields) != 1 || pe.Fields[0].Field != "StageName" {
		t.Fatalf("err = %v, want a StageName field error", err)
	}
	if !strings.Contains(err.Error(), `"Weird/Thing"`) {
		t.Errorf("error does not name the value: %v", err)
	}
}

func TestCloseDateFormats(t *testing.T) {
	cfg := mustDefault(t)
	tests := []struct{ in, want string }{
		{"2026-05-24T18:30:00Z", "2026-05-24"},
		{"2026-05-24T23:59:59.9999999Z", "2026-05-24"},
		{"2026-05-24T01:00:00+02:00", "2026-05-23"},
		{"2026-05-24T10:00:00", "2026-05-24"},
		{"2026-05-24", "2026-05-24"},
	}
	for _, tc := range tests {
		p, err := cfg.Project(referral(t, map[string]any{"details": map[string]any{"closingDateTime": tc.in}}), Create)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if p.Fields["CloseDate"] != tc.want {
			t.Errorf("%s: CloseDate = %v, want %s", tc.in, p.Fields["CloseDate"], tc.want)
		}
	}
	_, err := cfg.Project(referral(t, map[string]any{"details": map[string]any{"closingDateTime": "next week"}}), Create)
	if err == nil || !strings.Contains(err.Error(), "CloseDate") {
		t.Errorf("bad date: err = %v", err)
	}
}

func TestDateTimeTimezoneAndTypes(t *testing.T) {
	src := `version: 1
inbound:
  fields:
    - {to: Name, from: name}
    - {to: StageName, value: Prospecting}
    - {to: CloseDate, from: details.closingDateTime, as: date, timezone: Asia/Kolkata}
    - {to: Seen__c, from: updatedDateTime, as: datetime}
    - {to: Amount, from: details.dealValue, as: number}
    - {to: Flag__c, value: "true", as: bool}
    - {to: Count__c, value: 3, as: number}
`
	cfg, err := Parse("t.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.Project(referral(t, map[string]any{"details": map[string]any{"dealValue": "1200.00"}}), Create)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]any{
		"CloseDate": "2026-05-25", "Seen__c": "2026-03-07T09:18:01.607Z", "Amount": json.Number("1200"),
		"Flag__c": true, "Count__c": json.Number("3"), "StageName": "Prospecting",
	}
	for k, w := range checks {
		if p.Fields[k] != w {
			t.Errorf("%s = %#v, want %#v", k, p.Fields[k], w)
		}
	}
}

func TestMissingOptionalData(t *testing.T) {
	cfg := mustDefault(t)
	r := referral(t, map[string]any{
		"details":         map[string]any{"notes": nil, "dealValue": nil, "currency": ""},
		"customerProfile": nil,
		"trackingInfo":    nil,
	})
	p, err := cfg.Project(r, Update)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := p.Fields["Description"]; !ok || v != nil {
		t.Errorf("Description = %v (set %v), want cleared", v, ok)
	}
	for _, f := range []string{"Amount", "CurrencyIsoCode", "Microsoft_CRM_Identifier__c"} {
		if v, ok := p.Fields[f]; ok {
			t.Errorf("%s = %v, want left out", f, v)
		}
	}
	if p.Account != nil {
		t.Errorf("account = %+v, want none", p.Account)
	}
	_, err = cfg.Project(referral(t, map[string]any{"name": ""}), Create)
	if err == nil || !strings.Contains(err.Error(), "Name") {
		t.Errorf("missing name: err = %v", err)
	}
}

func TestMicrosoftCRMIdentifier(t *testing.T) {
	cfg := mustDefault(t)
	p, err := cfg.Project(referral(t, map[string]any{"trackingInfo": map[string]any{"microsoftMsxId": "7-ABCDEF1234"}}), Update)
	if err != nil {
		t.Fatal(err)
	}
	if p.Fields["Microsoft_CRM_Identifier__c"] != "7-ABCDEF1234" {
		t.Errorf("Microsoft_CRM_Identifier__c = %v", p.Fields["Microsoft_CRM_Identifier__c"])
	}
}

func TestNameTruncated(t *testing.T) {
	cfg := mustDefault(t)
	long := strings.Repeat("é", 130)
	p, err := cfg.Project(referral(t, map[string]any{"name": long}), Create)
	if err != nil {
		t.Fatal(err)
	}
	if n := len([]rune(p.Fields["Name"].(string))); n != 120 {
		t.Errorf("name has %d characters, want 120", n)
	}
}

func TestIgnored(t *testing.T) {
	cfg := mustDefault(t)
	tests := []struct {
		name    string
		changes map[string]any
		ignored bool
	}{
		{"partner referral", nil, false},
		{"microsoft's referral", map[string]any{"organizationId": "msft"}, true},
		{"invitation to microsoft", map[string]any{"target": []any{map[string]any{"type": "SolutionProfile", "id": "SOL-1"}, map[string]any{"type": "BusinessProfileLocation", "id": "msft"}}}, true},
		{"crm record named", map[string]any{"externalReferenceId": "006000000000001AAA"}, true},
		{"empty crm id", map[string]any{"externalReferenceId": ""}, false},
	}
	for _, tc := range tests {
		reason, ig := cfg.Ignored(referral(t, tc.changes))
		if ig != tc.ignored {
			t.Errorf("%s: ignored = %v (%s), want %v", tc.name, ig, reason, tc.ignored)
		}
		if ig && reason == "" {
			t.Errorf("%s: no reason", tc.name)
		}
	}
}

func TestHashAndWithin(t *testing.T) {
	cfg := mustDefault(t)
	create, _ := cfg.Project(referral(t, nil), Create)
	again, _ := cfg.Project(referral(t, map[string]any{"updatedDateTime": "2027-01-01T00:00:00Z"}), Create)
	if create.Hash() != again.Hash() {
		t.Error("unmapped change altered the hash")
	}
	update, _ := cfg.Project(referral(t, nil), Update)
	if !update.Within(create.JSON()) {
		t.Error("update with the same values is not within the create")
	}
	changed, _ := cfg.Project(referral(t, map[string]any{"details": map[string]any{"dealValue": 1}}), Update)
	if changed.Within(create.JSON()) || changed.Hash() == update.Hash() {
		t.Error("a changed deal value is not a change")
	}
	moved, _ := cfg.Project(referral(t, map[string]any{"customerProfile": map[string]any{"name": "Fabrikam"}}), Update)
	if moved.Within(create.JSON()) {
		t.Error("a changed account is not a change")
	}
	if update.Within(nil) {
		t.Error("within nothing")
	}
}

func TestDefaultYAMLIsTheEmbeddedDefault(t *testing.T) {
	cfg, err := Parse("copy.yaml", DefaultYAML())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Inbound.Fields) != len(mustDefault(t).Inbound.Fields) {
		t.Error("copy differs")
	}
}
