package mapping

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Path addresses a value inside a referral document, e.g.
// "customerProfile.address.country". A segment ending in "[]" walks every
// element of an array ("target[].id"): conditions match when any element
// matches, and field sources take the first element that has a value.
type Path struct {
	text     string
	segments []segment
}

type segment struct {
	name string
	each bool
}

// segmentPattern is one path segment: a JSON member name as Partner Center
// spells them, optionally followed by [] to walk an array.
var segmentPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\[\])?$`)

// ParsePath parses a dotted path.
func ParsePath(s string) (Path, error) {
	if strings.TrimSpace(s) == "" {
		return Path{}, fmt.Errorf("empty path")
	}
	parts := strings.Split(s, ".")
	segs := make([]segment, 0, len(parts))
	for _, p := range parts {
		if !segmentPattern.MatchString(p) {
			return Path{}, fmt.Errorf("path %q: segment %q is not a member name (letters, digits, '_', optionally followed by [])", s, p)
		}
		each := strings.HasSuffix(p, "[]")
		segs = append(segs, segment{name: strings.TrimSuffix(p, "[]"), each: each})
	}
	return Path{text: s, segments: segs}, nil
}

// String returns the path as written.
func (p Path) String() string { return p.text }

// lookup returns every non-null value the path reaches in doc, in document
// order. A path without [] yields at most one value.
func (p Path) lookup(doc any) []any {
	cur := []any{doc}
	for _, seg := range p.segments {
		var next []any
		for _, v := range cur {
			obj, ok := v.(map[string]any)
			if !ok {
				continue
			}
			child, ok := memberOf(obj, seg.name)
			if !ok || child == nil {
				continue
			}
			if seg.each {
				arr, ok := child.([]any)
				if !ok {
					continue
				}
				for _, e := range arr {
					if e != nil {
						next = append(next, e)
					}
				}
				continue
			}
			next = append(next, child)
		}
		cur = next
		if len(cur) == 0 {
			return nil
		}
	}
	return cur
}

// memberOf finds a member by name, exactly first and then ignoring case:
// Partner Center's own samples mix "ConsentToContact" and
// "consentToContact", and a mapping should not break on that.
func memberOf(obj map[string]any, name string) (any, bool) {
	if v, ok := obj[name]; ok {
		return v, true
	}
	for k, v := range obj {
		if strings.EqualFold(k, name) {
			return v, true
		}
	}
	return nil, false
}

// first returns the first value the path reaches that is not an empty
// string, or nil.
func (p Path) first(doc any) any {
	for _, v := range p.lookup(doc) {
		if s, ok := v.(string); ok && strings.TrimSpace(s) == "" {
			continue
		}
		return v
	}
	return nil
}

// scalarText renders a scalar JSON value as text for templates, value-map
// keys and condition comparisons. Objects and arrays have no text form.
func scalarText(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), true
	case int:
		return strconv.Itoa(x), true
	default:
		return "", false
	}
}

// String renders the condition as a mapping file would write it, for
// messages.
func (c Condition) String() string {
	parts := make([]string, len(c.preds))
	for i, p := range c.preds {
		switch p.op {
		case opEquals:
			parts[i] = fmt.Sprintf("%s equals %s", p.path, strings.Join(p.values, ""))
		case opNotEquals:
			parts[i] = fmt.Sprintf("%s not equals %s", p.path, strings.Join(p.values, ""))
		case opIn:
			parts[i] = fmt.Sprintf("%s in [%s]", p.path, strings.Join(p.values, ", "))
		case opPresent:
			if p.present {
				parts[i] = fmt.Sprintf("%s is present", p.path)
			} else {
				parts[i] = fmt.Sprintf("%s is absent", p.path)
			}
		}
	}
	return strings.Join(parts, " and ")
}
