package mapping

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// listSource builds a list of objects (referral team members, solutions)
// from every value its paths reach.
type listSource struct {
	// from are the paths; every value of every path is an element, in
	// order (not only the first, as for a plain from).
	from Source
	// split cuts text elements at any of these characters ("a;b" is two
	// elements).
	split string
	// prefer moves the elements that match to the front (the primary
	// contact first); limit keeps the first n (0 = all).
	prefer *Condition
	limit  int
	// item renders one object per element; members whose placeholders
	// have no value are left out.
	item []listMember
	// key names the member that identifies an item: an update appends the
	// items whose key the referral's list does not have yet.
	key string
}

type listMember struct {
	name string
	tmpl *template
}

func mustPath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		return Path{}
	}
	return p
}

// patchTargets lists the dotted referral paths Partner Center's PATCH can
// change, for messages.
func patchTargets() []string {
	var out []string
	for _, p := range PatchPaths {
		if strings.HasSuffix(p, "/-") {
			continue
		}
		out = append(out, strings.ReplaceAll(strings.TrimPrefix(p, "/"), "/", "."))
	}
	return out
}

// checkPath checks a referral path against the referral schema while the
// parser reads referral paths (inbound sources).
func (p *parser) checkPath(n *yaml.Node, field string, path Path) {
	if !p.referralSide || len(path.segments) == 0 {
		return
	}
	if _, bad, ok := p.schema.lookup(path); !ok {
		p.addf(n, field, "the Partner Center referral has no field %q (in %q; reference §2.12)", bad, path.String())
	}
}

// canonicalPath spells a referral path the way Partner Center does.
func (p *parser) canonicalPath(s string) string {
	if lk, _, ok := p.schema.lookup(mustPath(s)); ok {
		return lk.canonical
	}
	return s
}

// referralTarget checks the referral path an outbound rule writes and
// returns its schema node, nil when it cannot be written.
func (p *parser) referralTarget(n *yaml.Node, field, s string) *SchemaNode {
	path, err := ParsePath(s)
	if err != nil {
		p.addf(n, field, "%v", err)
		return nil
	}
	for _, seg := range path.segments {
		if seg.each {
			p.addf(n, field, "a target names one field; build lists with list:")
			return nil
		}
	}
	lk, bad, ok := p.schema.lookup(path)
	switch {
	case !ok:
		p.addf(n, field, "the Partner Center referral has no field %q (in %q; reference §2.12)", bad, s)
		return nil
	case lk.server:
		p.addf(n, field, "%s is set by Partner Center and cannot be written", lk.canonical)
		return nil
	case lk.node.Kind == KindObject:
		p.addf(n, field, "%s is an object; write its members one by one (e.g. %s.%s)", lk.canonical, lk.canonical, lk.node.Props[0].Name)
		return nil
	}
	return lk.node
}

// inferType is the conversion an outbound rule gets when it names none:
// the one the target's type needs.
func inferType(n *SchemaNode) Type {
	switch n.Kind {
	case KindNumber:
		return TypeNumber
	case KindBool:
		return TypeBool
	case KindDateTime:
		return TypeDateTime
	}
	return TypeString
}

// checkTargetType checks that what an outbound rule produces fits the
// referral property it writes.
func (p *parser) checkTargetType(f map[string]*yaml.Node, n *yaml.Node, field string, rule *FieldRule, target *SchemaNode) {
	if target.Kind == KindArray {
		if rule.list == nil && !rule.hasValue {
			p.addf(n, field, "%s is a list: build its items with list:", rule.To)
		}
		return
	}
	if rule.list != nil {
		p.addf(f["list"], field+".list", "only applies to list fields; %s is a %s", rule.To, target.Kind)
		return
	}
	ok := true
	switch target.Kind {
	case KindNumber:
		ok = rule.As == TypeNumber
	case KindDateTime:
		ok = rule.As == TypeDate || rule.As == TypeDateTime
	case KindBool:
		ok = rule.As == TypeBool
	}
	if !ok {
		at := f["as"]
		if at == nil {
			at = n
		}
		p.addf(at, field+".as", "%s is a %s in Partner Center; as: %s does not fit (use as: %s)", rule.To, target.Kind, rule.As, inferType(target))
	}
	if target.Kind != KindEnum {
		return
	}
	check := func(v any, at *yaml.Node, where string) {
		s, ok := scalarText(v)
		if ok && !target.enumHas(s) {
			p.addf(at, where, "%q is not a value of %s (allowed: %s)", s, rule.To, strings.Join(target.Enum, ", "))
		}
	}
	if rule.hasValue && rule.valueMap == nil && rule.value != nil {
		check(rule.value, f["value"], field+".value")
	}
	if rule.hasDefault {
		check(rule.def, f["default"], field+".default")
	}
	if vm := rule.valueMap; vm != nil && !rule.reverse {
		for _, k := range sortedKeys(vm.Values) {
			s, _ := scalarText(vm.Values[k])
			if !target.enumHas(s) {
				p.problems = append(p.problems, Problem{File: p.file, Line: vm.lines[k], Field: "value_maps." + vm.Name + ".values." + k,
					Message: fmt.Sprintf("%q is not a value of %s, which the rule at line %d writes with this map (allowed: %s)", s, rule.To, rule.Line, strings.Join(target.Enum, ", "))})
			}
		}
		if vm.HasDefault {
			check(vm.Default, f["map"], field+".map")
		}
	}
}

// checkReversible checks that a value map can be read backwards: no two
// entries map to the same value.
func (p *parser) checkReversible(n *yaml.Node, field string, vm *ValueMap) {
	if vm == nil {
		return
	}
	seen := map[string]string{}
	for _, k := range sortedKeys(vm.Values) {
		s, _ := scalarText(vm.Values[k])
		if other, dup := seen[s]; dup {
			p.addf(n, field, "value map %s cannot be read backwards: %q and %q both map to %q", vm.Name, other, k, s)
			continue
		}
		seen[s] = k
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// listSource reads a list: setting.
func (p *parser) listSource(n *yaml.Node, field string, target *SchemaNode) *listSource {
	f := p.fields(n, field, "from", "split", "prefer", "limit", "item", "key")
	if f == nil {
		return nil
	}
	ls := &listSource{}
	if v, ok := f["from"]; ok {
		ls.from = p.source(v, field+".from")
	} else {
		p.addf(n, field+".from", "missing: name the opportunity paths the items come from")
	}
	if v, ok := f["split"]; ok {
		ls.split, _ = p.str(v, field+".split")
	}
	if v, ok := f["prefer"]; ok {
		ls.prefer = p.condition(v, field+".prefer")
	}
	if v, ok := f["limit"]; ok {
		v = resolve(v)
		n, err := strconv.Atoi(v.Value)
		if err != nil || n <= 0 || v.Kind != yaml.ScalarNode {
			p.addf(v, field+".limit", "want a positive whole number, found %s", kindName(v))
		}
		ls.limit = n
	}
	var elem *SchemaNode
	if target != nil {
		elem = target.Elem
	}
	if v, ok := f["item"]; ok {
		v = resolve(v)
		if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
			p.addf(v, field+".item", "want a mapping of member: template, found %s", kindName(v))
		}
		for i := 0; v.Kind == yaml.MappingNode && i+1 < len(v.Content); i += 2 {
			k, val := v.Content[i], v.Content[i+1]
			mf := field + ".item." + k.Value
			name := k.Value
			if elem != nil && elem.Kind == KindObject {
				c := elem.child(name)
				if c == nil {
					known := make([]string, len(elem.Props))
					for j, pr := range elem.Props {
						known[j] = pr.Name
					}
					p.addf(k, mf, "the items of this list have no member %q (known: %s)", name, strings.Join(known, ", "))
					continue
				}
				name = c.Name
				if c.Kind == KindEnum {
					if s := resolve(val).Value; !strings.Contains(s, "{") && !c.enumHas(s) {
						p.addf(val, mf, "%q is not a value of %s (allowed: %s)", s, name, strings.Join(c.Enum, ", "))
					}
				}
			}
			s, ok := p.str(val, mf)
			if !ok {
				continue
			}
			t, err := parseTemplate(s)
			if err != nil {
				p.addf(val, mf, "%v", err)
				continue
			}
			ls.item = append(ls.item, listMember{name: name, tmpl: t})
		}
	} else {
		p.addf(n, field+".item", "missing: say how each item is built (member: template)")
	}
	if len(ls.item) > 0 {
		ls.key = ls.item[0].name
	}
	if v, ok := f["key"]; ok {
		if s, ok := p.str(v, field+".key"); ok {
			if !slices.ContainsFunc(ls.item, func(m listMember) bool { return strings.EqualFold(m.name, s) }) {
				p.addf(v, field+".key", "%q is not a member of item", s)
			}
			ls.key = s
		}
	}
	return ls
}

// requiredReferralPaths are what Partner Center refuses to create a
// referral without: a rule must write each on create (a prefix ending in
// "." means "some member of").
func requiredReferralPaths() []string {
	return []string{"type", "customerProfile.name", "customerProfile.address.country", "consent.", "details."}
}

func (p *parser) outbound(cfg *Config, n *yaml.Node) {
	f := p.fields(n, "outbound", "fields", "writeback", "name_marker")
	out := &Outbound{Line: resolve(n).Line}
	cfg.Outbound = out
	if f == nil {
		return
	}
	if v, ok := f["name_marker"]; ok {
		v = resolve(v)
		if v.Kind != yaml.ScalarNode {
			p.addf(v, "outbound.name_marker", "want text, found %s", kindName(v))
		} else if v.Tag != "!!null" {
			out.NameMarker = v.Value
		}
	}
	if v, ok := f["writeback"]; ok {
		out.Writeback, _ = p.ruleList(cfg, v, "outbound.writeback", toOpportunity)
	}
	fn, ok := f["fields"]
	if !ok {
		p.addf(n, "outbound.fields", "missing: list the referral fields to write")
		return
	}
	rules, seen := p.ruleList(cfg, fn, "outbound.fields", toReferral)
	out.Fields = rules
	if seen == nil {
		return
	}
	for _, req := range requiredReferralPaths() {
		found := false
		for target := range seen[Create] {
			if target == req || (strings.HasSuffix(req, ".") && strings.HasPrefix(target, req)) {
				found = true
			}
		}
		if !found {
			what := req
			if strings.HasSuffix(req, ".") {
				what = "any " + req + "* field"
			}
			p.addf(fn, "outbound.fields", "no rule writes %s on create; Partner Center refuses to create a referral without it", what)
		}
	}
}

func (p *parser) lifecycle(cfg *Config, n *yaml.Node) {
	f := p.fields(n, "lifecycle", "stage_field", "on_hold_stage", "stages", "decline_reason")
	lc := &Lifecycle{StageField: "StageName", Stages: map[string]StageAction{}, Line: resolve(n).Line, lines: map[string]int{}}
	cfg.Lifecycle = lc
	if f == nil {
		return
	}
	if v, ok := f["stage_field"]; ok {
		if s, ok := p.str(v, "lifecycle.stage_field"); ok {
			if !apiName.MatchString(s) {
				p.addf(v, "lifecycle.stage_field", "%q is not a Salesforce API name", s)
			}
			lc.StageField = s
		}
		lc.lines["stage_field"] = resolve(v).Line
	}
	if v, ok := f["on_hold_stage"]; ok {
		lc.OnHoldStage, _ = p.str(v, "lifecycle.on_hold_stage")
		lc.lines["on_hold_stage"] = resolve(v).Line
	} else {
		p.addf(n, "lifecycle.on_hold_stage", "missing: the stage inbound referrals wait in until accepted")
	}
	if v, ok := f["stages"]; ok {
		v = resolve(v)
		if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
			p.addf(v, "lifecycle.stages", "want a mapping of stage: action (accept, decline, won, lost), found %s", kindName(v))
		}
		for i := 0; v.Kind == yaml.MappingNode && i+1 < len(v.Content); i += 2 {
			k, val := v.Content[i], v.Content[i+1]
			field := "lifecycle.stages." + k.Value
			if _, dup := lc.Stages[k.Value]; dup {
				p.addf(k, field, "listed twice")
				continue
			}
			s, ok := p.str(val, field)
			if !ok {
				continue
			}
			switch a := StageAction(s); a {
			case ActionAccept, ActionDecline, ActionWon, ActionLost:
				lc.Stages[k.Value] = a
				lc.lines["stages."+k.Value] = k.Line
			default:
				p.addf(val, field, "unknown action %q (known: accept, decline, won, lost)", s)
			}
			if k.Value == lc.OnHoldStage {
				p.addf(k, field, "the on-hold stage cannot also %s the referral", s)
			}
		}
	} else {
		p.addf(n, "lifecycle.stages", "missing: say which stages accept, decline, win and lose the referral")
	}
	lc.DeclineDefault = "Declined by the partner."
	if v, ok := f["decline_reason"]; ok {
		df := p.fields(v, "lifecycle.decline_reason", "from", "default")
		if src, ok := df["from"]; ok {
			lc.DeclineReason = p.source(src, "lifecycle.decline_reason.from")
			lc.lines["decline_reason.from"] = resolve(src).Line
		}
		if d, ok := df["default"]; ok {
			lc.DeclineDefault, _ = p.str(d, "lifecycle.decline_reason.default")
		}
	}
}

func (p *parser) ownership(cfg *Config, n *yaml.Node) {
	f := p.fields(n, "ownership", "default", "fields")
	if f == nil {
		return
	}
	owner := func(v *yaml.Node, field string) (Owner, bool) {
		s, ok := p.str(v, field)
		if !ok {
			return "", false
		}
		switch o := Owner(s); o {
		case OwnerPartnerCenter, OwnerSalesforce, OwnerLatest:
			return o, true
		}
		p.addf(v, field, "unknown owner %q (known: partnercenter, salesforce, latest)", s)
		return "", false
	}
	if v, ok := f["default"]; ok {
		if o, ok := owner(v, "ownership.default"); ok {
			cfg.Ownership.Default = o
		}
	}
	if v, ok := f["fields"]; ok {
		v = resolve(v)
		if v.Kind != yaml.MappingNode {
			p.addf(v, "ownership.fields", "want a mapping of Salesforce field: owner, found %s", kindName(v))
			return
		}
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, val := v.Content[i], v.Content[i+1]
			field := "ownership.fields." + k.Value
			if !apiName.MatchString(k.Value) {
				p.addf(k, field, "%q is not a Salesforce API name", k.Value)
				continue
			}
			if _, dup := cfg.Ownership.Fields[k.Value]; dup {
				p.addf(k, field, "listed twice")
				continue
			}
			if o, ok := owner(val, field); ok {
				cfg.Ownership.Fields[k.Value] = o
				cfg.Ownership.lines[k.Value] = k.Line
			}
		}
	}
}
