package soql

import "unicode"

// likeElem is one element of a compiled LIKE pattern.
type likeElem struct {
	any  bool // % : any run of characters, possibly empty
	one  bool // _ : exactly one character
	char rune // otherwise: this character, upper-cased
}

// compileLike turns a lexed LIKE string (escape markers kept) into
// elements. Matching is case-insensitive as in Salesforce, so literal
// characters are upper-cased here and values at match time.
func compileLike(raw string) []likeElem {
	var out []likeElem
	escaped := false
	for _, r := range raw {
		switch {
		case escaped:
			out = append(out, likeElem{char: unicode.ToUpper(r)})
			escaped = false
		case r == likeEscape:
			escaped = true
		case r == '%':
			if len(out) == 0 || !out[len(out)-1].any {
				out = append(out, likeElem{any: true})
			}
		case r == '_':
			out = append(out, likeElem{one: true})
		default:
			out = append(out, likeElem{char: unicode.ToUpper(r)})
		}
	}
	return out
}

// likeMatch reports whether s matches the pattern, in time proportional to
// len(s)·len(pattern) at worst (greedy with a single backtrack point).
func likeMatch(pattern []likeElem, s string) bool {
	v := []rune(s)
	for i, r := range v {
		v[i] = unicode.ToUpper(r)
	}
	pi, vi := 0, 0
	star, mark := -1, 0
	for vi < len(v) {
		switch {
		case pi < len(pattern) && !pattern[pi].any && (pattern[pi].one || pattern[pi].char == v[vi]):
			pi++
			vi++
		case pi < len(pattern) && pattern[pi].any:
			star, mark = pi, vi
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			vi = mark
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi].any {
		pi++
	}
	return pi == len(pattern)
}
