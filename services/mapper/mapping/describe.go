package mapping

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// sfDescribe is the part of a Salesforce sObject describe
// (GET /services/data/vNN.N/sobjects/Opportunity/describe) the checks
// read.
type sfDescribe struct {
	Name               string    `json:"name"`
	Fields             []sfField `json:"fields"`
	ChildRelationships []struct {
		RelationshipName string `json:"relationshipName"`
		ChildSObject     string `json:"childSObject"`
	} `json:"childRelationships"`
}

type sfField struct {
	Name               string `json:"name"`
	Type               string `json:"type"`
	Length             int    `json:"length"`
	Createable         bool   `json:"createable"`
	Updateable         bool   `json:"updateable"`
	ExternalID         bool   `json:"externalId"`
	RelationshipName   string `json:"relationshipName"`
	RestrictedPicklist bool   `json:"restrictedPicklist"`
	PicklistValues     []struct {
		Value  string `json:"value"`
		Active bool   `json:"active"`
	} `json:"picklistValues"`
}

func (f *sfField) picklist() bool { return f.Type == "picklist" || f.Type == "multipicklist" }

func (f *sfField) hasValue(v string) bool {
	return slices.ContainsFunc(f.PicklistValues, func(p struct {
		Value  string `json:"value"`
		Active bool   `json:"active"`
	}) bool {
		return p.Active && p.Value == v
	})
}

func (f *sfField) values() string {
	var vs []string
	for _, p := range f.PicklistValues {
		if p.Active {
			vs = append(vs, p.Value)
		}
	}
	return strings.Join(vs, ", ")
}

// compatible reports whether a rule's conversion fits a Salesforce type.
func compatible(as Type, sfType string) bool {
	text := []string{"string", "textarea", "picklist", "multipicklist", "url", "email", "phone", "reference", "id", "combobox", "encryptedstring"}
	switch as {
	case TypeNumber:
		return slices.Contains([]string{"double", "currency", "percent", "int", "long"}, sfType)
	case TypeDate:
		return sfType == "date" || sfType == "datetime"
	case TypeDateTime:
		return sfType == "datetime"
	case TypeBool:
		return sfType == "boolean"
	default:
		return slices.Contains(text, sfType)
	}
}

// ValidateAgainstDescribe checks a loaded mapping against the Salesforce
// describe of its object (the JSON of GET …/sobjects/Opportunity/describe,
// which the salesforce-adapter serves at GET /admin/describe/Opportunity):
// every field the mapping writes exists and is createable or updateable
// for the events it is written on, conversions fit the field types, values
// written to restricted picklists (constants, defaults, value maps,
// lifecycle stages) are active picklist values, the fields outbound rules
// and conditions read exist (relationships included), and the settings
// naming fields (External ID, sync checkbox, audit field, stage field,
// ownership) name fields of the right kind. Every problem names the file,
// line and field, as Parse does; nil means the mapping fits the org.
//
// The mapper itself never calls it at start (it does no external I/O);
// the operator CLI does, before a mapping goes live.
func ValidateAgainstDescribe(cfg *Config, describeJSON []byte) error {
	var d sfDescribe
	if err := json.Unmarshal(describeJSON, &d); err != nil {
		return fmt.Errorf("describe: not a Salesforce describe document: %w", err)
	}
	if len(d.Fields) == 0 {
		return fmt.Errorf("describe: the document lists no fields")
	}
	v := &describeCheck{cfg: cfg, fields: map[string]*sfField{}, relations: map[string]bool{}}
	for i := range d.Fields {
		f := &d.Fields[i]
		v.fields[strings.ToLower(f.Name)] = f
		if f.RelationshipName != "" {
			v.relations[strings.ToLower(f.RelationshipName)] = true
		}
	}
	for _, r := range d.ChildRelationships {
		if r.RelationshipName != "" {
			v.relations[strings.ToLower(r.RelationshipName)] = true
		}
	}
	v.run(d.Name)
	if len(v.problems) > 0 {
		return &ValidationError{Problems: v.problems}
	}
	return nil
}

type describeCheck struct {
	cfg       *Config
	fields    map[string]*sfField
	relations map[string]bool
	problems  []Problem
}

func (v *describeCheck) addf(line int, field, format string, args ...any) {
	v.problems = append(v.problems, Problem{File: v.cfg.File, Line: line, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (v *describeCheck) field(name string) *sfField { return v.fields[strings.ToLower(name)] }

func (v *describeCheck) run(object string) {
	c := v.cfg
	if object != "" && !strings.EqualFold(object, c.Object) {
		v.addf(c.lines["salesforce.object"], "salesforce.object", "the describe is of %s, the mapping writes %s", object, c.Object)
		return
	}
	if f := v.field(c.ExternalIDField); f == nil {
		v.addf(c.lines["salesforce.external_id_field"], "salesforce.external_id_field", "%s has no field %s", c.Object, c.ExternalIDField)
	} else if !f.ExternalID {
		v.addf(c.lines["salesforce.external_id_field"], "salesforce.external_id_field", "%s is not an External ID field; upserts by it would fail", f.Name)
	}
	if c.Outbound != nil {
		if f := v.field(c.SyncField); f == nil {
			v.addf(c.lines["salesforce.sync_field"], "salesforce.sync_field", "%s has no field %s", c.Object, c.SyncField)
		} else if f.Type != "boolean" {
			v.addf(c.lines["salesforce.sync_field"], "salesforce.sync_field", "%s is a %s, not a checkbox", f.Name, f.Type)
		}
	}
	if c.AuditField != "" {
		if f := v.field(c.AuditField); f == nil {
			v.addf(c.lines["salesforce.audit_field"], "salesforce.audit_field", "%s has no field %s", c.Object, c.AuditField)
		} else if !f.Updateable || !compatible(TypeString, f.Type) {
			v.addf(c.lines["salesforce.audit_field"], "salesforce.audit_field", "%s must be an updateable text field (it is a %s, updateable %t)", f.Name, f.Type, f.Updateable)
		}
	}
	v.writeRules("inbound.fields", c.Inbound.Fields, true)
	v.writeRules("inbound.related.fields", c.Inbound.Related, false)
	if o := c.Outbound; o != nil {
		v.writeRules("outbound.writeback", o.Writeback, false)
		for i := range o.Fields {
			v.readRule(&o.Fields[i])
		}
	}
	if lc := c.Lifecycle; lc != nil {
		sf := v.field(lc.StageField)
		switch {
		case sf == nil:
			v.addf(lc.lines["stage_field"], "lifecycle.stage_field", "%s has no field %s", c.Object, lc.StageField)
		case !sf.picklist():
			v.addf(lc.lines["stage_field"], "lifecycle.stage_field", "%s is a %s, not a picklist of stages", sf.Name, sf.Type)
		default:
			if lc.OnHoldStage != "" && !sf.hasValue(lc.OnHoldStage) {
				v.addf(lc.lines["on_hold_stage"], "lifecycle.on_hold_stage", "%q is not a stage of %s (stages: %s)", lc.OnHoldStage, sf.Name, sf.values())
			}
			for _, st := range sortedKeys(lc.Stages) {
				if !sf.hasValue(st) {
					v.addf(lc.lines["stages."+st], "lifecycle.stages."+st, "%q is not a stage of %s (stages: %s)", st, sf.Name, sf.values())
				}
			}
		}
		for _, p := range lc.DeclineReason {
			v.readPath(lc.lines["decline_reason.from"], "lifecycle.decline_reason.from", p)
		}
	}
	for _, name := range sortedKeys(c.Ownership.Fields) {
		if v.field(name) == nil {
			v.addf(c.Ownership.lines[name], "ownership.fields."+name, "%s has no field %s", c.Object, name)
		}
	}
}

// writeRules checks rules that write Salesforce fields; withCreate says
// whether their create event creates the record (inbound.fields) or every
// event updates an existing one.
func (v *describeCheck) writeRules(section string, rules []FieldRule, withCreate bool) {
	for i := range rules {
		r := &rules[i]
		field := fmt.Sprintf("%s[%d] (%s)", section, r.Index, r.To)
		f := v.field(r.To)
		if f == nil {
			v.addf(r.Line, field+".to", "%s has no field %s", v.cfg.Object, r.To)
			continue
		}
		if withCreate && r.OnCreate && !f.Createable {
			v.addf(r.Line, field+".to", "%s cannot be set when the %s is created (not createable); add on: [update]", f.Name, v.cfg.Object)
		}
		if (r.OnUpdate || !withCreate) && !f.Updateable {
			v.addf(r.Line, field+".to", "%s cannot be updated (not updateable)%s", f.Name, map[bool]string{true: "; add on: [create]", false: ""}[withCreate && f.Createable])
		}
		if !compatible(r.As, f.Type) {
			v.addf(r.Line, field+".as", "%s is a %s field; as: %s does not fit", f.Name, f.Type, r.As)
		}
		if r.MaxLength > 0 && f.Length > 0 && r.MaxLength > f.Length && compatible(TypeString, f.Type) {
			v.addf(r.Line, field+".max_length", "%d is longer than %s holds (%d characters)", r.MaxLength, f.Name, f.Length)
		}
		if !f.picklist() || !f.RestrictedPicklist {
			continue
		}
		check := func(val any, line int, where string) {
			if s, ok := scalarText(val); ok && !f.hasValue(s) {
				v.addf(line, where, "%q is not a value of the picklist %s (values: %s)", s, f.Name, f.values())
			}
		}
		if r.hasValue && r.valueMap == nil && r.value != nil {
			check(r.value, r.Line, field+".value")
		}
		if r.hasDefault {
			check(r.def, r.Line, field+".default")
		}
		if vm := r.valueMap; vm != nil {
			if r.reverse {
				for _, k := range sortedKeys(vm.Values) {
					check(k, vm.lines[k], "value_maps."+vm.Name+".values."+k)
				}
			} else {
				for _, k := range sortedKeys(vm.Values) {
					check(vm.Values[k], vm.lines[k], "value_maps."+vm.Name+".values."+k)
				}
				if vm.HasDefault {
					check(vm.Default, vm.Line, "value_maps."+vm.Name+".default")
				}
			}
		}
	}
}

// readRule checks what an outbound rule reads from the opportunity.
func (v *describeCheck) readRule(r *FieldRule) {
	field := fmt.Sprintf("outbound.fields[%d] (%s)", r.Index, r.To)
	var paths []Path
	paths = append(paths, r.from...)
	if r.template != nil {
		for _, p := range r.template.parts {
			if p.path != nil {
				paths = append(paths, *p.path)
			}
		}
	}
	if r.list != nil {
		paths = append(paths, r.list.from...)
	}
	for _, p := range paths {
		v.readPath(r.Line, field+".from", p)
	}
	if r.when != nil {
		for _, p := range r.when.preds {
			v.readPath(r.Line, field+".when", p.path)
		}
	}
	// A value map read forwards from a picklist: its keys are the
	// picklist's values.
	if vm := r.valueMap; vm != nil && !r.reverse && len(r.from) == 1 && len(r.from[0].segments) == 1 {
		if f := v.field(r.from[0].segments[0].name); f != nil && f.picklist() {
			for _, k := range sortedKeys(vm.Values) {
				if !f.hasValue(k) {
					v.addf(vm.lines[k], "value_maps."+vm.Name+".values."+k, "%q is not a value of the picklist %s, which the rule at line %d reads (values: %s)", k, f.Name, r.Line, f.values())
				}
			}
		}
	}
}

// readPath checks the first segment of an opportunity path: a field, a
// parent relationship (Account) or a child relationship
// (OpportunityContactRoles). Deeper segments are in other objects'
// describes and are not checked.
func (v *describeCheck) readPath(line int, field string, p Path) {
	if len(p.segments) == 0 {
		return
	}
	name := p.segments[0].name
	if len(p.segments) == 1 {
		if v.field(name) == nil {
			v.addf(line, field, "%s has no field %s", v.cfg.Object, name)
		}
		return
	}
	if !v.relations[strings.ToLower(name)] {
		v.addf(line, field, "%s has no relationship %s (in %s)", v.cfg.Object, name, p.String())
	}
}
