package mapping

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Referral is a Partner Center referral document as the API returned it.
type Referral struct {
	doc map[string]any
}

// ParseReferral decodes a referral document. Numbers keep their exact text
// (deal values are decimals).
func ParseReferral(data []byte) (Referral, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return Referral{}, fmt.Errorf("parse referral: %w", err)
	}
	if doc == nil {
		return Referral{}, fmt.Errorf("parse referral: not a JSON object")
	}
	return Referral{doc: doc}, nil
}

// Text returns the text of the scalar at path ("status",
// "customerProfile.name"), or "" when absent; path must be valid.
func (r Referral) Text(path string) string {
	p, err := ParsePath(path)
	if err != nil {
		return ""
	}
	s, _ := scalarText(p.first(r.doc))
	return s
}

// Account is the customer account a projection asks the salesforce-adapter
// to find or create.
type Account struct {
	Name       string `json:"name"`
	Country    string `json:"country,omitempty"`
	PostalCode string `json:"postal_code,omitempty"`
	City       string `json:"city,omitempty"`
	State      string `json:"state,omitempty"`
	Street     string `json:"street,omitempty"`
}

// Projection is what the mapping makes of one referral: the Salesforce
// fields to write and the customer account. Two projections with equal
// hashes write exactly the same values.
type Projection struct {
	// Event is the write the projection is for.
	Event Event `json:"-"`
	// Fields maps Salesforce field API names to values: string,
	// json.Number, bool, or nil to clear the field.
	Fields map[string]any `json:"fields"`
	// Account is the customer account, nil when the referral names none.
	Account *Account `json:"account,omitempty"`
}

// JSON renders the projection canonically (sorted keys), the form stored
// on the link and hashed.
func (p Projection) JSON() []byte {
	// Marshalling strings, json.Numbers, bools and nils cannot fail.
	b, _ := json.Marshal(p)
	return b
}

// FieldsJSON renders only the fields, as the upsert command carries them.
func (p Projection) FieldsJSON() []byte {
	b, _ := json.Marshal(p.Fields)
	return b
}

// Hash identifies the projection's values.
func (p Projection) Hash() string {
	sum := sha256.Sum256(p.JSON())
	return hex.EncodeToString(sum[:16])
}

// Within reports whether every value p writes is already in prev, a
// projection stored with JSON: writing p would change nothing, so it is
// our own echo (or a change to fields the mapping ignores). An update that
// writes fewer fields than the create before it is within it.
func (p Projection) Within(prev []byte) bool {
	if len(prev) == 0 {
		return false
	}
	var old struct {
		Fields  map[string]json.RawMessage `json:"fields"`
		Account *Account                   `json:"account"`
	}
	dec := json.NewDecoder(bytes.NewReader(prev))
	if err := dec.Decode(&old); err != nil {
		return false
	}
	for k, v := range p.Fields {
		ov, ok := old.Fields[k]
		if !ok {
			return false
		}
		nv, _ := json.Marshal(v)
		if !bytes.Equal(bytes.TrimSpace(ov), nv) {
			return false
		}
	}
	if p.Account != nil && (old.Account == nil || *old.Account != *p.Account) {
		return false
	}
	return true
}

// Ignored reports whether an unlinked referral is not ours to sync, and
// why, by the file's ignore rules.
func (c *Config) Ignored(r Referral) (reason string, ignored bool) {
	for _, rule := range c.Inbound.Ignore {
		if rule.When.holds(r.doc) {
			return rule.Reason, true
		}
	}
	return "", false
}

// Project maps a referral for event ev. A referral the mapping cannot
// express (a required value missing, a value that does not convert)
// returns a *ProjectionError naming every field at fault.
func (c *Config) Project(r Referral, ev Event) (Projection, error) {
	p, _, err := c.project(r, ev, "inbound.fields", c.Inbound.Fields)
	if err != nil {
		return Projection{}, err
	}
	p.Account = c.Inbound.Account.project(r.doc)
	return p, nil
}

// project applies rules (named section in results) to r for event ev and
// reports, rule by rule, what each did.
func (c *Config) project(r Referral, ev Event, section string, rules []FieldRule) (Projection, []FieldResult, error) {
	p := Projection{Event: ev, Fields: make(map[string]any, len(rules))}
	results := make([]FieldResult, 0, len(rules))
	var errs []*FieldError
	for i := range rules {
		rule := &rules[i]
		res := FieldResult{Target: rule.To, Rule: fmt.Sprintf("%s[%d]", section, rule.Index), Line: rule.Line, Source: rule.describeSource()}
		switch {
		case !rule.applies(ev):
			res.Status, res.Reason = FieldSkipped, fmt.Sprintf("the rule applies on %s only", rule.events())
		case rule.when != nil && !rule.when.holds(r.doc):
			res.Status, res.Reason = FieldSkipped, "its condition does not hold ("+rule.when.String()+")"
		default:
			v, set, err := rule.apply(r.doc)
			switch {
			case err != nil:
				errs = append(errs, &FieldError{Field: rule.To, Line: rule.Line, Message: err.Error()})
				res.Status, res.Reason = FieldFailed, err.Error()
			case !set:
				res.Status, res.Reason = FieldSkipped, "the source has no value; the field is left as it is"
			case v == nil:
				p.Fields[rule.To] = nil
				res.Status, res.Reason = FieldCleared, "the source has no value; the field is cleared (missing: clear)"
			default:
				p.Fields[rule.To] = v
				res.Status, res.Value = FieldSet, v
			}
		}
		results = append(results, res)
	}
	if len(errs) > 0 {
		return Projection{}, results, &ProjectionError{Fields: errs}
	}
	return p, results, nil
}

// events names the events a rule applies on, for messages.
func (r *FieldRule) events() string {
	switch {
	case r.OnCreate && r.OnUpdate:
		return "create and update"
	case r.OnCreate:
		return "create"
	default:
		return "update"
	}
}

func (r *FieldRule) applies(ev Event) bool {
	switch ev {
	case Create:
		return r.OnCreate
	case Update:
		return r.OnUpdate
	}
	return false
}

// apply computes the rule's value. set is false when the field is left
// out of the write.
func (r *FieldRule) apply(doc map[string]any) (v any, set bool, err error) {
	var raw any
	switch {
	case r.hasValue:
		raw = r.value
	case r.template != nil:
		if s, ok := r.template.render(doc, r.As == TypeURL); ok {
			raw = s
		}
	case r.list != nil:
		if items := r.list.apply(doc); len(items) > 0 {
			return items, true, nil
		}
	default:
		for _, p := range r.from {
			if raw = p.first(doc); raw != nil {
				break
			}
		}
	}
	source := r.describeSource()
	if raw != nil && r.valueMap != nil {
		key, ok := scalarText(raw)
		if !ok {
			return nil, false, fmt.Errorf("%s is not a single value", source)
		}
		mapped, found := r.valueMap.lookup(key, r.reverse)
		switch {
		case found:
			raw = mapped
		case r.valueMap.HasDefault && !r.reverse:
			raw = r.valueMap.Default
		default:
			if r.Missing == MissingFail {
				return nil, false, fmt.Errorf("value map %s has no entry for %q", r.valueMap.Name, key)
			}
			raw = nil
		}
	}
	if raw == nil && r.hasDefault {
		raw = r.def
	}
	if raw == nil {
		switch r.Missing {
		case MissingClear:
			return nil, true, nil
		case MissingFail:
			return nil, false, fmt.Errorf("the %s has no value for %s", r.recordName(), source)
		default:
			return nil, false, nil
		}
	}
	out, err := convert(raw, r.As, r.location, r.template != nil)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", source, err)
	}
	if r.decimals > 0 {
		if n, ok := out.(json.Number); ok {
			f, _ := n.Float64()
			scale := math.Pow10(r.decimals - 1)
			out = json.Number(strconv.FormatFloat(math.Round(f*scale)/scale, 'f', -1, 64))
		}
	}
	if s, ok := out.(string); ok && r.MaxLength > 0 && utf8.RuneCountInString(s) > r.MaxLength {
		out = string([]rune(s)[:r.MaxLength])
	}
	return out, true, nil
}

// recordName names what a rule reads, for messages.
func (r *FieldRule) recordName() string {
	if r.outbound {
		return "opportunity"
	}
	return "referral"
}

// lookup maps key, or with reverse finds the key that maps to it.
func (m *ValueMap) lookup(key string, reverse bool) (any, bool) {
	if !reverse {
		v, ok := m.Values[key]
		return v, ok
	}
	for _, k := range sortedKeys(m.Values) {
		if s, ok := scalarText(m.Values[k]); ok && s == key {
			return k, true
		}
	}
	return nil, false
}

func (r *FieldRule) describeSource() string {
	switch {
	case r.hasValue:
		return "the constant value"
	case r.template != nil:
		var names []string
		for _, p := range r.template.parts {
			if p.path != nil {
				names = append(names, p.path.String())
			}
		}
		return strings.Join(names, "/")
	case r.list != nil:
		names := make([]string, len(r.list.from))
		for i, p := range r.list.from {
			names[i] = p.String()
		}
		return strings.Join(names, " and ")
	default:
		names := make([]string, len(r.from))
		for i, p := range r.from {
			names[i] = p.String()
		}
		return strings.Join(names, " or ")
	}
}

// convert turns a source value into the Salesforce value of type t.
func convert(v any, t Type, loc *time.Location, escaped bool) (any, error) {
	switch t {
	case TypeNumber:
		var f float64
		switch x := v.(type) {
		case json.Number:
			var err error
			if f, err = strconv.ParseFloat(x.String(), 64); err != nil {
				return nil, fmt.Errorf("%q is not a number", x)
			}
		case string:
			var err error
			if f, err = strconv.ParseFloat(strings.TrimSpace(x), 64); err != nil {
				return nil, fmt.Errorf("%q is not a number", x)
			}
		default:
			return nil, fmt.Errorf("want a number, found %T", v)
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("%v is not a finite number", v)
		}
		return json.Number(strconv.FormatFloat(f, 'f', -1, 64)), nil
	case TypeBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err != nil {
				return nil, fmt.Errorf("%q is not true or false", x)
			}
			return b, nil
		}
		return nil, fmt.Errorf("want true or false, found %T", v)
	case TypeDate, TypeDateTime:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want a date, found %T", v)
		}
		tm, err := parseTime(s)
		if err != nil {
			return nil, err
		}
		if t == TypeDate {
			return tm.In(loc).Format(time.DateOnly), nil
		}
		return tm.UTC().Format("2006-01-02T15:04:05.000Z"), nil
	case TypeCurrency:
		s, ok := scalarText(v)
		if !ok {
			return nil, fmt.Errorf("want a currency code, found %s", jsonKind(v))
		}
		code := strings.ToUpper(strings.TrimSpace(s))
		if len(code) != 3 || strings.Trim(code, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			return nil, fmt.Errorf("%q is not a three-letter ISO 4217 currency code", s)
		}
		return code, nil
	case TypeCountry:
		s, ok := scalarText(v)
		if !ok {
			return nil, fmt.Errorf("want a country code, found %s", jsonKind(v))
		}
		return strings.ToUpper(strings.TrimSpace(s)), nil
	case TypeURL:
		s, ok := scalarText(v)
		if !ok {
			return nil, fmt.Errorf("want a URL, found %T", v)
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("%q is not an absolute http(s) URL", s)
		}
		return s, nil
	default:
		s, ok := scalarText(v)
		if !ok {
			return nil, fmt.Errorf("want a single value, found a %s", jsonKind(v))
		}
		return s, nil
	}
}

// parseTime reads the date and date-time forms Partner Center uses: RFC
// 3339 with or without fractions, a date-time without zone (taken as UTC),
// or a bare date.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", time.DateOnly} {
		if tm, err := time.Parse(layout, s); err == nil {
			return tm, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not an ISO 8601 date or date-time", s)
}

func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "JSON object"
	case []any:
		return "JSON array"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// holds reports whether every predicate holds for doc.
func (c Condition) holds(doc map[string]any) bool {
	for _, p := range c.preds {
		if !p.holds(doc) {
			return false
		}
	}
	return true
}

func (p predicate) holds(doc map[string]any) bool {
	vals := p.path.lookup(doc)
	switch p.op {
	case opPresent:
		return (p.path.first(doc) != nil) == p.present
	case opNotEquals:
		for _, v := range vals {
			if s, ok := scalarText(v); ok && slices.Contains(p.values, s) {
				return false
			}
		}
		return true
	default: // equals, in: any reached value matches
		for _, v := range vals {
			if s, ok := scalarText(v); ok && slices.Contains(p.values, s) {
				return true
			}
		}
		return false
	}
}

// project reads the account; nil when the referral has no customer name.
func (a AccountRule) project(doc map[string]any) *Account {
	text := func(src Source) string {
		for _, p := range src {
			if s, ok := scalarText(p.first(doc)); ok {
				return strings.TrimSpace(s)
			}
		}
		return ""
	}
	name := text(a.Name)
	if name == "" {
		return nil
	}
	return &Account{
		Name: name, Country: strings.ToUpper(text(a.Country)), PostalCode: text(a.PostalCode),
		City: text(a.City), State: text(a.State), Street: text(a.Street),
	}
}
