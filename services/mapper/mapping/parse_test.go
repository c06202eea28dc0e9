package mapping

import (
	"errors"
	"strings"
	"testing"
)

// TestParseErrorsNameLineAndField checks each kind of mistake is reported
// with the file, the line it is on and the setting at fault.
func TestParseErrorsNameLineAndField(t *testing.T) {
	const head = "version: 1\ninbound:\n  fields:\n    - {to: Name, from: name}\n    - {to: StageName, value: Prospecting}\n    - {to: CloseDate, from: details.closingDateTime, as: date}\n"
	tests := []struct {
		name  string
		src   string
		line  int
		field string
		msg   string
	}{
		{"unknown type", head + "    - to: Amount\n      from: details.dealValue\n      as: money\n", 9, "inbound.fields[3] (Amount).as", `unknown type "money"`},
		{"unknown key", head + "    - to: Amount\n      form: details.dealValue\n", 8, "inbound.fields[3].form", `unknown setting "form"`},
		{"two sources", head + "    - {to: Amount, from: a, value: 3}\n", 7, "inbound.fields[3] (Amount)", "exactly one of from, template or value"},
		{"no source", head + "    - {to: Amount}\n", 7, "inbound.fields[3] (Amount)", "exactly one of from, template or value (found 0)"},
		{"bad path", head + "    - {to: Amount, from: details..dealValue}\n", 7, "inbound.fields[3] (Amount).from", "segment"},
		{"unknown value map", head + "    - {to: Type, from: status, map: kinds}\n", 7, "inbound.fields[3] (Type).map", `no value map "kinds"`},
		{"external id mapped", head + "    - {to: Referral_Identifier__c, from: id}\n", 7, "inbound.fields[3] (Referral_Identifier__c).to", "External ID"},
		{"duplicate field", head + "    - {to: Name, from: id}\n", 7, "inbound.fields[3] (Name).to", "already written on create by the rule at line 4"},
		{"bad api name", head + "    - {to: My Field, from: id}\n", 7, "inbound.fields[3] (My Field).to", "not a Salesforce API name"},
		{"bad event", head + "    - {to: Amount, from: a, on: [create, delete]}\n", 7, "inbound.fields[3] (Amount).on", `unknown event "delete"`},
		{"bad missing", head + "    - {to: Amount, from: a, missing: ignore}\n", 7, "inbound.fields[3] (Amount).missing", "unknown policy"},
		{"bad template", head + "    - {to: Link__c, template: \"https://x/{id\", as: url}\n", 7, "inbound.fields[3] (Link__c).template", "'{' without '}'"},
		{"bad constant", head + "    - {to: Amount, value: lots, as: number}\n", 7, "inbound.fields[3] (Amount).value", "not a number"},
		{"bad timezone", head + "    - {to: D__c, from: a, as: date, timezone: Mars/Olympus}\n", 7, "inbound.fields[3] (D__c).timezone", "unknown time zone"},
		{"max length", head + "    - {to: A__c, from: a, max_length: -3}\n", 7, "inbound.fields[3] (A__c).max_length", "positive whole number"},
		{"bad condition", head + "    - {to: A__c, from: a, when: {field: status, equals: x, present: true}}\n", 7, "inbound.fields[3] (A__c).when", "exactly one of equals"},
		{"version", strings.Replace(head, "version: 1", "version: 3", 1), 1, "version", "unsupported version 3"},
		{"missing required", "version: 1\ninbound:\n  fields:\n    - {to: Name, from: name}\n", 4, "inbound.fields", "no rule writes StageName on create"},
		{"ignore without reason", head + "  ignore:\n    - when: {field: organizationId, equals: msft}\n", 8, "inbound.ignore[0].reason", "missing"},
		{"value map empty", "version: 1\nvalue_maps:\n  stage:\n    values: {}\n" + head[len("version: 1\n"):], 4, "value_maps.stage.values", "non-empty"},
		{"top level", head + "outbound: {}\n", 7, "outbound", "needs version: 2"},
		{"unknown top level", head + "inbund: {}\n", 7, "inbund", `unknown setting "inbund"`},
		{"not yaml", "version: 1\ninbound: [\n", 2, "", "not valid YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("my-mapping.yaml", []byte(tc.src))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			for _, p := range ve.Problems {
				if p.Line == tc.line && p.Field == tc.field && strings.Contains(p.Message, tc.msg) && p.File == "my-mapping.yaml" {
					if !strings.HasPrefix(p.String(), "my-mapping.yaml:") {
						t.Errorf("rendered as %q", p.String())
					}
					return
				}
			}
			t.Errorf("no problem at line %d field %q with %q; got:\n%v", tc.line, tc.field, tc.msg, err)
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	src := "version: 1\ninbound:\n  fields:\n    - {to: Name, from: name, as: text}\n    - {to: StageName, from: status, map: nope}\n    - {to: CloseDate, from: details.closingDateTime, as: date}\n"
	_, err := Parse("f.yaml", []byte(src))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 {
		t.Fatalf("err = %v, want two problems", err)
	}
	if !strings.Contains(err.Error(), "f.yaml:4:") || !strings.Contains(err.Error(), "f.yaml:5:") {
		t.Errorf("message does not locate both:\n%v", err)
	}
}

func TestLoadFile(t *testing.T) {
	if _, err := LoadFile(""); err != nil {
		t.Errorf("empty path: %v", err)
	}
	if _, err := LoadFile("/does/not/exist.yaml"); err == nil {
		t.Error("missing file accepted")
	}
}

// TestParseV2Errors changes the default (version 2) one mistake at a time.
func TestParseV2Errors(t *testing.T) {
	base := string(DefaultYAML())
	tests := []struct {
		name, old, new string
		field, msg     string
	}{
		{"target not in schema", "    - to: details.notes\n      from: Description\n      missing: clear",
			"    - to: details.note\n      from: Description\n      missing: clear", "outbound.fields[19] (details.note).to", `has no field "note"`},
		{"server-owned target", "    - to: qualification\n", "    - to: trackingInfo.microsoftMsxId\n", "outbound.fields[3] (trackingInfo.microsoftMsxId).to", "set by Partner Center"},
		{"object target", "    - to: qualification\n      value: SalesQualified\n", "    - to: details\n      value: SalesQualified\n", "outbound.fields[3] (details).to", "is an object"},
		{"not patchable on update", "    - to: qualification\n      value: SalesQualified\n      on: [create]\n", "    - to: qualification\n      value: SalesQualified\n",
			"outbound.fields[3] (qualification).on", "cannot change once the referral exists"},
		{"enum constant", "      value: Shared\n", "      value: Shard\n", "outbound.fields[1] (type).value", `"Shard" is not a value of type`},
		{"enum map value", "      Quotes or licensing: QuotesOrLicensing\n", "      Quotes or licensing: QuotesAndLicensing\n",
			"value_maps.help.values.Quotes or licensing", `"QuotesAndLicensing" is not a value of inviteContext.assistanceRequestCode`},
		{"type mismatch", "      from: Amount\n      as: number\n", "      from: Amount\n      as: string\n", "outbound.fields[16] (details.dealValue).as", "is a number in Partner Center"},
		{"list on a scalar", "    - to: details.currency\n      from: CurrencyIsoCode\n      as: currency\n",
			"    - to: details.currency\n      list: {from: CurrencyIsoCode, item: {id: \"{.}\"}}\n", "outbound.fields[17] (details.currency).list", "only applies to list fields"},
		{"list item member", "          type: Name\n", "          kind: Name\n", "outbound.fields[20] (details.requirements.solutions).list.item.kind", `no member "kind"`},
		{"unknown action", "    Closed Won: won", "    Closed Won: win", "lifecycle.stages.Closed Won", `unknown action "win"`},
		{"unknown owner", "    Name: salesforce", "    Name: seller", "ownership.fields.Name", `unknown owner "seller"`},
		{"reverse not one-to-one", "      General or other: GeneralOrOther\n", "      General or other: GeneralOrOther\n      Other: GeneralOrOther\n",
			"inbound.fields[7] (How_can_Microsoft_help__c).reverse", "cannot be read backwards"},
		{"related source", "      - to: Amount\n        from: details.dealValue\n", "      - to: Amount\n        from: details.dealVal\n", "inbound.related.fields[1] (Amount).from", `no field "dealVal"`},
		{"required referral field", "    - to: customerProfile.address.country\n      from: Account.BillingCountry\n      as: country\n      on: [create]\n", "",
			"outbound.fields", "no rule writes customerProfile.address.country on create"},
		{"lifecycle missing", "lifecycle:\n  stage_field: StageName\n", "lifecycl:\n  stage_field: StageName\n", "lifecycl", "unknown setting"},
		{"version 1 related", "version: 2\n", "version: 1\n", "outbound", "needs version: 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("default has no %q", tc.old)
			}
			_, err := Parse("v2.yaml", []byte(strings.Replace(base, tc.old, tc.new, 1)))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err = %v, want a ValidationError", err)
			}
			for _, p := range ve.Problems {
				if p.Field == tc.field && strings.Contains(p.Message, tc.msg) && p.Line > 0 {
					return
				}
			}
			t.Errorf("no problem for %q with %q; got:\n%v", tc.field, tc.msg, err)
		})
	}
}

func TestVersion1FileKeepsItsMeaning(t *testing.T) {
	cfg, err := Parse("v1.yaml", []byte("version: 1\ninbound:\n  fields:\n    - {to: Name, from: name}\n    - {to: StageName, value: Prospecting}\n    - {to: CloseDate, from: details.closingDateTime, as: date}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != 1 || cfg.Outbound != nil || cfg.Lifecycle != nil {
		t.Errorf("v1 config = %+v", cfg)
	}
}
