// Package notification parses and validates the body of a Partner Center
// webhook delivery and derives what ingress needs from it: which events are
// accepted, the referral id, and the deterministic message id that lets
// JetStream drop redeliveries of the same change.
//
// It is pure: no I/O, so every rule is covered by table tests.
package notification

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Event names Partner Center delivers that ingress accepts: the four
// referral events the co-sell solution registers, and test-created, which a
// validation request sends.
const (
	EventReferralCreated        = "referral-created"
	EventReferralUpdated        = "referral-updated"
	EventRelatedReferralCreated = "related-referral-created"
	EventRelatedReferralUpdated = "related-referral-updated"
	EventTestCreated            = "test-created"
)

// ErrMalformed wraps every reason a body is rejected with 400.
var ErrMalformed = errors.New("malformed notification")

// Notification is a validated delivery body.
type Notification struct {
	// EventName is one of the accepted event names, lower case.
	EventName string
	// ResourceURI is the resource that changed, as sent.
	ResourceURI string
	// ResourceName is e.g. "referral" or "test".
	ResourceName string
	// AuditURI is optional ("" when null or absent).
	AuditURI string
	// ResourceChangeUTC is when the resource changed, in UTC.
	ResourceChangeUTC time.Time
	// ReferralID is the last path segment of ResourceURI for referral
	// events, "" for test-created.
	ReferralID string
}

// wire is the JSON on the wire. Partner Center sends PascalCase while its
// swagger says camelCase; encoding/json matches keys case-insensitively, so
// both bind.
type wire struct {
	EventName             string  `json:"EventName"`
	ResourceURI           string  `json:"ResourceUri"`
	ResourceName          string  `json:"ResourceName"`
	AuditURI              *string `json:"AuditUri"`
	ResourceChangeUTCDate string  `json:"ResourceChangeUtcDate"`
}

// IsTest reports whether n is a validation event, which is recorded but
// starts no sync.
func (n Notification) IsTest() bool { return n.EventName == EventTestCreated }

// Parse decodes and validates body. Errors wrap ErrMalformed and say what
// is wrong in words fit for the response body.
func Parse(body []byte) (Notification, error) {
	var w wire
	if err := json.Unmarshal(body, &w); err != nil {
		return Notification{}, fmt.Errorf("%w: body is not a JSON object: %v", ErrMalformed, err)
	}
	var missing []string
	if w.EventName == "" {
		missing = append(missing, "EventName")
	}
	if w.ResourceURI == "" {
		missing = append(missing, "ResourceUri")
	}
	if w.ResourceName == "" {
		missing = append(missing, "ResourceName")
	}
	if w.ResourceChangeUTCDate == "" {
		missing = append(missing, "ResourceChangeUtcDate")
	}
	if len(missing) > 0 {
		return Notification{}, fmt.Errorf("%w: missing %s", ErrMalformed, strings.Join(missing, ", "))
	}
	n := Notification{
		EventName:    strings.ToLower(w.EventName),
		ResourceURI:  w.ResourceURI,
		ResourceName: w.ResourceName,
	}
	if w.AuditURI != nil {
		n.AuditURI = *w.AuditURI
	}
	if !accepted(n.EventName) {
		return Notification{}, fmt.Errorf("%w: event %q is not handled (accepted: %s)", ErrMalformed, w.EventName, strings.Join(AcceptedEvents(), ", "))
	}
	changed, err := parseChangeTime(w.ResourceChangeUTCDate)
	if err != nil {
		return Notification{}, fmt.Errorf("%w: ResourceChangeUtcDate %q is not a date-time", ErrMalformed, w.ResourceChangeUTCDate)
	}
	n.ResourceChangeUTC = changed
	u, err := url.Parse(w.ResourceURI)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return Notification{}, fmt.Errorf("%w: ResourceUri is not an absolute http(s) URL", ErrMalformed)
	}
	if !n.IsTest() {
		n.ReferralID = lastSegment(u.Path)
		if n.ReferralID == "" {
			return Notification{}, fmt.Errorf("%w: ResourceUri has no referral id", ErrMalformed)
		}
	}
	return n, nil
}

// AcceptedEvents lists the event names Parse accepts.
func AcceptedEvents() []string {
	return []string{EventReferralCreated, EventReferralUpdated, EventRelatedReferralCreated, EventRelatedReferralUpdated, EventTestCreated}
}

func accepted(name string) bool {
	for _, e := range AcceptedEvents() {
		if e == name {
			return true
		}
	}
	return false
}

// MsgID is the JetStream message id of n: the SHA-256 (hex) of event name,
// resource URI and change time (UTC, RFC 3339 with nanoseconds), separated
// by newlines. Partner Center's retries of one change produce the same id,
// so JetStream's duplicate window drops them; a new change of the same
// referral has a new change time and so a new id.
func (n Notification) MsgID() string {
	h := sha256.New()
	h.Write([]byte(n.EventName))
	h.Write([]byte{'\n'})
	h.Write([]byte(n.ResourceURI))
	h.Write([]byte{'\n'})
	h.Write([]byte(n.ResourceChangeUTC.UTC().Format(time.RFC3339Nano)))
	return hex.EncodeToString(h.Sum(nil))
}

// parseChangeTime accepts RFC 3339 with any fraction of a second, and the
// offset-less form Partner Center uses in validation results (taken as UTC).
func parseChangeTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	t, err := time.Parse("2006-01-02T15:04:05.999999999", s)
	if err != nil {
		return time.Time{}, err
	}
	return t.UTC(), nil
}

func lastSegment(p string) string {
	p = strings.TrimRight(p, "/")
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		p = p[i+1:]
	}
	seg, err := url.PathUnescape(p)
	if err != nil {
		return ""
	}
	return seg
}
