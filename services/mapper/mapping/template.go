package mapping

import (
	"fmt"
	"net/url"
	"strings"
)

// template is text with {path} placeholders, e.g.
// "https://partner.microsoft.com/dashboard/referrals/v2/opportunities/{id}"
// or "{status}/{substatus}".
type template struct {
	parts []templatePart
}

type templatePart struct {
	literal string
	path    *Path
}

// parseTemplate splits text into literals and placeholders.
func parseTemplate(text string) (*template, error) {
	t := &template{}
	rest := text
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		closing := strings.IndexByte(rest, '}')
		if open < 0 {
			if closing >= 0 {
				return nil, fmt.Errorf("template %q: '}' without '{'", text)
			}
			t.parts = append(t.parts, templatePart{literal: rest})
			break
		}
		if closing >= 0 && closing < open {
			return nil, fmt.Errorf("template %q: '}' without '{'", text)
		}
		if open > 0 {
			t.parts = append(t.parts, templatePart{literal: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("template %q: '{' without '}'", text)
		}
		inner := rest[open+1 : open+end]
		if inner == "." {
			// {.} is the value itself (a list element that is text).
			t.parts = append(t.parts, templatePart{path: &Path{text: "."}})
			rest = rest[open+end+1:]
			continue
		}
		path, err := ParsePath(inner)
		if err != nil {
			return nil, fmt.Errorf("template %q: placeholder: %w", text, err)
		}
		t.parts = append(t.parts, templatePart{path: &path})
		rest = rest[open+end+1:]
	}
	return t, nil
}

// render fills the placeholders from doc. It reports false when a
// placeholder has no value (the result would be misleading), so the rule's
// missing policy applies.
func (t *template) render(doc any, escape bool) (string, bool) {
	var b strings.Builder
	for _, p := range t.parts {
		if p.path == nil {
			b.WriteString(p.literal)
			continue
		}
		v := p.path.first(doc)
		if v == nil {
			return "", false
		}
		s, ok := scalarText(v)
		if !ok {
			return "", false
		}
		if escape {
			s = url.PathEscape(s)
		}
		b.WriteString(s)
	}
	return b.String(), true
}
