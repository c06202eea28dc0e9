package salesforce

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// apiError is one entry of Salesforce's REST error array. Fields is
// omitted when nil and written as [] when empty but non-nil, because real
// responses do both (ENTITY_IS_DELETED carries "fields":[], NOT_FOUND none).
type apiError struct {
	Message   string
	ErrorCode string
	Fields    []string
}

// MarshalJSON writes the error in Salesforce's key order.
func (e apiError) MarshalJSON() ([]byte, error) {
	var b strings.Builder
	b.WriteString(`{"message":`)
	m, _ := json.Marshal(e.Message)
	b.Write(m)
	b.WriteString(`,"errorCode":`)
	c, _ := json.Marshal(e.ErrorCode)
	b.Write(c)
	if e.Fields != nil {
		b.WriteString(`,"fields":`)
		f, _ := json.Marshal(e.Fields)
		b.Write(f)
	}
	b.WriteByte('}')
	return []byte(b.String()), nil
}

// restError is a failed REST operation: the HTTP status and the error
// array written as the body. It is also the error type returned by the
// record store and validation, so a handler renders it unchanged and a
// collection call turns it into per-item statusCode errors.
type restError struct {
	Status int
	Errors []apiError
}

func (e *restError) Error() string {
	if len(e.Errors) == 0 {
		return strconv.Itoa(e.Status)
	}
	return e.Errors[0].ErrorCode + ": " + e.Errors[0].Message
}

func newErr(status int, code, msg string, fields ...string) *restError {
	return &restError{Status: status, Errors: []apiError{{Message: msg, ErrorCode: code, Fields: fields}}}
}

// newFieldErr is a 400 whose fields array is always present.
func newFieldErr(code, msg string, fields ...string) *restError {
	if fields == nil {
		fields = []string{}
	}
	return &restError{Status: http.StatusBadRequest, Errors: []apiError{{Message: msg, ErrorCode: code, Fields: fields}}}
}

const msgNotFound = "The requested resource does not exist"

func errNotFound() *restError { return newErr(http.StatusNotFound, "NOT_FOUND", msgNotFound) }

func errEntityDeleted() *restError {
	return &restError{Status: http.StatusNotFound, Errors: []apiError{{Message: "entity is deleted", ErrorCode: "ENTITY_IS_DELETED", Fields: []string{}}}}
}

func errInvalidSession() *restError {
	return newErr(http.StatusUnauthorized, "INVALID_SESSION_ID", "Session expired or invalid")
}

func errMalformedID(id string) *restError {
	return newErr(http.StatusBadRequest, "MALFORMED_ID", "malformed id "+id)
}

func errJSONParser(msg string) *restError {
	return newErr(http.StatusBadRequest, "JSON_PARSER_ERROR", msg)
}

func errMethodNotAllowed(method string, allowed ...string) *restError {
	return newErr(http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED",
		"HTTP Method '"+method+"' not allowed. Allowed are "+strings.Join(allowed, ","))
}

// collectionError is one entry of a per-record error list in sObject
// Collections responses, where the key is statusCode (not errorCode) and
// fields is always present.
type collectionError struct {
	StatusCode string   `json:"statusCode"`
	Message    string   `json:"message"`
	Fields     []string `json:"fields"`
}

func toCollectionErrors(e *restError) []collectionError {
	out := make([]collectionError, 0, len(e.Errors))
	for _, a := range e.Errors {
		f := a.Fields
		if f == nil {
			f = []string{}
		}
		out = append(out, collectionError{StatusCode: a.ErrorCode, Message: a.Message, Fields: f})
	}
	return out
}

// writeError renders err as Salesforce's error array.
func writeError(w http.ResponseWriter, err *restError) {
	writeJSON(w, err.Status, err.Errors)
}

// writeJSON writes v with the status. Salesforce sends
// "application/json;charset=UTF-8".
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(`[{"message":"response encoding failed","errorCode":"UNKNOWN_EXCEPTION"}]`)
		status = http.StatusInternalServerError
	}
	writeRaw(w, status, b)
}

func writeRaw(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
