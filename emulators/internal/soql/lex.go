package soql

import (
	"strings"
	"unicode/utf8"
)

// tokKind classifies a token.
type tokKind int

const (
	tEOF      tokKind = iota
	tIdent            // identifier or keyword, possibly dotted (Account.Name)
	tString           // 'quoted' with escapes resolved
	tNumber           // 12, -3.5, +7
	tDate             // 2026-01-01
	tDateTime         // 2026-01-01T00:00:00Z
	tOp               // = != <> < <= > >=
	tLParen
	tRParen
	tComma
	tColon
	tIllegal // a character SOQL has no use for, or a bind variable
)

// token is one lexeme with its byte offset in the query, kept for the
// "ERROR at Row:n:Column:m" part of messages.
type token struct {
	kind tokKind
	text string // source text; for strings, the unescaped value
	pos  int
}

// is reports whether the token is the keyword kw (case-insensitive).
func (t token) is(kw string) bool {
	return t.kind == tIdent && strings.EqualFold(t.text, kw)
}

// lexer splits a SOQL string into tokens on demand.
type lexer struct {
	src string
	pos int
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
}

func isIdentPart(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// next returns the next token or a MALFORMED_QUERY error for an
// unterminated string or a bad escape.
func (l *lexer) next() (token, *Error) {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' {
			l.pos++
			continue
		}
		break
	}
	start := l.pos
	if l.pos >= len(l.src) {
		return token{kind: tEOF, pos: start}, nil
	}
	c := l.src[l.pos]
	switch {
	case isIdentStart(c):
		l.pos++
		for l.pos < len(l.src) {
			d := l.src[l.pos]
			if isIdentPart(d) {
				l.pos++
				continue
			}
			// A dot joins path segments only when an identifier follows.
			if d == '.' && l.pos+1 < len(l.src) && isIdentStart(l.src[l.pos+1]) {
				l.pos++
				continue
			}
			break
		}
		return token{kind: tIdent, text: l.src[start:l.pos], pos: start}, nil
	case c == '\'':
		return l.lexString()
	case isDigit(c) || (c == '-' || c == '+' || c == '.') && l.pos+1 < len(l.src) && (isDigit(l.src[l.pos+1]) || l.src[l.pos+1] == '.'):
		return l.lexNumberOrDate()
	case c == '(':
		l.pos++
		return token{kind: tLParen, text: "(", pos: start}, nil
	case c == ')':
		l.pos++
		return token{kind: tRParen, text: ")", pos: start}, nil
	case c == ',':
		l.pos++
		return token{kind: tComma, text: ",", pos: start}, nil
	case c == ':':
		l.pos++
		return token{kind: tColon, text: ":", pos: start}, nil
	case c == '=':
		l.pos++
		return token{kind: tOp, text: "=", pos: start}, nil
	case c == '!':
		if strings.HasPrefix(l.src[l.pos:], "!=") {
			l.pos += 2
			return token{kind: tOp, text: "!=", pos: start}, nil
		}
	case c == '<':
		for _, op := range []string{"<=", "<>", "<"} {
			if strings.HasPrefix(l.src[l.pos:], op) {
				l.pos += len(op)
				return token{kind: tOp, text: op, pos: start}, nil
			}
		}
	case c == '>':
		if strings.HasPrefix(l.src[l.pos:], ">=") {
			l.pos += 2
			return token{kind: tOp, text: ">=", pos: start}, nil
		}
		l.pos++
		return token{kind: tOp, text: ">", pos: start}, nil
	}
	_, size := utf8.DecodeRuneInString(l.src[l.pos:])
	l.pos += size
	return token{kind: tIllegal, text: l.src[start:l.pos], pos: start}, nil
}

// lexString reads a single-quoted literal. SOQL escapes are \n \r \t \b \f
// \" \' \\ and, for LIKE patterns, \_ and \% (kept escaped so the LIKE
// matcher can tell a literal % from a wildcard; see likeEscape).
func (l *lexer) lexString() (token, *Error) {
	start := l.pos
	l.pos++ // opening quote
	var b strings.Builder
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch c {
		case '\'':
			l.pos++
			return token{kind: tString, text: b.String(), pos: start}, nil
		case '\\':
			if l.pos+1 >= len(l.src) {
				return token{}, syntaxError(l.src, l.pos, "unterminated string literal")
			}
			e := l.src[l.pos+1]
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case '"', '\'', '\\':
				b.WriteByte(likeEscape)
				b.WriteByte(e)
			case '_', '%':
				b.WriteByte(likeEscape)
				b.WriteByte(e)
			default:
				return token{}, syntaxError(l.src, l.pos,
					"Invalid string literal '"+l.src[start:min(len(l.src), l.pos+2)]+"'. Illegal character sequence '\\"+string(e)+"' in string literal.")
			}
			l.pos += 2
		case likeEscape:
			return token{}, syntaxError(l.src, l.pos, "NUL character in string literal")
		default:
			b.WriteByte(c)
			l.pos++
		}
	}
	return token{}, syntaxError(l.src, start, "unterminated string literal")
}

// likeEscape marks the next byte of a lexed string as escaped. Strings keep
// this marker so LIKE can distinguish \% from %; plain comparisons strip it
// with unescape. 0x00 cannot occur in a SOQL query string sent over HTTP in
// practice and is rejected by the parser if it does.
const likeEscape = 0x00

// unescape removes escape markers, giving the literal's value.
func unescape(s string) string {
	if strings.IndexByte(s, likeEscape) < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == likeEscape && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// lexNumberOrDate reads a number, a date (yyyy-mm-dd) or a datetime
// (yyyy-mm-ddThh:mm:ss[.fff](Z|±hh:mm)). Validation of the calendar values
// happens in the parser, which knows the position for the error.
func (l *lexer) lexNumberOrDate() (token, *Error) {
	start := l.pos
	s := l.src[start:]
	if len(s) >= 10 && isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2]) && isDigit(s[3]) && s[4] == '-' &&
		isDigit(s[5]) && isDigit(s[6]) && s[7] == '-' && isDigit(s[8]) && isDigit(s[9]) {
		end := 10
		if end < len(s) && s[end] == 'T' {
			end++
			for end < len(s) {
				c := s[end]
				if isDigit(c) || c == ':' || c == '.' || c == '+' || c == '-' || c == 'Z' || c == 'z' {
					end++
					continue
				}
				break
			}
			l.pos = start + end
			return token{kind: tDateTime, text: s[:end], pos: start}, nil
		}
		l.pos = start + end
		return token{kind: tDate, text: s[:end], pos: start}, nil
	}
	end := 0
	if s[0] == '+' || s[0] == '-' {
		end++
	}
	for end < len(s) && (isDigit(s[end]) || s[end] == '.') {
		end++
	}
	// Exponents are not SOQL syntax; letters glued to a number make it
	// malformed rather than silently splitting into two tokens.
	if end < len(s) && isIdentPart(s[end]) {
		for end < len(s) && isIdentPart(s[end]) {
			end++
		}
		l.pos = start + end
		return token{kind: tIllegal, text: s[:end], pos: start}, nil
	}
	l.pos = start + end
	return token{kind: tNumber, text: s[:end], pos: start}, nil
}
