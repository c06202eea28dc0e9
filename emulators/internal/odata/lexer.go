package odata

import (
	"fmt"
	"strings"
)

type tokKind int

const (
	tkEOF tokKind = iota
	tkIdent
	tkString
	tkNumber
	tkDateTime
	tkGuid
	tkLParen
	tkRParen
	tkSlash
	tkColon
	tkComma
)

type token struct {
	kind tokKind
	text string // identifier, decoded string, number text, literal text
	pos  int    // 0-based byte offset in the expression
}

func (t token) String() string {
	switch t.kind {
	case tkEOF:
		return "end of expression"
	case tkString:
		return "'" + strings.ReplaceAll(t.text, "'", "''") + "'"
	}
	return t.text
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isIdentChar(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// lex splits a $filter expression into tokens. Errors use the wording of
// the OData reference implementation where it has one.
func lex(src string, option string) ([]token, error) {
	var toks []token
	syntax := func(pos int) error {
		return newError(option, "Syntax error at position %d in '%s'.", pos+1, src)
	}
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(':
			toks = append(toks, token{tkLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tkRParen, ")", i})
			i++
		case c == '/':
			toks = append(toks, token{tkSlash, "/", i})
			i++
		case c == ':':
			toks = append(toks, token{tkColon, ":", i})
			i++
		case c == ',':
			toks = append(toks, token{tkComma, ",", i})
			i++
		case c == '\'':
			start := i
			var b strings.Builder
			i++
			closed := false
			for i < len(src) {
				if src[i] == '\'' {
					if i+1 < len(src) && src[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(src[i])
				i++
			}
			if !closed {
				return nil, newError(option, "There is an unterminated string literal at position %d in '%s'.", start+1, src)
			}
			toks = append(toks, token{tkString, b.String(), start})
		case guidAt(src, i):
			toks = append(toks, token{tkGuid, src[i : i+36], i})
			i += 36
		case isDigit(c) || c == '-' && i+1 < len(src) && isDigit(src[i+1]):
			start := i
			if dateAt(src, i) {
				j := i + 10
				for j < len(src) && (isIdentChar(src[j]) || strings.IndexByte(":.+-", src[j]) >= 0) {
					j++
				}
				text := src[start:j]
				if len(text) == 10 {
					return nil, newError(option, "Edm.Date literals such as '%s' are not supported; use a DateTimeOffset literal such as %sT00:00:00Z (position %d in '%s').", text, text, start+1, src)
				}
				if _, ok := parseLiteralDateTime(text); !ok {
					hint := ""
					if j+1 < len(src) && src[j] == ' ' && isDigit(src[j+1]) && !strings.ContainsAny(text[10:], "Zz+-") {
						hint = " A '+' in a URL query must be sent as %2B."
					}
					return nil, newError(option, "Invalid DateTimeOffset literal '%s' at position %d in '%s'; expected yyyy-mm-ddThh:mm[:ss[.fffffff]] followed by Z or an offset ±hh:mm.%s", text, start+1, src, hint)
				}
				toks = append(toks, token{tkDateTime, text, start})
				i = j
				continue
			}
			j := i
			if src[j] == '-' {
				j++
			}
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			if j < len(src) && src[j] == '.' {
				j++
				if j >= len(src) || !isDigit(src[j]) {
					return nil, syntax(j)
				}
				for j < len(src) && isDigit(src[j]) {
					j++
				}
			}
			if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
				k := j + 1
				if k < len(src) && (src[k] == '+' || src[k] == '-') {
					k++
				}
				if k < len(src) && isDigit(src[k]) {
					for k < len(src) && isDigit(src[k]) {
						k++
					}
					j = k
				}
			}
			if j < len(src) && (isIdentChar(src[j]) || src[j] == '.') {
				end := j
				for end < len(src) && isIdentChar(src[end]) {
					end++
				}
				return nil, newError(option, "Unrecognized literal '%s' at position %d in '%s'.", src[start:end], start+1, src)
			}
			text := src[start:j]
			if _, ok := parseNum(text); !ok {
				return nil, newError(option, "The number %s at position %d in '%s' is out of range.", text, start+1, src)
			}
			toks = append(toks, token{tkNumber, text, start})
			i = j
		case isIdentStart(c):
			start := i
			for i < len(src) && isIdentChar(src[i]) {
				i++
			}
			if i < len(src) && src[i] == '\'' {
				return nil, newError(option, "Typed literals such as %s'...' are not supported (position %d in '%s').", src[start:i], start+1, src)
			}
			toks = append(toks, token{tkIdent, src[start:i], start})
		case c == '$':
			start := i
			i++
			for i < len(src) && isIdentChar(src[i]) {
				i++
			}
			return nil, newError(option, "'%s' (position %d in '%s') is not supported in $filter by this service.", src[start:i], start+1, src)
		case c == '@':
			return nil, newError(option, "Parameter aliases (position %d in '%s') are not supported by this service.", i+1, src)
		default:
			return nil, syntax(i)
		}
	}
	toks = append(toks, token{tkEOF, "", len(src)})
	return toks, nil
}

func guidAt(s string, i int) bool {
	if i+36 > len(s) {
		return false
	}
	if _, ok := parseGuid(s[i : i+36]); !ok {
		return false
	}
	if i > 0 && isIdentChar(s[i-1]) {
		return false
	}
	return i+36 == len(s) || !isIdentChar(s[i+36]) && s[i+36] != '-'
}

func dateAt(s string, i int) bool {
	if i+10 > len(s) {
		return false
	}
	for k := 0; k < 10; k++ {
		c := s[i+k]
		if k == 4 || k == 7 {
			if c != '-' {
				return false
			}
		} else if !isDigit(c) {
			return false
		}
	}
	return true
}

// Error is a query error the server renders as
// 400 {"error":{"code":Code,"message":Message,"target":Target}}.
type Error struct{ Code, Message, Target string }

func (e *Error) Error() string {
	if e.Target != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Target, e.Message)
	}
	return e.Code + ": " + e.Message
}

// CodeInvalidRequest is the code of every query error (one of the codes the
// Partner Center error reference documents).
const CodeInvalidRequest = "invalidRequest"

func newError(target, format string, args ...any) *Error {
	return &Error{Code: CodeInvalidRequest, Message: fmt.Sprintf(format, args...), Target: target}
}
