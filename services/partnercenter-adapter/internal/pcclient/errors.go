package pcclient

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// errorBody covers the three error shapes Partner Center uses: the
// Referrals API's {"error":{code,message,target}}, the CSP/webhook API's
// {code,description} and the throttling body {statusCode,message}.
type errorBody struct {
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Target  string `json:"target"`
	} `json:"error"`
	Code        json.RawMessage `json:"code"`
	Description string          `json:"description"`
	Message     string          `json:"message"`
}

// maxMessage bounds the message kept from an error body.
const maxMessage = 512

// decodeError turns an unaccepted response into an *APIError, keeping what
// the body says when it is one of the known shapes.
func decodeError(op string, r response) *APIError {
	e := &APIError{Op: op, Status: r.status, RetryAfter: parseRetryAfter(r.header, time.Now())}
	var b errorBody
	if len(r.body) > 0 && json.Unmarshal(r.body, &b) == nil {
		switch {
		case b.Error != nil:
			e.Code, e.Message, e.Target = b.Error.Code, b.Error.Message, b.Error.Target
		case b.Description != "":
			e.Code, e.Message = rawCode(b.Code), b.Description
		case b.Message != "":
			e.Message = b.Message
		}
	}
	if e.Message == "" {
		e.Message = http.StatusText(r.status)
	}
	if len(e.Message) > maxMessage {
		e.Message = strings.ToValidUTF8(e.Message[:maxMessage], "") + "…"
	}
	return e
}

// rawCode prints a JSON code that may be a string or a number.
func rawCode(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		if _, err := strconv.ParseFloat(n.String(), 64); err == nil {
			return n.String()
		}
	}
	return ""
}
