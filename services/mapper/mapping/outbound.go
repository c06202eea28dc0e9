package mapping

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Opportunity is a Salesforce opportunity as the salesforce-adapter
// publishes it (record_json of OpportunityObserved): canonical field names,
// the parent Account, and the OpportunityContactRoles and
// Microsoft_Solutions__r child relationships as {records: [...]}.
type Opportunity struct {
	doc map[string]any
}

// ParseOpportunity decodes an opportunity record. Numbers keep their text.
func ParseOpportunity(data []byte) (Opportunity, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return Opportunity{}, fmt.Errorf("parse opportunity: %w", err)
	}
	if doc == nil {
		return Opportunity{}, fmt.Errorf("parse opportunity: not a JSON object")
	}
	return Opportunity{doc: doc}, nil
}

// ID returns the opportunity's Id.
func (o Opportunity) ID() string { return o.Text("Id") }

// Text returns the text of the scalar at path, "" when absent.
func (o Opportunity) Text(path string) string {
	p, err := ParsePath(path)
	if err != nil {
		return ""
	}
	s, _ := scalarText(p.first(o.doc))
	return s
}

// Field returns a top-level field's value (nil when absent or null).
func (o Opportunity) Field(name string) any {
	v, _ := memberOf(o.doc, name)
	return v
}

// With returns a copy of o with top-level fields replaced, so the mapper
// can project the values it decided on rather than the ones observed.
func (o Opportunity) With(fields map[string]any) Opportunity {
	doc := maps.Clone(o.doc)
	if doc == nil {
		doc = map[string]any{}
	}
	for k, v := range fields {
		for existing := range doc {
			if strings.EqualFold(existing, k) && existing != k {
				delete(doc, existing)
			}
		}
		doc[k] = v
	}
	return Opportunity{doc: doc}
}

// Value returns the value at path in the referral (nil when absent).
func (r Referral) Value(path string) any {
	p, err := ParsePath(path)
	if err != nil {
		return nil
	}
	return p.first(r.doc)
}

// OutboundProjection is what the outbound rules make of an opportunity:
// referral paths and their values.
type OutboundProjection struct {
	// Event is the write the projection is for.
	Event Event
	// Values maps dotted referral paths to values: string, json.Number,
	// bool, []any of objects (lists), or nil to clear.
	Values map[string]any
	// Results reports every rule, in file order.
	Results []FieldResult

	rules map[string]*FieldRule
}

// ProjectOutbound maps an opportunity for event ev. Rules that cannot map
// it (a required value missing, a value that does not convert) make a
// *ProjectionError; Results still reports every rule.
func (c *Config) ProjectOutbound(o Opportunity, ev Event) (OutboundProjection, error) {
	if c.Outbound == nil {
		return OutboundProjection{}, ErrNoOutbound
	}
	rules := c.Outbound.Fields
	p := OutboundProjection{Event: ev, Values: map[string]any{}, rules: map[string]*FieldRule{}}
	proj, results, err := c.project(Referral{doc: o.doc}, ev, "outbound.fields", rules)
	p.Results = results
	for k, v := range proj.Fields {
		p.Values[k] = v
	}
	for i := range rules {
		if _, ok := p.Values[rules[i].To]; ok && p.rules[rules[i].To] == nil {
			if r := &rules[i]; r.applies(ev) && (r.when == nil || r.when.holds(o.doc)) {
				p.rules[r.To] = r
			}
		}
	}
	return p, err
}

// text returns a projected value as text.
func (p OutboundProjection) text(path string) string {
	s, _ := scalarText(p.Values[path])
	return s
}

// CreateBody renders the complete referral create body: the projected
// values nested at their paths, and externalReferenceId = the opportunity
// id (Partner Center has no upsert; the partnercenter-adapter finds an
// earlier create by it).
func (p OutboundProjection) CreateBody(opportunityID string) []byte {
	body := map[string]any{}
	for _, path := range sortedKeys(p.Values) {
		setPath(body, strings.Split(path, "."), p.Values[path])
	}
	body["externalReferenceId"] = opportunityID
	b, _ := json.Marshal(body)
	return b
}

// Hash identifies the projected values.
func (p OutboundProjection) Hash() string {
	b, _ := json.Marshal(p.Values)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func setPath(obj map[string]any, segs []string, v any) {
	for _, s := range segs[:len(segs)-1] {
		next, ok := obj[s].(map[string]any)
		if !ok {
			next = map[string]any{}
			obj[s] = next
		}
		obj = next
	}
	obj[segs[len(segs)-1]] = v
}

// CheckCreate runs the checks Partner Center enforces on a new referral
// (reference §2.14 and the connector's documented validations) before
// anything is sent, and returns what a seller must fix, in plain words:
// the rules that could not map the opportunity, a two-letter ISO 3166
// customer country, a co-sell solution and a customer contact when
// Microsoft's help is requested, a deal value above zero, a three-letter
// currency, and every field Partner Center requires.
func (c *Config) CheckCreate(o Opportunity, p OutboundProjection, projErr error) []string {
	var problems []string
	var pe *ProjectionError
	if errors.As(projErr, &pe) {
		for _, fe := range pe.Fields {
			problems = append(problems, c.sellerMessage(o, fe))
		}
	}
	failed := func(path string) bool {
		if pe == nil {
			return false
		}
		return slices.ContainsFunc(pe.Fields, func(fe *FieldError) bool { return fe.Field == path })
	}
	source := func(path, fallback string) string {
		if r := c.outboundRule(path); r != nil {
			return humanSource(r)
		}
		return fallback
	}
	text := func(path string) string { s, _ := scalarText(p.Values[path]); return strings.TrimSpace(s) }

	if !failed("customerProfile.address.country") {
		switch country := text("customerProfile.address.country"); {
		case country == "":
			problems = append(problems, fmt.Sprintf("The customer's country is missing: fill in %s with a two-letter ISO 3166 country code, for example US, GB or DE.",
				source("customerProfile.address.country", "the account's billing country")))
		case !IsCountryCode(country):
			problems = append(problems, fmt.Sprintf("The customer's country %q (%s) is not a two-letter ISO 3166 country code; Partner Center needs one, for example US, GB or DE.",
				country, source("customerProfile.address.country", "the account's billing country")))
		}
	}
	if !failed("customerProfile.name") && text("customerProfile.name") == "" {
		problems = append(problems, fmt.Sprintf("The customer's name is missing: fill in %s.", source("customerProfile.name", "the account name")))
	}
	code := text("inviteContext.assistanceRequestCode")
	helpRequested := code != "" && !strings.EqualFold(code, "Unknown")
	helpWhy := "the referral is a co-sell (Shared) referral"
	if helpRequested {
		helpWhy = "Microsoft's help is requested"
		if r := c.outboundRule("inviteContext.assistanceRequestCode"); r != nil && len(r.from) > 0 {
			if v := o.Text(r.from[0].String()); v != "" {
				helpWhy = fmt.Sprintf("Microsoft's help is requested (%s: %s)", humanSource(r), v)
			}
		}
	}
	if helpRequested || strings.EqualFold(text("type"), "Shared") {
		if !hasItemWith(p.Values["details.requirements.solutions"], "id") {
			problems = append(problems, fmt.Sprintf("%s, so Partner Center needs a co-sell solution: add a Microsoft Solution with its Solution ID to the opportunity (%s).",
				upperFirst(helpWhy), source("details.requirements.solutions", "Microsoft Solutions")))
		}
	}
	if helpRequested && !hasItemWith(p.Values["customerProfile.team"], "") {
		problems = append(problems, fmt.Sprintf("%s, so Partner Center needs a customer contact: add a contact role to the opportunity.", upperFirst(helpWhy)))
	}
	if !failed("details.dealValue") {
		v, isNum := p.Values["details.dealValue"].(json.Number)
		f, err := v.Float64()
		if !isNum || err != nil || f <= 0 {
			problems = append(problems, fmt.Sprintf("The deal value must be more than zero: fill in %s.", source("details.dealValue", "Amount")))
		}
	}
	if cur := text("details.currency"); cur != "" && !failed("details.currency") && (len(cur) != 3 || strings.ToUpper(cur) != cur) {
		problems = append(problems, fmt.Sprintf("The currency %q is not a three-letter ISO 4217 code such as USD or EUR.", cur))
	}
	// A value a map does not know is not dropped silently.
	for i := range c.Outbound.Fields {
		r := &c.Outbound.Fields[i]
		if r.valueMap == nil || !r.applies(Create) || (r.when != nil && !r.when.holds(o.doc)) || failed(r.To) {
			continue
		}
		if _, set := p.Values[r.To]; !set {
			if v := firstText(o, r); v != "" {
				problems = append(problems, fmt.Sprintf("%s %q has no equivalent in Partner Center's %s; choose another value.", upperFirst(humanSource(r)), v, strings.TrimPrefix(humanTarget(r.To), "the ")))
			}
		}
	}
	for _, req := range []string{"type"} {
		if text(req) == "" && !failed(req) {
			problems = append(problems, "The mapping produced no referral "+req+" for this opportunity; ask your administrator to check the outbound mapping.")
		}
	}
	return problems
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	r := []rune(s)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// hasItemWith reports whether a list value has an item (with a non-empty
// member, when member is set).
func hasItemWith(v any, member string) bool {
	items, _ := v.([]any)
	for _, it := range items {
		m, ok := it.(map[string]any)
		if !ok {
			continue
		}
		if member == "" {
			return len(m) > 0
		}
		if s, _ := scalarText(m[member]); strings.TrimSpace(s) != "" {
			return true
		}
	}
	return false
}

// outboundRule returns the first outbound rule writing path.
func (c *Config) outboundRule(path string) *FieldRule {
	if c.Outbound == nil {
		return nil
	}
	for i := range c.Outbound.Fields {
		if c.Outbound.Fields[i].To == path {
			return &c.Outbound.Fields[i]
		}
	}
	return nil
}

// sellerMessage turns a rule failure into what a seller reads.
func (c *Config) sellerMessage(o Opportunity, fe *FieldError) string {
	r := c.outboundRule(fe.Field)
	if r != nil && r.Message != "" {
		return r.Message
	}
	target := humanTarget(fe.Field)
	if r == nil {
		return fmt.Sprintf("Partner Center needs %s: %s.", target, fe.Message)
	}
	src := humanSource(r)
	if strings.Contains(fe.Message, "has no value") || strings.Contains(fe.Message, "has no entry") {
		if v := firstText(o, r); v != "" && r.valueMap != nil {
			return fmt.Sprintf("%s %q has no equivalent in Partner Center's %s.", upperFirst(src), v, target)
		}
		return fmt.Sprintf("Partner Center needs %s: fill in %s.", target, src)
	}
	msg := fe.Message
	if i := strings.Index(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return fmt.Sprintf("%s cannot be used as %s: %s.", upperFirst(src), target, msg)
}

func firstText(o Opportunity, r *FieldRule) string {
	for _, p := range r.from {
		if s, ok := scalarText(p.first(o.doc)); ok && s != "" {
			return s
		}
	}
	return ""
}

// humanTarget names a referral path in words.
func humanTarget(path string) string {
	switch path {
	case "name":
		return "a referral name"
	case "customerProfile.name":
		return "the customer's name"
	case "customerProfile.address.country":
		return "the customer's country"
	case "details.dealValue":
		return "the deal value"
	case "details.currency":
		return "the deal currency"
	case "details.closingDateTime":
		return "the closing date"
	case "details.notes":
		return "the notes"
	case "inviteContext.assistanceRequestCode":
		return "the kind of help requested from Microsoft"
	case "customerProfile.team":
		return "a customer contact"
	case "details.requirements.solutions":
		return "a co-sell solution"
	}
	return "the referral's " + path
}

// humanSource names where a rule reads, in Salesforce's words: "Amount",
// "Billing Country on the account".
func humanSource(r *FieldRule) string {
	var paths []Path
	switch {
	case r.list != nil:
		paths = r.list.from
	case r.template != nil:
		for _, p := range r.template.parts {
			if p.path != nil {
				paths = append(paths, *p.path)
			}
		}
	default:
		paths = r.from
	}
	if len(paths) == 0 {
		return "the mapping's constant"
	}
	names := make([]string, 0, len(paths))
	for _, p := range paths {
		names = append(names, humanPath(p))
	}
	return strings.Join(names, " or ")
}

// humanPath renders an opportunity path in words.
func humanPath(p Path) string {
	var segs []string
	for _, s := range p.segments {
		if s.name == "records" {
			continue
		}
		segs = append(segs, words(s.name))
	}
	switch len(segs) {
	case 0:
		return p.String()
	case 1:
		return segs[0]
	}
	return segs[len(segs)-1] + " on the " + strings.ToLower(segs[0])
}

// words turns an API name into words: Billing_Country__c and
// BillingCountry both become "Billing Country".
func words(name string) string {
	name = strings.TrimSuffix(strings.TrimSuffix(name, "__c"), "__r")
	if strings.Contains(name, "_") {
		return strings.ReplaceAll(name, "_", " ")
	}
	var b strings.Builder
	rs := []rune(name)
	for i, r := range rs {
		if i > 0 && unicode.IsUpper(r) && (unicode.IsLower(rs[i-1]) || (i+1 < len(rs) && unicode.IsLower(rs[i+1]) && unicode.IsUpper(rs[i-1]))) {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// PatchOp is one JSON Patch operation Partner Center accepts.
type PatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// StatusChange is a lifecycle move of the referral.
type StatusChange struct {
	// Action is what the stage does (accept, decline, won, lost).
	Action StageAction
	// Stage is the opportunity stage that asks for it.
	Stage string
	// From and To are "status/substatus" before and after.
	From, To string
	// Reason is the decline's statusReason.
	Reason string
}

// PatchPlan is how to bring a referral in line with an opportunity.
type PatchPlan struct {
	// Ops is the JSON Patch to send; empty when nothing differs (or the
	// changes are held).
	Ops []PatchOp
	// Status is the lifecycle change the ops carry, if any.
	Status *StatusChange
	// Held says why differing fields are not sent (the inbound referral
	// is not accepted yet, or it is closed); empty otherwise.
	Held string
	// Problems are values that could not be mapped (in plain words); their
	// ops are left out, the others still go.
	Problems []string
	// Results reports every update rule and the lifecycle, in file order.
	Results []FieldResult
	// Values are the referral values the ops write, by dotted path (for
	// lists, the items appended).
	Values map[string]any
}

// OpsJSON renders the ops.
func (p PatchPlan) OpsJSON() []byte {
	b, _ := json.Marshal(p.Ops)
	return b
}

// Patch builds the JSON Patch that brings the referral current in line
// with opportunity o, for the rules that read one of the dirty Salesforce
// fields (every update rule when dirty is nil). Values already equal are
// left out. A stage with a lifecycle action changes the status when
// Partner Center's transition table allows it. While an inbound referral
// is not accepted (status New) field changes are held back unless the same
// patch accepts or declines it; a closed referral takes no changes.
func (c *Config) Patch(o Opportunity, current Referral, dirty map[string]bool) PatchPlan {
	plan := PatchPlan{Values: map[string]any{}}
	if c.Outbound == nil {
		plan.Held = ErrNoOutbound.Error()
		return plan
	}
	isDirty := func(r *FieldRule) bool {
		if dirty == nil {
			return true
		}
		for _, f := range r.reads() {
			for d := range dirty {
				if strings.EqualFold(d, f) {
					return true
				}
			}
		}
		return false
	}
	var fieldOps []PatchOp
	var fieldIdx []int
	for i := range c.Outbound.Fields {
		rule := &c.Outbound.Fields[i]
		res := FieldResult{Target: rule.To, Rule: fmt.Sprintf("outbound.fields[%d]", rule.Index), Line: rule.Line, Source: rule.describeSource()}
		switch {
		case !rule.applies(Update):
			res.Status, res.Reason = FieldSkipped, "the rule applies on create only"
		case !isDirty(rule):
			res.Status, res.Reason = FieldSkipped, "none of the fields it reads changed"
		case rule.when != nil && !rule.when.holds(o.doc):
			res.Status, res.Reason = FieldSkipped, "its condition does not hold ("+rule.when.String()+")"
		default:
			v, set, err := rule.apply(o.doc)
			switch {
			case err != nil:
				res.Status, res.Reason = FieldFailed, err.Error()
				plan.Problems = append(plan.Problems, c.sellerMessage(o, &FieldError{Field: rule.To, Line: rule.Line, Message: err.Error()}))
			case !set:
				res.Status, res.Reason = FieldSkipped, "the opportunity has no value; the referral keeps its own"
			case rule.list != nil:
				added := missingItems(v, current.Value(rule.To), rule.list.key)
				if len(added) == 0 {
					res.Status, res.Reason = FieldUnchanged, "every item is already on the referral"
					break
				}
				for _, it := range added {
					fieldOps = append(fieldOps, PatchOp{Op: "add", Path: jsonPointer(rule.To) + "/-", Value: it})
					fieldIdx = append(fieldIdx, len(plan.Results))
				}
				plan.Values[rule.To] = added
				res.Status, res.Value, res.Reason = FieldSet, added, fmt.Sprintf("%d item(s) appended", len(added))
			case sameValue(v, current.Value(rule.To)):
				res.Status, res.Value, res.Reason = FieldUnchanged, v, "the referral already has this value"
			default:
				fieldOps = append(fieldOps, PatchOp{Op: "replace", Path: jsonPointer(rule.To), Value: v})
				fieldIdx = append(fieldIdx, len(plan.Results))
				plan.Values[rule.To] = v
				res.Status, res.Value = FieldSet, v
				if v == nil {
					res.Status = FieldCleared
				}
			}
		}
		plan.Results = append(plan.Results, res)
	}

	curStatus, curSub := current.Text("status"), current.Text("substatus")
	var statusOps []PatchOp
	if lc := c.Lifecycle; lc != nil && (dirty == nil || c.lifecycleDirty(dirty)) {
		res := FieldResult{Target: "status/substatus", Rule: "lifecycle.stages", Line: lc.Line, Source: lc.StageField}
		stage := o.Text(lc.StageField)
		action, ok := lc.Stages[stage]
		if ok {
			res.Line = lc.lines["stages."+stage]
		}
		status, sub := action.Status()
		switch {
		case !ok:
			res.Status, res.Reason = FieldSkipped, fmt.Sprintf("stage %q does not change the referral's status", stage)
		case curStatus == status && curSub == sub:
			res.Status, res.Value, res.Reason = FieldUnchanged, status+"/"+sub, "the referral already has this status"
		case curStatus == "Closed":
			res.Status, res.Reason = FieldSkipped, fmt.Sprintf("the referral is closed (%s) in Partner Center and can no longer change", curSub)
		case !allowedTransition(curStatus, status, sub):
			res.Status, res.Reason = FieldSkipped, fmt.Sprintf("Partner Center does not allow %s/%s to become %s/%s", curStatus, curSub, status, sub)
		default:
			change := &StatusChange{Action: action, Stage: stage, From: curStatus + "/" + curSub, To: status + "/" + sub}
			statusOps = append(statusOps, PatchOp{Op: "replace", Path: "/status", Value: status}, PatchOp{Op: "replace", Path: "/substatus", Value: sub})
			plan.Values["status"], plan.Values["substatus"] = status, sub
			if action == ActionDecline {
				reason := ""
				for _, p := range lc.DeclineReason {
					if s, ok := scalarText(p.first(o.doc)); ok && strings.TrimSpace(s) != "" {
						reason = strings.TrimSpace(s)
						break
					}
				}
				if reason == "" {
					reason = lc.DeclineDefault
				}
				change.Reason = reason
				statusOps = append(statusOps, PatchOp{Op: "replace", Path: "/statusReason", Value: reason})
				plan.Values["statusReason"] = reason
			}
			plan.Status = change
			res.Status, res.Value = FieldSet, change.To
			if change.Reason != "" {
				res.Reason = "statusReason: " + change.Reason
			}
		}
		plan.Results = append(plan.Results, res)
	}

	switch {
	case curStatus == "Closed" && len(fieldOps) > 0:
		plan.Held = fmt.Sprintf("the referral is closed (%s) in Partner Center and can no longer change", curSub)
	case curStatus == "New" && len(fieldOps) > 0 && plan.Status == nil:
		plan.Held = "the referral is not accepted yet; the changes are sent when the opportunity moves to the accepting stage"
		if lc := c.Lifecycle; lc != nil {
			for _, st := range sortedKeys(lc.Stages) {
				if lc.Stages[st] == ActionAccept {
					plan.Held = fmt.Sprintf("the referral is not accepted yet; the changes are sent when the opportunity moves to %s", st)
					break
				}
			}
		}
	}
	if plan.Held != "" {
		for _, i := range fieldIdx {
			plan.Results[i].Status, plan.Results[i].Reason = FieldSkipped, "held: "+plan.Held
		}
		for k := range plan.Values {
			if k != "status" && k != "substatus" && k != "statusReason" {
				delete(plan.Values, k)
			}
		}
		fieldOps = nil
	}
	plan.Ops = append(fieldOps, statusOps...)
	return plan
}

// lifecycleDirty reports whether a dirty field drives the lifecycle.
func (c *Config) lifecycleDirty(dirty map[string]bool) bool {
	lc := c.Lifecycle
	for d := range dirty {
		if strings.EqualFold(d, lc.StageField) {
			return true
		}
	}
	return false
}

// reads lists the top-level opportunity fields a rule reads (sources and
// condition), so a change to any of them re-runs it.
func (r *FieldRule) reads() []string {
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
	if r.when != nil {
		for _, p := range r.when.preds {
			paths = append(paths, p.path)
		}
	}
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if len(p.segments) > 0 {
			out = append(out, p.segments[0].name)
		}
	}
	return out
}

// ReadsFields lists the top-level opportunity fields the outbound update
// rules and the lifecycle read: a change to one of them may change the
// referral.
func (c *Config) ReadsFields() []string {
	seen := map[string]bool{}
	var out []string
	add := func(f string) {
		if f != "" && !seen[strings.ToLower(f)] {
			seen[strings.ToLower(f)] = true
			out = append(out, f)
		}
	}
	if c.Outbound != nil {
		for i := range c.Outbound.Fields {
			if c.Outbound.Fields[i].OnUpdate {
				for _, f := range c.Outbound.Fields[i].reads() {
					add(f)
				}
			}
		}
	}
	if c.Lifecycle != nil {
		add(c.Lifecycle.StageField)
		for _, p := range c.Lifecycle.DeclineReason {
			if len(p.segments) > 0 {
				add(p.segments[0].name)
			}
		}
	}
	slices.Sort(out)
	return out
}

func jsonPointer(path string) string {
	return "/" + strings.ReplaceAll(path, ".", "/")
}

// missingItems returns the items of list want whose key the referral's
// list (have) does not hold yet.
func missingItems(want, have any, key string) []any {
	items, _ := want.([]any)
	existing, _ := have.([]any)
	var out []any
	for _, it := range items {
		m, _ := it.(map[string]any)
		k, _ := scalarText(m[key])
		found := slices.ContainsFunc(existing, func(e any) bool {
			em, _ := e.(map[string]any)
			if em == nil {
				return false
			}
			v, _ := memberOf(em, key)
			s, _ := scalarText(v)
			return strings.EqualFold(strings.TrimSpace(s), strings.TrimSpace(k))
		})
		if !found {
			out = append(out, it)
		}
	}
	return out
}

// sameValue compares a mapped value with a referral's: numbers by value,
// date-times by instant, null and "" alike.
func sameValue(a, b any) bool {
	as, aok := scalarText(a)
	bs, bok := scalarText(b)
	if a == nil || (aok && as == "") {
		return b == nil || (bok && bs == "")
	}
	if b == nil || !aok || !bok {
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		return bytes.Equal(ja, jb)
	}
	if as == bs {
		return true
	}
	if fa, err := strconv.ParseFloat(as, 64); err == nil {
		if fb, err := strconv.ParseFloat(bs, 64); err == nil {
			return fa == fb
		}
	}
	if ta, err := parseTime(as); err == nil {
		if tb, err := parseTime(bs); err == nil {
			return ta.Equal(tb)
		}
	}
	return false
}
