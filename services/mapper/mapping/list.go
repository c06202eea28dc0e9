package mapping

import (
	"encoding/json"
	"strings"
)

// apply builds the list's items from doc: every value of every path
// (text split at the split characters), preferred elements first, one
// object per element, duplicates and empty objects left out, at most limit.
func (ls *listSource) apply(doc map[string]any) []any {
	var elems []any
	for _, p := range ls.from {
		for _, v := range p.lookup(doc) {
			s, isText := v.(string)
			switch {
			case isText && ls.split != "":
				for _, part := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(ls.split, r) }) {
					if t := strings.TrimSpace(part); t != "" {
						elems = append(elems, t)
					}
				}
			case isText && strings.TrimSpace(s) == "":
			default:
				elems = append(elems, v)
			}
		}
	}
	if ls.prefer != nil {
		var first, rest []any
		for _, e := range elems {
			if m, ok := e.(map[string]any); ok && ls.prefer.holds(m) {
				first = append(first, e)
			} else {
				rest = append(rest, e)
			}
		}
		elems = append(first, rest...)
	}
	var items []any
	seen := map[string]bool{}
	for _, e := range elems {
		item := map[string]any{}
		for _, m := range ls.item {
			if s, ok := m.tmpl.render(e, false); ok && strings.TrimSpace(s) != "" {
				item[m.name] = strings.TrimSpace(s)
			}
		}
		if len(item) == 0 {
			continue
		}
		key := strings.ToLower(itemKey(item, ls.key))
		if seen[key] {
			continue
		}
		seen[key] = true
		items = append(items, item)
		if ls.limit > 0 && len(items) == ls.limit {
			break
		}
	}
	return items
}

// itemKey identifies an item: its key member, else all of it.
func itemKey(item map[string]any, key string) string {
	if s, ok := scalarText(item[key]); ok && s != "" {
		return s
	}
	b, _ := json.Marshal(item)
	return string(b)
}
