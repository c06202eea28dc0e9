package mapping

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
)

// The two-way sync compares both sides in one space: Salesforce field
// values. A referral is brought into it by the inbound update rules
// (PCValues), Microsoft's related referral by the related rules
// (RelatedValues), an opportunity by reading the fields themselves
// (SFValues). The keys are SyncFields.

// SyncFields lists the Salesforce fields the two-way sync tracks: those
// inbound update rules and related rules write, and those outbound update
// rules and the lifecycle read. Sorted.
func (c *Config) SyncFields() []string {
	seen := map[string]bool{}
	var out []string
	add := func(f string) {
		if f != "" && !seen[strings.ToLower(f)] {
			seen[strings.ToLower(f)] = true
			out = append(out, f)
		}
	}
	for _, r := range c.Inbound.Fields {
		if r.OnUpdate {
			add(r.To)
		}
	}
	for _, r := range c.Inbound.Related {
		add(r.To)
	}
	for _, f := range c.ReadsFields() {
		add(f)
	}
	slices.Sort(out)
	return out
}

// lenient applies update rules and keeps whatever they produce, ignoring
// rules that fail: a value the mapping cannot express is simply not known
// from that side.
func (c *Config) lenient(r Referral, rules []FieldRule) map[string]any {
	out := map[string]any{}
	for i := range rules {
		rule := &rules[i]
		if !rule.applies(Update) || (rule.when != nil && !rule.when.holds(r.doc)) {
			continue
		}
		if v, set, err := rule.apply(r.doc); err == nil && set {
			out[rule.To] = v
		}
	}
	return out
}

// PCValues is what a referral says about the synced Salesforce fields,
// through the inbound update rules. Fields whose rule skips (no value,
// condition false) are absent: the referral says nothing about them.
func (c *Config) PCValues(r Referral) map[string]any { return c.lenient(r, c.Inbound.Fields) }

// RelatedValues is what Microsoft's related referral says, through the
// related rules.
func (c *Config) RelatedValues(r Referral) map[string]any { return c.lenient(r, c.Inbound.Related) }

// SFValues is what an opportunity holds for every synced field (nil when
// empty). The name marker, when configured, is not part of the name.
func (c *Config) SFValues(o Opportunity) map[string]any {
	out := map[string]any{}
	for _, f := range c.SyncFields() {
		v := o.Field(f)
		if s, ok := v.(string); ok && c.Outbound != nil && c.Outbound.NameMarker != "" && strings.EqualFold(f, "Name") {
			v = strings.TrimSuffix(s, c.Outbound.NameMarker)
		}
		out[f] = v
	}
	return out
}

// Canon renders a value canonically, so values from both sides compare
// equal when Salesforce would store them equally: numbers by value
// (100.0 = 100), "" as null, objects with sorted keys.
func Canon(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		if x == "" {
			return "null"
		}
	case json.Number:
		if f, err := x.Float64(); err == nil {
			b, _ := json.Marshal(f)
			return string(b)
		}
	case float64:
		b, _ := json.Marshal(x)
		return string(b)
	}
	b, err := json.Marshal(normalize(v))
	if err != nil {
		return "null"
	}
	return string(b)
}

// normalize turns json.Numbers inside objects into float64 so nested
// values compare by value.
func normalize(v any) any {
	switch x := v.(type) {
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return f
		}
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}

// Uncanon turns a canonical value back into a JSON value for a write.
func Uncanon(s string) any {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	return v
}

// JSON renders the referral document.
func (r Referral) JSON() []byte {
	b, _ := json.Marshal(r.doc)
	return b
}

// ApplyPatch returns the referral as Partner Center would hold it after
// ops (replace and add, "/-" appending), to predict what our own write
// will look like when it comes back. Paths that do not resolve are
// skipped.
func ApplyPatch(r Referral, ops []PatchOp) Referral {
	doc := deepCopy(r.doc).(map[string]any)
	for _, op := range ops {
		segs := strings.Split(strings.TrimPrefix(op.Path, "/"), "/")
		appendTo := segs[len(segs)-1] == "-" && len(segs) >= 2
		walk := segs[:len(segs)-1]
		if appendTo {
			walk = segs[:len(segs)-2]
		}
		obj := doc
		for _, s := range walk {
			next, isObj := memberOfObj(obj, s)
			if !isObj {
				next = map[string]any{}
				obj[canonicalMember(obj, s)] = next
			}
			obj = next
		}
		if appendTo {
			name := segs[len(segs)-2]
			arr, _ := memberValue(obj, name).([]any)
			obj[canonicalMember(obj, name)] = append(arr, deepCopy(op.Value))
			continue
		}
		obj[canonicalMember(obj, segs[len(segs)-1])] = deepCopy(op.Value)
	}
	return Referral{doc: doc}
}

func memberOfObj(obj map[string]any, name string) (map[string]any, bool) {
	v := memberValue(obj, name)
	m, ok := v.(map[string]any)
	return m, ok
}

func memberValue(obj map[string]any, name string) any {
	v, _ := memberOf(obj, name)
	return v
}

// canonicalMember returns the existing spelling of a member (any case),
// else name.
func canonicalMember(obj map[string]any, name string) string {
	if _, ok := obj[name]; ok {
		return name
	}
	for k := range obj {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	return name
}

func deepCopy(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	if err := dec.Decode(&out); err != nil {
		return nil
	}
	if out == nil {
		if _, isMap := v.(map[string]any); isMap {
			return map[string]any{}
		}
	}
	return out
}

// RelatedSource describes where the related rule writing field reads
// ("trackingInfo.microsoftMsxId"), "" when none writes it.
func (c *Config) RelatedSource(field string) string {
	for i := range c.Inbound.Related {
		if strings.EqualFold(c.Inbound.Related[i].To, field) {
			return c.Inbound.Related[i].describeSource()
		}
	}
	return ""
}

// WritebackValues maps the referral Partner Center created to the
// opportunity fields written back (outbound.writeback).
func (c *Config) WritebackValues(r Referral) map[string]any {
	if c.Outbound == nil {
		return nil
	}
	out := map[string]any{}
	for i := range c.Outbound.Writeback {
		rule := &c.Outbound.Writeback[i]
		if rule.when != nil && !rule.when.holds(r.doc) {
			continue
		}
		if v, set, err := rule.apply(r.doc); err == nil && set {
			out[rule.To] = v
		}
	}
	return out
}
