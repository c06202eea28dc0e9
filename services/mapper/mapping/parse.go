package mapping

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// apiName is a Salesforce field or object API name.
var apiName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)

// requiredOnCreate returns the Opportunity fields Salesforce refuses to
// create a record without; the create event must map them.
func requiredOnCreate() []string { return []string{"Name", "StageName", "CloseDate"} }

// parser walks the YAML node tree, so every problem can name its line.
type parser struct {
	file    string
	version int
	// referralSide is set while paths name referral fields (inbound
	// sources), which are then checked against the referral schema.
	referralSide bool
	schema       *SchemaNode
	problems     []Problem
}

func (p *parser) addf(n *yaml.Node, field, format string, args ...any) {
	pr := Problem{File: p.file, Field: field, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		pr.Line, pr.Column = n.Line, n.Column
	}
	p.problems = append(p.problems, pr)
}

// Parse validates a mapping file's content; file names it in problems.
// It returns a *ValidationError listing every problem found.
func Parse(file string, data []byte) (*Config, error) {
	p := &parser{file: file, schema: ReferralSchema()}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		p.problems = append(p.problems, yamlProblem(file, err))
		return nil, &ValidationError{Problems: p.problems}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		p.addf(nil, "", "the file is empty")
		return nil, &ValidationError{Problems: p.problems}
	}
	cfg := p.config(doc.Content[0])
	if len(p.problems) > 0 {
		return nil, &ValidationError{Problems: p.problems}
	}
	return cfg, nil
}

// yamlLine finds "line N" in yaml.v3's syntax errors.
var yamlLine = regexp.MustCompile(`line (\d+)`)

func yamlProblem(file string, err error) Problem {
	pr := Problem{File: file, Message: "not valid YAML: " + err.Error()}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			pr.Line, _ = strconv.Atoi(m[1])
		}
	}
	return pr
}

// fields checks that n is a mapping with only known keys and returns its
// values by key.
func (p *parser) fields(n *yaml.Node, field string, known ...string) map[string]*yaml.Node {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.addf(n, field, "want a mapping (key: value lines), found %s", kindName(n))
		return nil
	}
	out := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := join(field, k.Value)
		if !slices.Contains(known, k.Value) {
			p.addf(k, name, "unknown setting %q (known here: %s)", k.Value, strings.Join(known, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			p.addf(k, name, "set twice")
			continue
		}
		out[k.Value] = v
	}
	return out
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("the value %q", n.Value)
	default:
		return "something else"
	}
}

func join(parent, child string) string {
	if parent == "" {
		return child
	}
	return parent + "." + child
}

// str reads a non-empty string scalar.
func (p *parser) str(n *yaml.Node, field string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.addf(n, field, "want text, found %s", kindName(n))
		return "", false
	}
	if strings.TrimSpace(n.Value) == "" {
		p.addf(n, field, "must not be empty")
		return "", false
	}
	return n.Value, true
}

// scalar reads any scalar as a Go value: text, number, bool or nil.
func (p *parser) scalar(n *yaml.Node, field string) (any, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		p.addf(n, field, "want a single value, found %s", kindName(n))
		return nil, false
	}
	switch n.Tag {
	case "!!null":
		return nil, true
	case "!!bool":
		var b bool
		if err := n.Decode(&b); err != nil {
			p.addf(n, field, "%v", err)
			return nil, false
		}
		return b, true
	case "!!int", "!!float":
		var x any
		if err := n.Decode(&x); err != nil {
			p.addf(n, field, "%v", err)
			return nil, false
		}
		switch v := x.(type) {
		case int:
			return json.Number(strconv.Itoa(v)), true
		case int64:
			return json.Number(strconv.FormatInt(v, 10)), true
		case uint64:
			return json.Number(strconv.FormatUint(v, 10)), true
		case float64:
			return json.Number(strconv.FormatFloat(v, 'f', -1, 64)), true
		}
		return n.Value, true
	default:
		return n.Value, true
	}
}

func (p *parser) config(root *yaml.Node) *Config {
	top := p.fields(root, "", "version", "salesforce", "value_maps", "inbound", "outbound", "lifecycle", "ownership")
	cfg := &Config{File: p.file, Version: Version, Object: "Opportunity", ExternalIDField: "Referral_Identifier__c",
		SyncField: "Sync_with_Partner_Center__c", AuditField: "Audit__c",
		Ownership: Ownership{Default: OwnerLatest, Fields: map[string]Owner{}, lines: map[string]int{}},
		valueMaps: map[string]*ValueMap{}, lines: map[string]int{}}
	if top == nil {
		return cfg
	}
	if v, ok := top["version"]; !ok {
		p.addf(root, "version", "missing; this program reads version: 1 (inbound only) or %d", Version)
	} else if n := resolve(v); n.Kind != yaml.ScalarNode || (n.Value != "1" && n.Value != strconv.Itoa(Version)) {
		p.addf(n, "version", "unsupported version %s; this program reads version: 1 (inbound only) or %d", n.Value, Version)
	} else {
		cfg.Version, _ = strconv.Atoi(n.Value)
	}
	p.version = cfg.Version
	for _, key := range []string{"outbound", "lifecycle", "ownership"} {
		if n, ok := top[key]; ok && cfg.Version < 2 {
			p.addf(n, key, "needs version: 2 (this file says version: 1, which syncs Partner Center to Salesforce only); set version: 2 at the top")
			delete(top, key)
		}
	}
	if sf, ok := top["salesforce"]; ok {
		f := p.fields(sf, "salesforce", "object", "external_id_field", "sync_field", "audit_field")
		for key, dst := range map[string]*string{"object": &cfg.Object, "external_id_field": &cfg.ExternalIDField,
			"sync_field": &cfg.SyncField, "audit_field": &cfg.AuditField} {
			n, ok := f[key]
			if !ok {
				continue
			}
			field := "salesforce." + key
			cfg.lines[field] = resolve(n).Line
			if key == "audit_field" && resolve(n).Tag == "!!null" {
				*dst = "" // no audit write-back
				continue
			}
			if s, ok := p.str(n, field); ok {
				if !apiName.MatchString(s) {
					p.addf(n, field, "%q is not a Salesforce API name", s)
				}
				*dst = s
			}
		}
	}
	if vm, ok := top["value_maps"]; ok {
		p.valueMaps(cfg, vm)
	}
	if in, ok := top["inbound"]; ok {
		p.inbound(cfg, in)
	} else {
		p.addf(root, "inbound", "missing: the file must say how referrals become %ss", cfg.Object)
	}
	if n, ok := top["ownership"]; ok {
		p.ownership(cfg, n)
	}
	if n, ok := top["outbound"]; ok {
		p.outbound(cfg, n)
		if lc, ok := top["lifecycle"]; ok {
			p.lifecycle(cfg, lc)
		} else {
			p.addf(n, "lifecycle", "missing: with an outbound section, say which stages accept, decline, win and lose the referral")
		}
	} else if lc, ok := top["lifecycle"]; ok {
		p.addf(lc, "lifecycle", "only applies with an outbound section (the stages change referrals in Partner Center)")
	}
	return cfg
}

func (p *parser) valueMaps(cfg *Config, n *yaml.Node) {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.addf(n, "value_maps", "want a mapping of named value maps, found %s", kindName(n))
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := "value_maps." + k.Value
		if _, dup := cfg.valueMaps[k.Value]; dup {
			p.addf(k, field, "defined twice")
			continue
		}
		vm := &ValueMap{Name: k.Value, Values: map[string]any{}, Line: k.Line, lines: map[string]int{}}
		f := p.fields(v, field, "values", "default")
		if vals, ok := f["values"]; ok {
			vals = resolve(vals)
			if vals.Kind != yaml.MappingNode || len(vals.Content) == 0 {
				p.addf(vals, field+".values", "want a non-empty mapping of source value: Salesforce value, found %s", kindName(vals))
			} else {
				for j := 0; j+1 < len(vals.Content); j += 2 {
					kk, vv := vals.Content[j], vals.Content[j+1]
					if _, dup := vm.Values[kk.Value]; dup {
						p.addf(kk, field+".values."+kk.Value, "listed twice")
						continue
					}
					if x, ok := p.scalar(vv, field+".values."+kk.Value); ok {
						vm.Values[kk.Value] = x
						vm.lines[kk.Value] = kk.Line
					}
				}
			}
		} else if f != nil {
			p.addf(v, field+".values", "missing")
		}
		if d, ok := f["default"]; ok {
			if x, ok := p.scalar(d, field+".default"); ok {
				vm.Default, vm.HasDefault = x, true
			}
		}
		cfg.valueMaps[k.Value] = vm
	}
}

func (p *parser) inbound(cfg *Config, n *yaml.Node) {
	p.referralSide = true
	defer func() { p.referralSide = false }()
	f := p.fields(n, "inbound", "ignore", "account", "fields", "related")
	if f == nil {
		return
	}
	if ig, ok := f["ignore"]; ok {
		ig = resolve(ig)
		if ig.Kind != yaml.SequenceNode {
			p.addf(ig, "inbound.ignore", "want a list of rules, found %s", kindName(ig))
		} else {
			for i, r := range ig.Content {
				field := fmt.Sprintf("inbound.ignore[%d]", i)
				rf := p.fields(r, field, "reason", "when")
				if rf == nil {
					continue
				}
				rule := IgnoreRule{Line: resolve(r).Line}
				if rn, ok := rf["reason"]; ok {
					rule.Reason, _ = p.str(rn, field+".reason")
				} else {
					p.addf(r, field+".reason", "missing: say in plain words why such referrals are not synced")
				}
				if wn, ok := rf["when"]; ok {
					if c := p.condition(wn, field+".when"); c != nil {
						rule.When = *c
					}
				} else {
					p.addf(r, field+".when", "missing")
				}
				cfg.Inbound.Ignore = append(cfg.Inbound.Ignore, rule)
			}
		}
	}
	if an, ok := f["account"]; ok {
		af := p.fields(an, "inbound.account", "name", "country", "postal_code", "city", "state", "street")
		src := func(key string) Source {
			if v, ok := af[key]; ok {
				return p.source(v, "inbound.account."+key)
			}
			return nil
		}
		cfg.Inbound.Account = AccountRule{
			Name: src("name"), Country: src("country"), PostalCode: src("postal_code"),
			City: src("city"), State: src("state"), Street: src("street"),
		}
		if af != nil && len(cfg.Inbound.Account.Name) == 0 {
			p.addf(an, "inbound.account.name", "missing: an account is matched by its name")
		}
	}
	if rn, ok := f["related"]; ok {
		if p.version < 2 {
			p.addf(rn, "inbound.related", "needs version: 2; set version: 2 at the top")
		} else if rf := p.fields(rn, "inbound.related", "fields"); rf != nil {
			if fl, ok := rf["fields"]; ok {
				cfg.Inbound.Related, _ = p.ruleList(cfg, fl, "inbound.related.fields", toOpportunity)
			} else {
				p.addf(rn, "inbound.related.fields", "missing: list the %s fields Microsoft's referral writes", cfg.Object)
			}
		}
	}
	fn, ok := f["fields"]
	if !ok {
		p.addf(n, "inbound.fields", "missing: list the %s fields to write", cfg.Object)
		return
	}
	rules, seen := p.ruleList(cfg, fn, "inbound.fields", toOpportunity)
	cfg.Inbound.Fields = rules
	if seen == nil {
		return
	}
	for _, req := range requiredOnCreate() {
		if _, ok := seen[Create][req]; !ok {
			p.addf(fn, "inbound.fields", "no rule writes %s on create; Salesforce requires it to create an %s", req, cfg.Object)
		}
	}
}

// ruleKind says which way a field rule maps.
type ruleKind int

const (
	// toOpportunity rules read a referral and write a Salesforce field
	// (inbound, related, write-back).
	toOpportunity ruleKind = iota
	// toReferral rules read an opportunity and write a referral path
	// (outbound).
	toReferral
)

// ruleList reads a list of field rules and checks that no target is
// written twice for one event; seen maps each event's targets to the line
// of the rule writing them (0 for conditional rules), nil when the list is
// unusable.
func (p *parser) ruleList(cfg *Config, fn *yaml.Node, section string, kind ruleKind) ([]FieldRule, map[Event]map[string]int) {
	fn = resolve(fn)
	if fn.Kind != yaml.SequenceNode {
		p.addf(fn, section, "want a list of field rules, found %s", kindName(fn))
		return nil, nil
	}
	var rules []FieldRule
	seen := map[Event]map[string]int{Create: {}, Update: {}}
	for i, r := range fn.Content {
		field := fmt.Sprintf("%s[%d]", section, i)
		rule, ok := p.fieldRule(cfg, r, field, kind)
		rule.Index = i
		if rule.To != "" {
			field = fmt.Sprintf("%s (%s)", field, rule.To)
		}
		for _, ev := range []Event{Create, Update} {
			if rule.To == "" || !rule.applies(ev) {
				continue
			}
			line, dup := seen[ev][rule.To]
			if dup && rule.when == nil && line > 0 {
				p.addf(r, field+".to", "%s is already written on %s by the rule at line %d", rule.To, ev, line)
				ok = false
				break
			}
			if kind == toReferral {
				for other, ol := range seen[ev] {
					if strings.HasPrefix(other, rule.To+".") || strings.HasPrefix(rule.To, other+".") {
						p.addf(r, field+".to", "%s overlaps %s, written on %s by the rule at line %d; write the members of an object one by one", rule.To, other, ev, ol)
						ok = false
					}
				}
			}
			if !dup {
				// A conditional rule counts as writing the field (for the
				// required-field check) but does not clash with others.
				seen[ev][rule.To] = rule.Line
				if rule.when != nil {
					seen[ev][rule.To] = 0
				}
			}
		}
		if ok {
			rules = append(rules, rule)
		}
	}
	return rules, seen
}

// fieldKeys returns the settings a field rule may have.
func fieldKeys(kind ruleKind) []string {
	keys := []string{"to", "from", "template", "value", "map", "as", "on", "missing", "default", "max_length", "timezone", "when"}
	if kind == toReferral {
		keys = append(keys, "list", "reverse", "decimals", "message")
	} else {
		keys = append(keys, "reverse", "decimals")
	}
	return keys
}

func (p *parser) fieldRule(cfg *Config, n *yaml.Node, field string, kind ruleKind) (FieldRule, bool) {
	f := p.fields(n, field, fieldKeys(kind)...)
	if f == nil {
		return FieldRule{}, false
	}
	before := len(p.problems)
	rule := FieldRule{Line: resolve(n).Line, OnCreate: true, OnUpdate: true, As: TypeString, Missing: MissingSkip, outbound: kind == toReferral}
	var target *SchemaNode // the referral property an outbound rule writes
	if tn, ok := f["to"]; ok {
		if s, ok := p.str(tn, field+".to"); ok {
			rule.To = s
			field = fmt.Sprintf("%s (%s)", field, s)
			if kind == toReferral {
				target = p.referralTarget(tn, field+".to", s)
				if target != nil {
					rule.To = p.canonicalPath(s)
				}
			} else {
				switch {
				case !apiName.MatchString(s):
					p.addf(tn, field+".to", "%q is not a Salesforce API name", s)
				case s == cfg.ExternalIDField:
					p.addf(tn, field+".to", "%s is the External ID field; it always holds the referral id and is not mapped", s)
				}
			}
		}
	} else {
		p.addf(n, field+".to", "missing: name the %s to write", map[ruleKind]string{toOpportunity: "Salesforce field", toReferral: "referral field"}[kind])
	}
	// Sources name referral fields for inbound rules (checked against the
	// referral schema) and opportunity fields for outbound ones.
	saved := p.referralSide
	p.referralSide = kind == toOpportunity
	defer func() { p.referralSide = saved }()
	sources := 0
	if v, ok := f["from"]; ok {
		sources++
		rule.from = p.source(v, field+".from")
	}
	if v, ok := f["template"]; ok {
		sources++
		if s, ok := p.str(v, field+".template"); ok {
			t, err := parseTemplate(s)
			if err != nil {
				p.addf(v, field+".template", "%v", err)
			} else {
				for _, part := range t.parts {
					if part.path != nil {
						p.checkPath(v, field+".template", *part.path)
					}
				}
			}
			rule.template = t
		}
	}
	if v, ok := f["value"]; ok {
		sources++
		rule.value, rule.hasValue = p.scalar(v, field+".value")
	}
	if v, ok := f["list"]; ok {
		sources++
		rule.list = p.listSource(v, field+".list", target)
	}
	if sources != 1 {
		what := "from, template or value"
		if kind == toReferral {
			what = "from, template, value or list"
		}
		p.addf(n, field, "give exactly one of %s (found %d)", what, sources)
	}
	if v, ok := f["map"]; ok {
		if s, ok := p.str(v, field+".map"); ok {
			vm, found := cfg.valueMaps[s]
			if !found {
				p.addf(v, field+".map", "no value map %q under value_maps", s)
			}
			rule.valueMap = vm
		}
	}
	if v, ok := f["reverse"]; ok {
		if err := resolve(v).Decode(&rule.reverse); err != nil || resolve(v).Tag != "!!bool" {
			p.addf(v, field+".reverse", "want true or false")
		} else if rule.reverse && rule.valueMap == nil {
			p.addf(v, field+".reverse", "only applies with map")
		} else if rule.reverse {
			p.checkReversible(v, field+".reverse", rule.valueMap)
		}
	}
	if v, ok := f["as"]; ok {
		if s, ok := p.str(v, field+".as"); ok {
			switch t := Type(s); t {
			case TypeString, TypeNumber, TypeDate, TypeDateTime, TypeBool, TypeURL, TypeCurrency, TypeCountry:
				rule.As = t
			default:
				p.addf(v, field+".as", "unknown type %q (known: %s)", s, typesKnown)
			}
		}
	} else if target != nil {
		rule.As = inferType(target)
	}
	if target != nil {
		p.checkTargetType(f, n, field, &rule, target)
	}
	if v, ok := f["decimals"]; ok {
		v = resolve(v)
		d, err := strconv.Atoi(v.Value)
		if err != nil || d < 0 || d > 10 || v.Kind != yaml.ScalarNode {
			p.addf(v, field+".decimals", "want a whole number from 0 to 10, found %s", kindName(v))
		} else if rule.As != TypeNumber {
			p.addf(v, field+".decimals", "only applies to as: number")
		}
		rule.decimals = d + 1 // 0 means "not set"
	}
	if v, ok := f["message"]; ok {
		rule.Message, _ = p.str(v, field+".message")
	}
	if v, ok := f["on"]; ok {
		rule.OnCreate, rule.OnUpdate = false, false
		v = resolve(v)
		items := []*yaml.Node{v}
		if v.Kind == yaml.SequenceNode {
			items = v.Content
		}
		if len(items) == 0 {
			p.addf(v, field+".on", "must name at least one event (create, update)")
		}
		for _, it := range items {
			s, ok := p.str(it, field+".on")
			if !ok {
				continue
			}
			switch Event(s) {
			case Create:
				rule.OnCreate = true
			case Update:
				rule.OnUpdate = true
			default:
				p.addf(it, field+".on", "unknown event %q (known: create, update)", s)
			}
		}
	}
	if v, ok := f["missing"]; ok {
		if s, ok := p.str(v, field+".missing"); ok {
			switch m := Missing(s); m {
			case MissingSkip, MissingClear, MissingFail:
				rule.Missing = m
			default:
				p.addf(v, field+".missing", "unknown policy %q (known: skip, clear, fail)", s)
			}
		}
	}
	if v, ok := f["default"]; ok {
		rule.def, rule.hasDefault = p.scalar(v, field+".default")
		if rule.hasDefault && rule.def == nil {
			p.addf(v, field+".default", "a default must be a value; use missing: clear to write null")
			rule.hasDefault = false
		}
	}
	if v, ok := f["max_length"]; ok {
		v = resolve(v)
		n, err := strconv.Atoi(v.Value)
		if err != nil || n <= 0 || v.Kind != yaml.ScalarNode {
			p.addf(v, field+".max_length", "want a positive whole number, found %s", kindName(v))
		}
		rule.MaxLength = n
	}
	if v, ok := f["timezone"]; ok {
		if s, ok := p.str(v, field+".timezone"); ok {
			loc, err := time.LoadLocation(s)
			if err != nil {
				p.addf(v, field+".timezone", "unknown time zone %q (use an IANA name such as UTC or Europe/Paris)", s)
			}
			if rule.As != TypeDate {
				p.addf(v, field+".timezone", "only applies to as: date")
			}
			rule.location = loc
		}
	}
	if rule.location == nil {
		rule.location = time.UTC
	}
	if v, ok := f["when"]; ok {
		rule.when = p.condition(v, field+".when")
	}
	if kind == toReferral && rule.OnUpdate && target != nil && rule.To != "" {
		if lk, _, ok := p.schema.lookup(mustPath(rule.To)); ok && !lk.patch {
			at := f["on"]
			if at == nil {
				at = f["to"]
			}
			p.addf(at, field+".on", "%s cannot change once the referral exists (Partner Center's PATCH accepts only %s); add on: [create]",
				rule.To, strings.Join(patchTargets(), ", "))
		}
	}
	if rule.hasValue && rule.valueMap == nil && rule.value != nil {
		if _, err := convert(rule.value, rule.As, rule.location, rule.template != nil); err != nil {
			p.addf(f["value"], field+".value", "%v", err)
		}
	}
	return rule, len(p.problems) == before
}

// source reads one path or a list of paths (the first with a value wins).
func (p *parser) source(n *yaml.Node, field string) Source {
	n = resolve(n)
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
		if len(items) == 0 {
			p.addf(n, field, "want at least one path")
		}
	}
	var out Source
	for _, it := range items {
		s, ok := p.str(it, field)
		if !ok {
			continue
		}
		path, err := ParsePath(s)
		if err != nil {
			p.addf(it, field, "%v", err)
			continue
		}
		p.checkPath(it, field, path)
		out = append(out, path)
	}
	return out
}

// conditionKeys returns the settings a condition may have.
func conditionKeys() []string { return []string{"field", "equals", "not_equals", "in", "present"} }

// condition reads one predicate, or a list of predicates that must all
// hold.
func (p *parser) condition(n *yaml.Node, field string) *Condition {
	n = resolve(n)
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
		if len(items) == 0 {
			p.addf(n, field, "want at least one condition")
		}
	}
	c := &Condition{}
	for i, it := range items {
		f := field
		if n.Kind == yaml.SequenceNode {
			f = fmt.Sprintf("%s[%d]", field, i)
		}
		m := p.fields(it, f, conditionKeys()...)
		if m == nil {
			continue
		}
		var pred predicate
		if fn, ok := m["field"]; ok {
			if s, ok := p.str(fn, f+".field"); ok {
				path, err := ParsePath(s)
				if err != nil {
					p.addf(fn, f+".field", "%v", err)
				} else {
					p.checkPath(fn, f+".field", path)
				}
				pred.path = path
			}
		} else {
			p.addf(it, f+".field", "missing: name the referral field to test")
		}
		tests := 0
		if v, ok := m["equals"]; ok {
			tests++
			pred.op = opEquals
			pred.values = p.texts(v, f+".equals", false)
		}
		if v, ok := m["not_equals"]; ok {
			tests++
			pred.op = opNotEquals
			pred.values = p.texts(v, f+".not_equals", false)
		}
		if v, ok := m["in"]; ok {
			tests++
			pred.op = opIn
			pred.values = p.texts(v, f+".in", true)
		}
		if v, ok := m["present"]; ok {
			tests++
			pred.op = opPresent
			if err := resolve(v).Decode(&pred.present); err != nil || resolve(v).Tag != "!!bool" {
				p.addf(v, f+".present", "want true or false")
			}
		}
		if tests != 1 {
			p.addf(it, f, "give exactly one of equals, not_equals, in or present (found %d)", tests)
		}
		c.preds = append(c.preds, pred)
	}
	return c
}

// texts reads a scalar (or, when list is true, a list of scalars) as text.
func (p *parser) texts(n *yaml.Node, field string, list bool) []string {
	n = resolve(n)
	items := []*yaml.Node{n}
	if list {
		if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
			p.addf(n, field, "want a non-empty list of values, found %s", kindName(n))
			return nil
		}
		items = n.Content
	}
	var out []string
	for _, it := range items {
		v, ok := p.scalar(it, field)
		if !ok {
			continue
		}
		s, ok := scalarText(v)
		if !ok {
			p.addf(it, field, "want a value, found nothing")
			continue
		}
		out = append(out, s)
	}
	return out
}
