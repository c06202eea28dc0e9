package sfclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error codes the adapter reacts to; Salesforce returns them as errorCode
// in REST error arrays and as statusCode in collection items.
const (
	// CodeInvalidSession means the access token expired or was revoked.
	CodeInvalidSession = "INVALID_SESSION_ID"
	// CodeUnableToLockRow means a row lock was not obtained in time;
	// retrying later is expected to succeed.
	CodeUnableToLockRow = "UNABLE_TO_LOCK_ROW"
	// CodeRequestLimitExceeded means the org's daily API allocation is
	// used up.
	CodeRequestLimitExceeded = "REQUEST_LIMIT_EXCEEDED"
)

// ErrBudgetExhausted is returned, without calling Salesforce, when a call
// would take the org's API usage past the configured share of its daily
// allocation. The caller retries later.
var ErrBudgetExhausted = errors.New("salesforce api budget exhausted")

// ErrLimitExceeded is returned when Salesforce itself refused a call with
// REQUEST_LIMIT_EXCEEDED: the whole org is out of API calls.
var ErrLimitExceeded = errors.New("salesforce api request limit exceeded")

// ErrorItem is one entry of a Salesforce REST error array, or one error of
// a collection item (whose key is statusCode instead of errorCode).
type ErrorItem struct {
	// Code is the errorCode / statusCode, e.g. REQUIRED_FIELD_MISSING.
	Code string
	// Message is Salesforce's message, meant for people.
	Message string
	// Fields lists the fields the error is about, if any.
	Fields []string
}

// UnmarshalJSON accepts both the REST shape (errorCode) and the
// collections shape (statusCode).
func (e *ErrorItem) UnmarshalJSON(b []byte) error {
	var raw struct {
		ErrorCode  string   `json:"errorCode"`
		StatusCode string   `json:"statusCode"`
		Message    string   `json:"message"`
		Fields     []string `json:"fields"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	e.Code = raw.ErrorCode
	if e.Code == "" {
		e.Code = raw.StatusCode
	}
	e.Message, e.Fields = raw.Message, raw.Fields
	return nil
}

// APIError is a REST call that Salesforce answered with an error status.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Errors is the decoded error array; empty when the body was not one
	// (an HTML page from a proxy, say).
	Errors []ErrorItem
	// Op names the operation, for messages.
	Op string
}

// Error renders the status and the first error.
func (e *APIError) Error() string {
	if len(e.Errors) == 0 {
		return fmt.Sprintf("salesforce %s: HTTP %d", e.Op, e.Status)
	}
	return fmt.Sprintf("salesforce %s: HTTP %d %s: %s", e.Op, e.Status, e.Errors[0].Code, e.Errors[0].Message)
}

// Code returns the first error code, or "" when there is none.
func (e *APIError) Code() string {
	if len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// HasCode reports whether any entry of the error array carries code.
func (e *APIError) HasCode(code string) bool {
	for _, it := range e.Errors {
		if it.Code == code {
			return true
		}
	}
	return false
}

// Temporary reports whether repeating the same request later may succeed:
// server errors and row-lock contention.
func (e *APIError) Temporary() bool {
	return e.Status >= http.StatusInternalServerError || e.HasCode(CodeUnableToLockRow)
}

// decodeAPIError builds an APIError from a response body, tolerating bodies
// that are not Salesforce's error array.
func decodeAPIError(op string, status int, body []byte) *APIError {
	e := &APIError{Status: status, Op: op}
	var items []ErrorItem
	if err := json.Unmarshal(body, &items); err == nil {
		e.Errors = items
		return e
	}
	var one ErrorItem
	if err := json.Unmarshal(body, &one); err == nil && one.Code != "" {
		e.Errors = []ErrorItem{one}
	}
	return e
}

// AuthError is a token request that the OAuth endpoint refused.
type AuthError struct {
	// Status is the HTTP status code.
	Status int
	// Code is the OAuth error, e.g. invalid_grant.
	Code string
	// Description is the OAuth error_description.
	Description string
}

// Error renders the OAuth error.
func (e *AuthError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("salesforce token request: HTTP %d", e.Status)
	}
	return fmt.Sprintf("salesforce token request: HTTP %d %s: %s", e.Status, e.Code, e.Description)
}

// Temporary reports whether the token endpoint failed for reasons other
// than the credentials (a 5xx or a temporarily_unavailable answer).
func (e *AuthError) Temporary() bool {
	return e.Status >= http.StatusInternalServerError || strings.EqualFold(e.Code, "temporarily_unavailable")
}

// reason is the token counter's reason for e: never the description,
// which is Salesforce's free text.
func (e *AuthError) reason() string {
	switch {
	case e.Temporary() || e.Status == http.StatusTooManyRequests:
		return ReasonUnavailable
	case strings.EqualFold(e.Code, "invalid_grant"):
		return ReasonInvalidGrant
	case strings.EqualFold(e.Code, "invalid_client"), strings.EqualFold(e.Code, "invalid_client_id"):
		return ReasonInvalidClient
	default:
		return ReasonRejected
	}
}
