package mapping

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Direction is which way a sync writes.
type Direction string

// The two directions.
const (
	// DirectionInbound is Partner Center → Salesforce: a referral becomes
	// opportunity fields.
	DirectionInbound Direction = "inbound"
	// DirectionOutbound is Salesforce → Partner Center: an opportunity becomes a
	// referral create body or a JSON Patch.
	DirectionOutbound Direction = "outbound"
)

// FieldStatus says what one rule did in a dry run.
type FieldStatus string

// The statuses of a field in a dry run.
const (
	// FieldSet means the value is written.
	FieldSet FieldStatus = "set"
	// FieldCleared means null is written (missing: clear).
	FieldCleared FieldStatus = "cleared"
	// FieldUnchanged means the value is already there; nothing is sent
	// for it (outbound updates only).
	FieldUnchanged FieldStatus = "unchanged"
	// FieldSkipped means the rule does not apply (event, condition) or its
	// source has no value: the target is left as it is.
	FieldSkipped FieldStatus = "skipped"
	// FieldFailed means the rule cannot map the record; when any rule
	// fails nothing is sent at all.
	FieldFailed FieldStatus = "failed"
)

// FieldResult is what one rule of the mapping does with one record.
type FieldResult struct {
	// Target is the Salesforce field (inbound) or the referral path
	// (outbound, dotted: "details.dealValue").
	Target string `json:"target"`
	// Value is the value written when Status is set: a string,
	// json.Number, bool, or for lists a []any of objects.
	Value any `json:"value,omitempty"`
	// Status says what happens to Target.
	Status FieldStatus `json:"status"`
	// Rule names the rule in the file, e.g. "inbound.fields[3]", and Line
	// is where it starts.
	Rule string `json:"rule"`
	Line int    `json:"line"`
	// Source says where the value comes from: the record paths, a
	// template's placeholders, "the constant value", "lifecycle".
	Source string `json:"source,omitempty"`
	// Reason says, in plain words, why the field is skipped, unchanged
	// or failed.
	Reason string `json:"reason,omitempty"`
}

// DryRunOutcome says what the mapper would do with the record.
type DryRunOutcome string

// Outcomes of a dry run.
const (
	// DryRunSend means a command would be sent; DryRun.Command is it.
	DryRunSend DryRunOutcome = "send"
	// DryRunNothing means the record maps but nothing differs from the
	// other side: no command.
	DryRunNothing DryRunOutcome = "nothing to send"
	// DryRunIgnored means the record does not start a sync (an ignore
	// rule, an opportunity not opted in).
	DryRunIgnored DryRunOutcome = "ignored"
	// DryRunRefused means the record cannot be sent: a rule failed or a
	// check Partner Center would enforce does not pass. Problems says why,
	// in the words the seller would read in the Audit field.
	DryRunRefused DryRunOutcome = "refused"
)

// DryRun reports exactly what the mapper would send for one record, field
// by field, without writing anything. The operator CLI prints it.
type DryRun struct {
	// Direction and Event say which mapping applied.
	Direction Direction `json:"direction"`
	Event     Event     `json:"event"`
	// Outcome and Message summarise the decision in plain words.
	Outcome DryRunOutcome `json:"outcome"`
	Message string        `json:"message"`
	// Fields lists every rule in file order (plus, outbound, the
	// lifecycle's status change) and what it does.
	Fields []FieldResult `json:"fields"`
	// Account is the customer account an inbound command finds or
	// creates.
	Account *Account `json:"account,omitempty"`
	// Problems are the reasons a record is refused, in plain words.
	Problems []string `json:"problems,omitempty"`
	// Command is the payload that would be sent when Outcome is send:
	// inbound the opportunity fields (fields_json of the upsert command),
	// outbound the referral create body or the JSON Patch array.
	Command json.RawMessage `json:"command,omitempty"`
}

// ErrNoOutbound reports a mapping without an outbound section (every
// version 1 file): it syncs Partner Center → Salesforce only.
var ErrNoOutbound = errors.New("the mapping has no outbound section: it syncs Partner Center to Salesforce only (outbound needs version: 2)")

// DryRunInbound shows what the mapping makes of a referral (the document
// as Partner Center returns it) for event: Create when the referral has
// no opportunity yet, Update afterwards. An update dry run writes every
// field the update rules produce; the running mapper sends only the ones
// that differ from the opportunity. It returns an error only when the
// referral is not a JSON object or the event is unknown.
func DryRunInbound(cfg *Config, referralJSON []byte, event Event) (*DryRun, error) {
	if event != Create && event != Update {
		return nil, fmt.Errorf("dry run: unknown event %q (create or update)", event)
	}
	ref, err := ParseReferral(referralJSON)
	if err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	out := &DryRun{Direction: DirectionInbound, Event: event}
	proj, results, err := cfg.project(ref, event, "inbound.fields", cfg.Inbound.Fields)
	out.Fields = results
	if err != nil {
		var pe *ProjectionError
		if !errors.As(err, &pe) {
			return nil, err
		}
		out.Outcome = DryRunRefused
		out.Message = "The referral cannot be mapped, so nothing would be sent to Salesforce; the link would be parked."
		for _, f := range pe.Fields {
			out.Problems = append(out.Problems, f.Error())
		}
		return out, nil
	}
	if event == Create {
		if reason, ignored := cfg.Ignored(ref); ignored {
			out.Outcome = DryRunIgnored
			out.Message = "A referral without a link is not synced: " + reason + "."
			return out, nil
		}
		out.Account = cfg.Inbound.Account.project(ref.doc)
	}
	if len(proj.Fields) == 0 && out.Account == nil {
		out.Outcome, out.Message = DryRunNothing, "No rule produces a value: nothing would be sent."
		return out, nil
	}
	out.Outcome = DryRunSend
	out.Command = proj.FieldsJSON()
	verb := "updates"
	if event == Create {
		verb = "creates (upsert by " + cfg.ExternalIDField + ")"
	}
	out.Message = fmt.Sprintf("The mapper %s the %s with %d field(s).", verb, cfg.Object, len(proj.Fields))
	return out, nil
}

// DryRunOutbound shows what the mapping makes of an opportunity (the
// record_json of an OpportunityObserved: the Opportunity as the REST query
// returns it, with its Account, OpportunityContactRoles and
// Microsoft_Solutions__r). With currentReferralJSON nil it is a create: the
// checks Partner Center enforces run first (Problems says what a seller
// must fix) and Command is the complete referral body. With the current
// referral it is an update: Command is the JSON Patch that brings the
// referral in line (status changes from the lifecycle included), and
// fields already equal are reported unchanged. A file without an outbound
// section returns ErrNoOutbound.
func DryRunOutbound(cfg *Config, opportunityJSON, currentReferralJSON []byte) (*DryRun, error) {
	if cfg.Outbound == nil {
		return nil, ErrNoOutbound
	}
	opp, err := ParseOpportunity(opportunityJSON)
	if err != nil {
		return nil, fmt.Errorf("dry run: %w", err)
	}
	if currentReferralJSON == nil {
		return cfg.dryRunCreate(opp), nil
	}
	ref, err := ParseReferral(currentReferralJSON)
	if err != nil {
		return nil, fmt.Errorf("dry run: current %w", err)
	}
	out := &DryRun{Direction: DirectionOutbound, Event: Update}
	plan := cfg.Patch(opp, ref, nil)
	out.Fields, out.Problems = plan.Results, plan.Problems
	switch {
	case len(plan.Ops) > 0:
		out.Outcome, out.Command = DryRunSend, plan.OpsJSON()
		out.Message = fmt.Sprintf("The mapper patches referral %s with %d operation(s), If-Match its current eTag.", ref.Text("id"), len(plan.Ops))
		if plan.Status != nil {
			out.Message += fmt.Sprintf(" Stage %s %s (%s to %s).", plan.Status.Stage, plan.Status.Action.Verb(), plan.Status.From, plan.Status.To)
		}
	case plan.Held != "":
		out.Outcome, out.Message = DryRunNothing, "Nothing is sent: "+plan.Held+"."
	default:
		out.Outcome, out.Message = DryRunNothing, "The referral already matches the opportunity: nothing would be sent."
	}
	if len(plan.Problems) > 0 {
		out.Message += " Some values cannot be mapped and are left out (see problems)."
	}
	return out, nil
}

// dryRunCreate is DryRunOutbound for an opportunity without a referral.
func (c *Config) dryRunCreate(opp Opportunity) *DryRun {
	out := &DryRun{Direction: DirectionOutbound, Event: Create}
	proj, err := c.ProjectOutbound(opp, Create)
	out.Fields = proj.Results
	if !strings.EqualFold(opp.Text(c.SyncField), "true") {
		out.Outcome = DryRunIgnored
		out.Message = fmt.Sprintf("The opportunity is not opted in (%s is not ticked): no referral would be created.", c.SyncField)
		return out
	}
	if problems := c.CheckCreate(opp, proj, err); len(problems) > 0 {
		out.Outcome, out.Problems = DryRunRefused, problems
		out.Message = "Nothing would be sent to Partner Center; the seller would read this in " + c.AuditField + ": " + strings.Join(problems, " ")
		return out
	}
	out.Outcome, out.Command = DryRunSend, proj.CreateBody(opp.ID())
	kind := "a partner-led or private referral (" + proj.text("type") + ")"
	if code := proj.text("inviteContext.assistanceRequestCode"); code != "" && code != "Unknown" {
		kind = "a co-sell referral asking Microsoft for " + code
	}
	out.Message = fmt.Sprintf("The mapper creates %s with externalReferenceId %s.", kind, opp.ID())
	return out
}
