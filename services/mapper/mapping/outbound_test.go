package mapping

import (
	"encoding/json"
	"strings"
	"testing"
)

// opportunityJSON is an opted-in co-sell opportunity as the
// salesforce-adapter publishes it.
const opportunityJSON = `{
  "Id": "0068d0000000001AAA", "Name": "Fabrikam data platform", "Amount": 120000.0, "CurrencyIsoCode": "EUR",
  "CloseDate": "2026-09-30", "StageName": "Prospecting", "Description": "Modernise the data platform.",
  "IsClosed": false, "IsWon": false, "IsDeleted": false, "SystemModstamp": "2026-03-07T09:18:01.000+0000",
  "LastModifiedById": "0058d0000000002AAA", "Sync_with_Partner_Center__c": true, "Referral_Identifier__c": null,
  "Referral_Link__c": null, "How_can_Microsoft_help__c": "Proof of concept or demo", "Products__c": "SOL-1; SOL-2",
  "Microsoft_CRM_Identifier__c": null, "Decline_Reason__c": null, "AccountId": "0018d0000000001AAA",
  "Account": {"Name": "Fabrikam Inc", "BillingCountry": "de", "BillingPostalCode": "10115", "BillingCity": "Berlin",
              "BillingState": null, "BillingStreet": "Unter den Linden 1"},
  "OpportunityContactRoles": {"records": [
    {"ContactId": "0038d0000000001AAA", "Role": "Influencer", "IsPrimary": false, "Contact": {"FirstName": "Ina", "LastName": "Other", "Email": "ina@fabrikam.example", "Phone": null}},
    {"ContactId": "0038d0000000002AAA", "Role": "Decision Maker", "IsPrimary": true, "Contact": {"FirstName": "Jo", "LastName": "Primary", "Email": "jo@fabrikam.example", "Phone": "+49 30 1234"}}
  ]},
  "Microsoft_Solutions__r": {"records": [{"Solution_Identifier__c": "SOL-2", "Name": "Two"}, {"Solution_Identifier__c": "SOL-3", "Name": "Three"}]}
}`

// opportunity parses opportunityJSON with top-level changes applied (a
// JSON null deletes).
func opportunity(t *testing.T, changes map[string]any) Opportunity {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal([]byte(opportunityJSON), &doc); err != nil {
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
	o, err := ParseOpportunity(b)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func createBody(t *testing.T, cfg *Config, o Opportunity) map[string]any {
	t.Helper()
	p, err := cfg.ProjectOutbound(o, Create)
	if problems := cfg.CheckCreate(o, p, err); len(problems) > 0 {
		t.Fatalf("problems: %v", problems)
	}
	var body map[string]any
	if err := json.Unmarshal(p.CreateBody(o.ID()), &body); err != nil {
		t.Fatal(err)
	}
	return body
}

func get(doc any, path string) any {
	for _, s := range strings.Split(path, ".") {
		m, ok := doc.(map[string]any)
		if !ok {
			return nil
		}
		doc = m[s]
	}
	return doc
}

func TestOutboundCreateCoSell(t *testing.T) {
	body := createBody(t, mustDefault(t), opportunity(t, nil))
	want := map[string]any{
		"name": "Fabrikam data platform", "type": "Shared", "qualification": "SalesQualified",
		"externalReferenceId":                                "0068d0000000001AAA",
		"inviteContext.assistanceRequestCode":                "ProofOfConceptOrDemo",
		"inviteContext.notes":                                "Modernise the data platform.",
		"consent.consentToShareReferralWithMicrosoftSellers": true,
		"customerProfile.name":                               "Fabrikam Inc",
		"customerProfile.address.country":                    "DE",
		"customerProfile.address.city":                       "Berlin",
		"details.dealValue":                                  120000.0,
		"details.currency":                                   "EUR",
		"details.closingDateTime":                            "2026-09-30T00:00:00.000Z",
		"details.notes":                                      "Modernise the data platform.",
	}
	for path, v := range want {
		if got := get(body, path); got != v {
			t.Errorf("%s = %#v, want %#v", path, got, v)
		}
	}
	if _, ok := get(body, "customerProfile.address").(map[string]any)["state"]; ok {
		t.Error("an empty state is written")
	}
	team, _ := get(body, "customerProfile.team").([]any)
	if len(team) != 1 || team[0].(map[string]any)["lastName"] != "Primary" || team[0].(map[string]any)["phoneNumber"] != "+49 30 1234" {
		t.Errorf("team = %v, want the primary contact only", team)
	}
	sols, _ := get(body, "details.requirements.solutions").([]any)
	var ids []string
	for _, s := range sols {
		ids = append(ids, s.(map[string]any)["id"].(string)+"/"+s.(map[string]any)["type"].(string))
	}
	if strings.Join(ids, ",") != "SOL-2/Name,SOL-3/Name,SOL-1/Name" {
		t.Errorf("solutions = %v", ids)
	}
}

func TestOutboundCreatePartnerLed(t *testing.T) {
	o := opportunity(t, map[string]any{"How_can_Microsoft_help__c": nil, "Products__c": nil, "Microsoft_Solutions__r": nil, "OpportunityContactRoles": nil})
	body := createBody(t, mustDefault(t), o)
	if body["type"] != "Independent" || get(body, "inviteContext.assistanceRequestCode") != nil {
		t.Errorf("partner-led body: type %v, code %v", body["type"], get(body, "inviteContext.assistanceRequestCode"))
	}
	if get(body, "consent.consentToShareReferralWithMicrosoftSellers") != true {
		t.Error("partner-led deal not shared with Microsoft sellers")
	}
}

func TestOutboundChecksInPlainWords(t *testing.T) {
	tests := []struct {
		name    string
		changes map[string]any
		want    string
	}{
		{"three-letter country", map[string]any{"Account": map[string]any{"BillingCountry": "USA"}}, `The customer's country "USA" (Billing Country on the account) is not a two-letter ISO 3166 country code`},
		{"UK is not assigned", map[string]any{"Account": map[string]any{"BillingCountry": "UK"}}, `"UK"`},
		{"no country", map[string]any{"Account": map[string]any{"BillingCountry": nil}}, "The customer's country is missing: fill in Billing Country on the account"},
		{"help without solution", map[string]any{"Products__c": nil, "Microsoft_Solutions__r": nil},
			"Microsoft's help is requested (How can Microsoft help: Proof of concept or demo), so Partner Center needs a co-sell solution"},
		{"help without contact", map[string]any{"OpportunityContactRoles": map[string]any{"records": []any{}}},
			"Microsoft's help is requested (How can Microsoft help: Proof of concept or demo), so Partner Center needs a customer contact"},
		{"zero amount", map[string]any{"Amount": 0}, "The deal value must be more than zero: fill in Amount."},
		{"no amount", map[string]any{"Amount": nil}, "The opportunity needs an Amount (the deal value) above zero."},
		{"no close date", map[string]any{"CloseDate": nil}, "The opportunity needs a Close Date."},
		{"no account", map[string]any{"Account": nil, "AccountId": nil}, "The opportunity needs an account (the customer) with a name."},
		{"unknown help value", map[string]any{"How_can_Microsoft_help__c": "Lunch"}, `How can Microsoft help "Lunch" has no equivalent`},
	}
	cfg := mustDefault(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := opportunity(t, tc.changes)
			p, err := cfg.ProjectOutbound(o, Create)
			problems := cfg.CheckCreate(o, p, err)
			if !strings.Contains(strings.Join(problems, "\n"), tc.want) {
				t.Errorf("problems:\n%s\nwant one with %q", strings.Join(problems, "\n"), tc.want)
			}
		})
	}
}

// current is the referral as Partner Center holds it for the opportunity.
func current(t *testing.T, status, substatus string, changes map[string]any) Referral {
	t.Helper()
	doc := map[string]any{
		"id": "ref-1", "name": "Fabrikam data platform", "status": status, "substatus": substatus, "statusReason": nil,
		"details": map[string]any{"dealValue": 120000, "currency": "EUR", "closingDateTime": "2026-09-30T00:00:00Z",
			"notes": "Modernise the data platform.", "requirements": map[string]any{"solutions": []any{
				map[string]any{"id": "SOL-2", "type": "Name"}, map[string]any{"id": "sol-3", "type": "Name"}, map[string]any{"id": "SOL-1"}}}},
	}
	for k, v := range changes {
		doc[k] = v
	}
	b, _ := json.Marshal(doc)
	r, err := ParseReferral(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func opsOf(p PatchPlan) string {
	var parts []string
	for _, op := range p.Ops {
		b, _ := json.Marshal(op.Value)
		parts = append(parts, op.Op+" "+op.Path+" "+string(b))
	}
	return strings.Join(parts, "; ")
}

func TestPatch(t *testing.T) {
	cfg := mustDefault(t)
	tests := []struct {
		name       string
		opp        map[string]any
		status     string
		substatus  string
		dirty      []string
		want       string
		held       string
		statusMove StageAction
	}{
		{"nothing differs", nil, "Active", "Accepted", nil, "", "", ""},
		{"deal value and close date", map[string]any{"Amount": 150000.0, "CloseDate": "2026-10-15"}, "Active", "Accepted", []string{"Amount", "CloseDate"},
			`replace /details/dealValue 150000; replace /details/closingDateTime "2026-10-15T00:00:00.000Z"`, "", ""},
		{"only dirty fields", map[string]any{"Amount": 150000.0, "Name": "Renamed"}, "Active", "Accepted", []string{"Name"}, `replace /name "Renamed"`, "", ""},
		{"description cleared", map[string]any{"Description": nil}, "Active", "Accepted", []string{"Description"}, `replace /details/notes null`, "", ""},
		{"solution added", map[string]any{"Products__c": "SOL-1;SOL-9"}, "Active", "Accepted", []string{"Products__c"},
			`add /details/requirements/solutions/- {"id":"SOL-9","type":"Name"}`, "", ""},
		{"accept from stage", map[string]any{"StageName": "Qualification", "Amount": 1.0}, "New", "Pending", []string{"StageName", "Amount"},
			`replace /details/dealValue 1; replace /status "Active"; replace /substatus "Accepted"`, "", ActionAccept},
		{"decline with reason", map[string]any{"StageName": "Declined", "Decline_Reason__c": "No capacity"}, "New", "Pending", []string{"StageName", "Decline_Reason__c"},
			`replace /status "Closed"; replace /substatus "Declined"; replace /statusReason "No capacity"`, "", ActionDecline},
		{"decline default reason", map[string]any{"StageName": "Declined"}, "New", "Pending", []string{"StageName"},
			`replace /status "Closed"; replace /substatus "Declined"; replace /statusReason "Declined by the partner in Salesforce."`, "", ActionDecline},
		{"won", map[string]any{"StageName": "Closed Won"}, "Active", "Accepted", []string{"StageName"}, `replace /status "Closed"; replace /substatus "Won"`, "", ActionWon},
		{"lost", map[string]any{"StageName": "Closed Lost"}, "Active", "Accepted", []string{"StageName"}, `replace /status "Closed"; replace /substatus "Lost"`, "", ActionLost},
		{"held while not accepted", map[string]any{"Amount": 1.0, "StageName": "On Hold"}, "New", "Pending", []string{"Amount"}, "", "not accepted yet; the changes are sent when the opportunity moves to Qualification", ""},
		{"closed referral", map[string]any{"Amount": 1.0, "StageName": "Qualification"}, "Closed", "Won", []string{"Amount", "StageName"}, "", "closed (Won)", ""},
		{"open stage leaves status", map[string]any{"StageName": "Needs Analysis"}, "Active", "Accepted", []string{"StageName"}, "", "", ""},
		{"already accepted", map[string]any{"StageName": "Qualification"}, "Active", "Accepted", []string{"StageName"}, "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var dirty map[string]bool
			if tc.dirty != nil {
				dirty = map[string]bool{}
				for _, d := range tc.dirty {
					dirty[d] = true
				}
			}
			plan := cfg.Patch(opportunity(t, tc.opp), current(t, tc.status, tc.substatus, nil), dirty)
			if got := opsOf(plan); got != tc.want {
				t.Errorf("ops = %s\nwant  %s", got, tc.want)
			}
			if !strings.Contains(plan.Held, tc.held) || (tc.held == "" && plan.Held != "") {
				t.Errorf("held = %q, want %q", plan.Held, tc.held)
			}
			if (plan.Status == nil) != (tc.statusMove == "") || (plan.Status != nil && plan.Status.Action != tc.statusMove) {
				t.Errorf("status change = %+v, want %q", plan.Status, tc.statusMove)
			}
		})
	}
}

func TestDryRunOutbound(t *testing.T) {
	cfg := mustDefault(t)
	out, err := DryRunOutbound(cfg, []byte(opportunityJSON), nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Outcome != DryRunSend || out.Event != Create || !strings.Contains(out.Message, "co-sell referral asking Microsoft for ProofOfConceptOrDemo") {
		t.Errorf("create dry run = %+v", out)
	}
	var body map[string]any
	if err := json.Unmarshal(out.Command, &body); err != nil || body["externalReferenceId"] != "0068d0000000001AAA" {
		t.Errorf("body = %s", out.Command)
	}
	var sawType bool
	for _, f := range out.Fields {
		if f.Target == "type" && f.Status == FieldSet {
			sawType = f.Value == "Shared"
		}
	}
	if !sawType {
		t.Errorf("fields = %+v", out.Fields)
	}

	bad := opportunity(t, map[string]any{"Account": map[string]any{"BillingCountry": "Germany"}})
	b, _ := json.Marshal(bad.doc)
	out, err = DryRunOutbound(cfg, b, nil)
	if err != nil || out.Outcome != DryRunRefused || out.Command != nil || len(out.Problems) != 1 {
		t.Errorf("refused dry run = %+v, %v", out, err)
	}

	notOpted := opportunity(t, map[string]any{"Sync_with_Partner_Center__c": false})
	b, _ = json.Marshal(notOpted.doc)
	if out, err := DryRunOutbound(cfg, b, nil); err != nil || out.Outcome != DryRunIgnored {
		t.Errorf("not opted in = %+v, %v", out, err)
	}

	changed := opportunity(t, map[string]any{"Amount": 99.5, "StageName": "Closed Won"})
	b, _ = json.Marshal(changed.doc)
	ref, _ := json.Marshal(current(t, "Active", "Accepted", nil).doc)
	out, err = DryRunOutbound(cfg, b, ref)
	if err != nil || out.Outcome != DryRunSend || out.Event != Update {
		t.Fatalf("update dry run = %+v, %v", out, err)
	}
	if string(out.Command) != `[{"op":"replace","path":"/details/dealValue","value":99.5},{"op":"replace","path":"/status","value":"Closed"},{"op":"replace","path":"/substatus","value":"Won"}]` {
		t.Errorf("patch = %s", out.Command)
	}
	if !strings.Contains(out.Message, "Stage Closed Won closes the referral as won (Active/Accepted to Closed/Won)") {
		t.Errorf("message = %s", out.Message)
	}
	b, _ = json.Marshal(opportunity(t, nil).doc)
	if out, err := DryRunOutbound(cfg, b, ref); err != nil || out.Outcome != DryRunNothing {
		t.Errorf("unchanged = %+v, %v", out, err)
	}
}
