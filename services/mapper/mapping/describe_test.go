package mapping

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func describeFixture(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/opportunity-describe.json")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDefaultFitsTheEmulatedOrg(t *testing.T) {
	if err := ValidateAgainstDescribe(mustDefault(t), describeFixture(t)); err != nil {
		t.Fatalf("default mapping against the emulator's describe:\n%v", err)
	}
}

func TestDescribeProblemsNameLineAndField(t *testing.T) {
	base := string(DefaultYAML())
	tests := []struct {
		name, old, new string
		field, msg     string
	}{
		{"unknown field", "    - to: Microsoft_CRM_Identifier__c\n      from: trackingInfo.microsoftMsxId\n    - to: Sync",
			"    - to: Microsoft_CRM_Id__c\n      from: trackingInfo.microsoftMsxId\n    - to: Sync", "inbound.fields[9] (Microsoft_CRM_Id__c).to", "has no field Microsoft_CRM_Id__c"},
		{"stage not in picklist", "      Closed/Won: Closed Won\n", "      Closed/Won: Won\n", "value_maps.stage.values.Closed/Won", `"Won" is not a value of the picklist StageName`},
		{"type mismatch", "    - to: Amount\n      from: details.dealValue\n      as: number\n    - to: CurrencyIsoCode",
			"    - to: Amount\n      from: details.dealValue\n      as: date\n    - to: CurrencyIsoCode", "inbound.fields[1] (Amount).as", "currency field; as: date does not fit"},
		{"lifecycle stage", "    Qualification: accept", "    Qualified: accept", "lifecycle.stages.Qualified", `"Qualified" is not a stage of StageName`},
		{"help value", "      Quotes or licensing: QuotesOrLicensing", "      Quotes and licensing: QuotesOrLicensing", "value_maps.help.values.Quotes and licensing", "is not a value of the picklist How_can_Microsoft_help__c"},
		{"outbound source", "      from: Account.BillingCountry", "      from: Acount.BillingCountry", "outbound.fields[10] (customerProfile.address.country).from", "no relationship Acount"},
		{"not updateable", "    - to: Amount\n      from: details.dealValue\n      as: number\n    - to: CurrencyIsoCode",
			"    - to: Amount\n      from: details.dealValue\n      as: number\n    - to: ExpectedRevenue\n      from: details.dealValue\n      as: number\n    - to: CurrencyIsoCode", "inbound.fields[2] (ExpectedRevenue).to", "not createable"},
		{"ownership", "    Name: salesforce", "    Nmae: salesforce", "ownership.fields.Nmae", "has no field Nmae"},
		{"audit field", "  audit_field: Audit__c", "  audit_field: IsWon", "salesforce.audit_field", "updateable text field"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("default has no %q", tc.old)
			}
			src := strings.Replace(base, tc.old, tc.new, 1)
			cfg, err := Parse("org.yaml", []byte(src))
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			err = ValidateAgainstDescribe(cfg, describeFixture(t))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			for _, p := range ve.Problems {
				if p.Field == tc.field && strings.Contains(p.Message, tc.msg) && p.Line > 0 && p.File == "org.yaml" {
					return
				}
			}
			t.Errorf("no problem for %q with %q; got:\n%v", tc.field, tc.msg, err)
		})
	}
}

func TestDescribeNotADescribe(t *testing.T) {
	if err := ValidateAgainstDescribe(mustDefault(t), []byte(`{"name":"Opportunity"}`)); err == nil {
		t.Error("describe without fields accepted")
	}
	if err := ValidateAgainstDescribe(mustDefault(t), []byte(`nope`)); err == nil {
		t.Error("garbage accepted")
	}
}
