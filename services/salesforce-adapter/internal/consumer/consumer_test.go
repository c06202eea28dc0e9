package consumer

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/cosell/cosell/libs/events/cosellv1"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/sfclient"
	"github.com/cosell/cosell/services/salesforce-adapter/internal/upsert"
)

func TestToCommand(t *testing.T) {
	good := &cosellv1.UpsertOpportunityCommand{
		CommandId: "c1", ReferralId: "r1", FieldsJson: []byte(`{"Name":"X"}`),
		Account: &cosellv1.Account{Name: "Contoso", Country: "US", FieldsJson: []byte(`{"Industry":"Retail"}`)},
	}
	cmd, err := toCommand(good, trace.SpanContext{})
	if err != nil {
		t.Fatal(err)
	}
	if cmd.ExternalIDField != DefaultExternalIDField || string(cmd.Fields["Name"]) != `"X"` ||
		cmd.Customer == nil || string(cmd.Customer.Fields["Industry"]) != `"Retail"` {
		t.Fatalf("command = %+v", cmd)
	}
	for name, c := range map[string]*cosellv1.UpsertOpportunityCommand{
		"no referral":     {CommandId: "c", FieldsJson: []byte(`{}`)},
		"slash":           {CommandId: "c", ReferralId: "a/b"},
		"bad field name":  {CommandId: "c", ReferralId: "r", ExternalIdField: "x y"},
		"array fields":    {CommandId: "c", ReferralId: "r", FieldsJson: []byte(`[]`)},
		"bad key":         {CommandId: "c", ReferralId: "r", FieldsJson: []byte(`{"a b":1}`)},
		"bad account doc": {CommandId: "c", ReferralId: "r", Account: &cosellv1.Account{Name: "A", FieldsJson: []byte(`1`)}},
	} {
		if _, err := toCommand(c, trace.SpanContext{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if cmd, err := toCommand(&cosellv1.UpsertOpportunityCommand{ReferralId: "r", Account: &cosellv1.Account{Country: "US"}}, trace.SpanContext{}); err != nil || cmd.Customer != nil {
		t.Fatalf("nameless account = %+v, %v; want no customer", cmd.Customer, err)
	}
}

func TestToResult(t *testing.T) {
	c := &cosellv1.UpsertOpportunityCommand{CommandId: "c1", ReferralId: "r1"}
	ok := toResult(c, upsert.Outcome{Kind: upsert.OK, OpportunityID: "006x", Created: true, AccountID: "001y"})
	if ok.GetOutcome() != cosellv1.Outcome_OUTCOME_OK || ok.GetOpportunityId() != "006x" || !ok.GetCreated() || ok.GetAccountId() != "001y" {
		t.Fatalf("ok = %v", ok)
	}
	rej := toResult(c, upsert.Outcome{Kind: upsert.Rejected, Errors: []sfclient.ErrorItem{
		{Code: "FIELD_CUSTOM_VALIDATION_EXCEPTION", Message: "Amount must be positive", Fields: []string{"Amount"}},
		{Code: "REQUIRED_FIELD_MISSING", Message: "Required fields are missing: [CloseDate]", Fields: []string{"CloseDate", "Amount"}},
	}})
	if rej.GetOutcome() != cosellv1.Outcome_OUTCOME_REJECTED || rej.GetErrorCode() != "FIELD_CUSTOM_VALIDATION_EXCEPTION" ||
		!strings.Contains(rej.GetErrorMessage(), "Amount must be positive; Required") || len(rej.GetErrorFields()) != 2 {
		t.Fatalf("rejected = %v", rej)
	}
	failed := toResult(c, upsert.Outcome{Kind: upsert.Failed, Err: errors.New("connection refused")})
	if failed.GetOutcome() != cosellv1.Outcome_OUTCOME_FAILED || failed.GetErrorMessage() != "connection refused" {
		t.Fatalf("failed = %v", failed)
	}
	if resultMsgID(ok) == resultMsgID(failed) {
		t.Fatal("different outcomes of one command share a Msg-Id")
	}
}

func TestDeferralGrowsToAnHour(t *testing.T) {
	if d := deferral(time.Minute, 1); d != time.Minute {
		t.Fatalf("first deferral %v", d)
	}
	if d := deferral(time.Minute, 3); d != 4*time.Minute {
		t.Fatalf("third deferral %v", d)
	}
	if d := deferral(time.Minute, 20); d != time.Hour {
		t.Fatalf("late deferral %v", d)
	}
	if d := deferral(0, 1); d != time.Second {
		t.Fatalf("zero suggestion gave %v", d)
	}
}

func TestToUpdate(t *testing.T) {
	good := &cosellv1.SalesforceWriteback{
		CommandId: "sf-writeback:1", OpportunityId: "0068d0000000001AAA", ReferralId: "r1",
		FieldsJson: []byte(`{"Referral_Identifier__c":"r1","Audit__c":"line","Id":"0068D0000000001aaa"}`),
	}
	cmd, err := toUpdate(good, trace.SpanContext{})
	if err != nil {
		t.Fatal(err)
	}
	if cmd.OpportunityID != "0068d0000000001AAA" || cmd.ReferralID != "r1" || cmd.ID != "sf-writeback:1" ||
		len(cmd.Fields) != 2 || string(cmd.Fields["Audit__c"]) != `"line"` {
		t.Fatalf("command = %+v", cmd)
	}
	for name, c := range map[string]*cosellv1.SalesforceWriteback{
		"no id":       {OpportunityId: "", FieldsJson: []byte(`{"Name":"x"}`)},
		"bad id":      {OpportunityId: "006' OR x", FieldsJson: []byte(`{"Name":"x"}`)},
		"not object":  {OpportunityId: "0068d0000000001AAA", FieldsJson: []byte(`[1]`)},
		"empty":       {OpportunityId: "0068d0000000001AAA", FieldsJson: []byte(`{}`)},
		"no fields":   {OpportunityId: "0068d0000000001AAA"},
		"bad key":     {OpportunityId: "0068d0000000001AAA", FieldsJson: []byte(`{"a.b":1}`)},
		"another id":  {OpportunityId: "0068d0000000001AAA", FieldsJson: []byte(`{"Id":"0068d0000000002AAA","Name":"x"}`)},
		"only the id": {OpportunityId: "0068d0000000001AAA", FieldsJson: []byte(`{"Id":"0068d0000000001AAA"}`)},
	} {
		if _, err := toUpdate(c, trace.SpanContext{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestExpectedModstampIsCarried(t *testing.T) {
	at := time.Date(2026, 11, 24, 8, 36, 6, 170_000_000, time.UTC)
	up, err := toCommand(&cosellv1.UpsertOpportunityCommand{CommandId: "c", ReferralId: "r", FieldsJson: []byte(`{"Amount":1}`),
		ExpectedSystemModstamp: timestamppb.New(at)}, trace.SpanContext{})
	if err != nil || !up.ExpectedSystemModstamp.Equal(at) {
		t.Fatalf("upsert = %+v, %v", up, err)
	}
	wb, err := toUpdate(&cosellv1.SalesforceWriteback{CommandId: "c", OpportunityId: "0068d0000000001AAA", FieldsJson: []byte(`{"Amount":1}`),
		ExpectedSystemModstamp: timestamppb.New(at)}, trace.SpanContext{})
	if err != nil || !wb.ExpectedSystemModstamp.Equal(at) {
		t.Fatalf("write-back = %+v, %v", wb, err)
	}
	if plain, _ := toCommand(&cosellv1.UpsertOpportunityCommand{CommandId: "c", ReferralId: "r"}, trace.SpanContext{}); !plain.ExpectedSystemModstamp.IsZero() {
		t.Fatal("an unconditional command became conditional")
	}
	rej := toResult(&cosellv1.UpsertOpportunityCommand{CommandId: "c", ReferralId: "r"}, upsert.Outcome{Kind: upsert.Rejected,
		Errors: []sfclient.ErrorItem{{Code: upsert.CodePreconditionFailed, Message: "changed", Fields: []string{"SystemModstamp"}}}})
	if rej.GetOutcome() != cosellv1.Outcome_OUTCOME_REJECTED || rej.GetErrorCode() != "PRECONDITION_FAILED" {
		t.Fatalf("result = %v", rej)
	}
}
