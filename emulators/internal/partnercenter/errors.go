package partnercenter

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"

	"github.com/cosell/cosell/emulators/internal/emucore"
)

// Error codes of the Referrals API error body. The documented set is
// accessDenied, generalException, invalidRequest, itemNotFound,
// preconditionFailed, resourceModified, serviceNotAvailable and
// unauthenticated; the emulator uses no others.
const (
	codeAccessDenied       = "accessDenied"
	codeGeneralException   = "generalException"
	codeInvalidRequest     = "invalidRequest"
	codeItemNotFound       = "itemNotFound"
	codePreconditionFailed = "preconditionFailed"
	codeServiceUnavailable = "serviceNotAvailable"
	codeUnauthenticated    = "unauthenticated"
)

// apiError is a Referrals API failure ready to be rendered in the
// {"error":{code,message,target,innerError}} shape.
type apiError struct {
	Status  int
	Code    string
	Message string
	Target  string
	Inner   *innerError
}

// innerError is the nested innerError object; Partner Center puts a numeric
// service code there (for example 99918 on an eTag mismatch).
type innerError struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Details *string `json:"details"`
}

func (e *apiError) Error() string {
	if e.Target != "" {
		return fmt.Sprintf("%s (%s): %s", e.Code, e.Target, e.Message)
	}
	return e.Code + ": " + e.Message
}

func badRequest(target, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: codeInvalidRequest, Target: target, Message: fmt.Sprintf(format, args...)}
}

func notFound(id string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: codeItemNotFound, Target: "referral",
		Message: fmt.Sprintf("Referral %q was not found.", id)}
}

// preconditionFailed is the body observed from the real service on an eTag
// mismatch (reference §2.11), reproduced field for field.
func preconditionFailed() *apiError {
	return &apiError{
		Status:  http.StatusPreconditionFailed,
		Code:    codePreconditionFailed,
		Message: "A precondition provided in the request (such as an if-match header) does not match the resource's current state.",
		Target:  "ETag",
		Inner:   &innerError{Code: "99918", Message: "One of the specified pre-condition is not met. Etag value did not Match"},
	}
}

type errorBody struct {
	Error errorObject `json:"error"`
}

type errorObject struct {
	Code       string      `json:"code"`
	Message    string      `json:"message"`
	Target     *string     `json:"target"`
	InnerError *innerError `json:"innerError"`
}

// writeAPIError renders e in the Referrals API error shape.
func writeAPIError(w http.ResponseWriter, e *apiError) {
	body := errorBody{Error: errorObject{Code: e.Code, Message: e.Message, InnerError: e.Inner}}
	if e.Target != "" {
		t := e.Target
		body.Error.Target = &t
	}
	emucore.WriteJSON(w, e.Status, body)
}

// newID returns a random RFC 4122 version 4 UUID, the shape of every id the
// real service assigns.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms.
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}
