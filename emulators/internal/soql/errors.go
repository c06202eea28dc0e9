package soql

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Error codes the package returns; they are Salesforce's errorCode values,
// so the server can put them in the REST error array unchanged.
const (
	CodeMalformedQuery        = "MALFORMED_QUERY"
	CodeInvalidField          = "INVALID_FIELD"
	CodeInvalidType           = "INVALID_TYPE"
	CodeInvalidFilterOperator = "INVALID_QUERY_FILTER_OPERATOR"
	CodeNumberOutsideRange    = "NUMBER_OUTSIDE_VALID_RANGE"
)

// Error is a query error as Salesforce reports it: an errorCode and a
// message. Messages of errors tied to a position carry Salesforce's echo of
// the query line, a caret and "ERROR at Row:r:Column:c" before the reason,
// because clients and people read the position from there.
type Error struct {
	Code    string
	Message string
}

// Error returns "CODE: message" for logs; the REST layer uses the fields.
func (e *Error) Error() string { return e.Code + ": " + e.Message }

// errAt builds an Error whose message points at byte offset pos of src.
func errAt(code, src string, pos int, reason string) *Error {
	if pos < 0 {
		pos = 0
	}
	if pos > len(src) {
		pos = len(src)
	}
	lineStart := strings.LastIndexByte(src[:pos], '\n') + 1
	lineEnd := strings.IndexByte(src[pos:], '\n')
	if lineEnd < 0 {
		lineEnd = len(src)
	} else {
		lineEnd += pos
	}
	row := strings.Count(src[:pos], "\n") + 1
	col := utf8.RuneCountInString(src[lineStart:pos]) + 1

	// Echo a window of the line around the error, as Salesforce does for
	// long queries, with the caret under the offending token.
	winStart := pos
	for n := 0; n < 60 && winStart > lineStart; n++ {
		_, size := utf8.DecodeLastRuneInString(src[lineStart:winStart])
		winStart -= size
	}
	winEnd := pos
	for n := 0; n < 40 && winEnd < lineEnd; n++ {
		_, size := utf8.DecodeRuneInString(src[winEnd:lineEnd])
		winEnd += size
	}
	var b strings.Builder
	b.WriteString("\n")
	b.WriteString(strings.TrimRight(src[winStart:winEnd], "\r"))
	b.WriteString("\n")
	b.WriteString(strings.Repeat(" ", utf8.RuneCountInString(src[winStart:pos])))
	b.WriteString("^\nERROR at Row:")
	b.WriteString(strconv.Itoa(row))
	b.WriteString(":Column:")
	b.WriteString(strconv.Itoa(col))
	b.WriteString("\n")
	b.WriteString(reason)
	return &Error{Code: code, Message: b.String()}
}

// syntaxError is a MALFORMED_QUERY at pos.
func syntaxError(src string, pos int, reason string) *Error {
	return errAt(CodeMalformedQuery, src, pos, reason)
}

// unsupported reports a construct that real SOQL accepts but the emulator
// does not implement. It is MALFORMED_QUERY so a client never gets a
// silently wrong answer, and the message says the emulator is the reason.
func unsupported(src string, pos int, what string) *Error {
	return syntaxError(src, pos, what+" is not supported by the cosell Salesforce emulator")
}

func noSuchColumn(src string, pos int, field, object string) *Error {
	return errAt(CodeInvalidField, src, pos, "No such column '"+field+"' on entity '"+object+
		"'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. "+
		"Please reference your WSDL or the describe call for the appropriate names.")
}

func noSuchRelationship(src string, pos int, rel string) *Error {
	return errAt(CodeInvalidField, src, pos, "Didn't understand relationship '"+rel+
		"' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. "+
		"Please reference your WSDL or the describe call for the appropriate names.")
}
