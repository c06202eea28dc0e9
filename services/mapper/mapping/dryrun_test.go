package mapping

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDryRunInboundCreateReportsEveryRule(t *testing.T) {
	cfg := mustDefault(t)
	out, err := DryRunInbound(cfg, []byte(inbound), Create)
	if err != nil {
		t.Fatal(err)
	}
	if out.Outcome != DryRunSend || out.Direction != DirectionInbound || out.Event != Create {
		t.Fatalf("dry run = %+v", out)
	}
	if len(out.Fields) != len(cfg.Inbound.Fields) {
		t.Errorf("%d field results for %d rules", len(out.Fields), len(cfg.Inbound.Fields))
	}
	byTarget := map[string]FieldResult{}
	for _, f := range out.Fields {
		byTarget[f.Target] = f
		if f.Rule == "" || f.Line == 0 {
			t.Errorf("result without rule or line: %+v", f)
		}
	}
	if f := byTarget["StageName"]; f.Status != FieldSet || f.Value != "On Hold" || f.Source != "status/substatus" {
		t.Errorf("StageName = %+v", f)
	}
	if f := byTarget["Decline_Reason__c"]; f.Status != FieldSkipped || !strings.Contains(f.Reason, "substatus equals Declined") {
		t.Errorf("Decline_Reason__c = %+v", f)
	}
	if f := byTarget["Microsoft_CRM_Identifier__c"]; f.Status != FieldSkipped || !strings.Contains(f.Reason, "no value") {
		t.Errorf("Microsoft_CRM_Identifier__c = %+v", f)
	}
	var cmd map[string]any
	if err := json.Unmarshal(out.Command, &cmd); err != nil || cmd["Name"] != "Contoso Retail cloud migration" {
		t.Errorf("command = %s (%v)", out.Command, err)
	}
	if out.Account == nil || out.Account.Country != "US" {
		t.Errorf("account = %+v", out.Account)
	}
}

func TestDryRunInboundUpdateSkipsCreateOnlyRules(t *testing.T) {
	out, err := DryRunInbound(mustDefault(t), []byte(inbound), Update)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range out.Fields {
		if f.Target == "Name" && (f.Status != FieldSkipped || !strings.Contains(f.Reason, "create only")) {
			t.Errorf("Name = %+v", f)
		}
	}
	if out.Account != nil {
		t.Errorf("update carries an account: %+v", out.Account)
	}
}

func TestDryRunInboundRefusedAndIgnored(t *testing.T) {
	cfg := mustDefault(t)
	b, _ := json.Marshal(map[string]any{"id": "x", "name": "n", "status": "New", "substatus": "Pending"})
	out, err := DryRunInbound(cfg, b, Create)
	if err != nil {
		t.Fatal(err)
	}
	if out.Outcome != DryRunRefused || len(out.Problems) == 0 || !strings.Contains(strings.Join(out.Problems, " "), "CloseDate") || out.Command != nil {
		t.Errorf("refused dry run = %+v", out)
	}
	b, _ = json.Marshal(map[string]any{"id": "x", "name": "n", "organizationId": "msft", "status": "Active", "substatus": "Accepted",
		"details": map[string]any{"closingDateTime": "2026-01-01T00:00:00Z"}})
	if out, err := DryRunInbound(cfg, b, Create); err != nil || out.Outcome != DryRunIgnored || !strings.Contains(out.Message, "Microsoft's own referral") {
		t.Errorf("ignored dry run = %+v, %v", out, err)
	}
	if _, err := DryRunInbound(cfg, []byte("nope"), Create); err == nil {
		t.Error("malformed referral accepted")
	}
	if _, err := DryRunInbound(cfg, []byte(inbound), "delete"); err == nil {
		t.Error("unknown event accepted")
	}
}

func TestDryRunOutboundWithoutOutboundSection(t *testing.T) {
	cfg, err := Parse("v1.yaml", []byte("version: 1\ninbound:\n  fields:\n    - {to: Name, from: name}\n    - {to: StageName, value: Prospecting}\n    - {to: CloseDate, from: details.closingDateTime, as: date}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DryRunOutbound(cfg, []byte(`{"Id":"006"}`), nil); !errors.Is(err, ErrNoOutbound) {
		t.Errorf("err = %v, want ErrNoOutbound", err)
	}
}
