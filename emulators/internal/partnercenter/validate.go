package partnercenter

import (
	"net/http"
	"slices"
	"strings"
)

// serverOwnedFields are the top-level properties only the service sets.
// Client values for them are ignored on create (except engagementId, see
// handleCreate) and on PUT, and JSON Patch cannot reach them because they
// are not on the patchable-path list.
func serverOwnedFields() []string {
	return []string{
		"id", "engagementId", "organizationId", "organizationName", "mpnId",
		"createdDateTime", "updatedDateTime", "expirationDateTime", "acceptedDateTime", "closedDateTime",
		"eTag", "links", "direction", "trackingInfo", "registrations", "registrationStatus",
	}
}

// substatusesOf is the substatus column of the transition table (reference
// §2.13): which substatus values belong to each status.
func substatusesOf(status string) []string {
	switch status {
	case "New":
		return []string{"Pending", "Received"}
	case "Active":
		return []string{"Accepted"}
	case "Closed":
		return []string{"Won", "Lost", "Declined", "Expired"}
	}
	return nil
}

// nextStatuses is the "allowed next status" column of the transition table.
func nextStatuses(status string) []string {
	switch status {
	case "New":
		return []string{"New", "Active", "Closed"}
	case "Active":
		return []string{"Active", "Closed"}
	case "Closed":
		return []string{"Closed"}
	}
	return nil
}

func getMap(m map[string]any, key string) map[string]any {
	v, _ := m[key].(map[string]any)
	return v
}

func getString(m map[string]any, key string) string {
	v, _ := m[key].(string)
	return v
}

func getSlice(m map[string]any, key string) []any {
	v, _ := m[key].([]any)
	return v
}

// validateReferral applies the service's content rules to a complete,
// bound referral: the required parts, the customer country, co-sell
// prerequisites and status/substatus consistency. It runs after every write
// (create, PUT, PATCH), so no write path can store a referral that create
// would refuse.
func (s *Server) validateReferral(doc map[string]any) *apiError {
	if doc["type"] == nil {
		return badRequest("type", "The type field is required.")
	}
	cp := getMap(doc, "customerProfile")
	if cp == nil {
		return badRequest("customerProfile", "The customerProfile field is required.")
	}
	if getMap(doc, "consent") == nil {
		return badRequest("consent", "The consent field is required.")
	}
	details := getMap(doc, "details")
	if details == nil {
		return badRequest("details", "The details field is required.")
	}
	if strings.TrimSpace(getString(cp, "name")) == "" {
		return badRequest("customerProfile.name", "The customer name is required.")
	}
	country := getString(getMap(cp, "address"), "country")
	if country == "" {
		return badRequest("customerProfile.address.country", "A two-letter country code is required for the customer address.")
	}
	if _, ok := s.countries[country]; !ok {
		return badRequest("customerProfile.address.country",
			"'%s' is not a valid country code; use a two-letter ISO 3166-1 alpha-2 code such as 'US'.", country)
	}
	if v, ok := details["dealValue"].(float64); ok && v < 0 {
		return badRequest("details.dealValue", "The deal value must not be negative.")
	}
	if c := getString(details, "currency"); c != "" && !isCurrencyCode(c) {
		return badRequest("details.currency", "'%s' is not a valid currency; use a three-letter ISO 4217 code such as 'USD'.", c)
	}
	if doc["type"] == "Shared" {
		ok := false
		for _, sol := range getSlice(getMap(details, "requirements"), "solutions") {
			if m, _ := sol.(map[string]any); m != nil && strings.TrimSpace(getString(m, "id")) != "" {
				ok = true
			}
		}
		if !ok {
			return badRequest("details.requirements.solutions", "Solution ID is required for co-sell: a Shared referral needs at least one solution with an id.")
		}
	}
	if code := getString(getMap(doc, "inviteContext"), "assistanceRequestCode"); code != "" && code != "Unknown" {
		if len(getSlice(cp, "team")) == 0 {
			return badRequest("customerProfile.team", "A customer contact is required when Microsoft help is requested (inviteContext.assistanceRequestCode is %s).", code)
		}
	}
	status, sub := getString(doc, "status"), getString(doc, "substatus")
	if status != "" && !slices.Contains(substatusesOf(status), sub) {
		return badRequest("substatus", "Substatus '%s' is not valid for status '%s'; allowed: %s.",
			sub, status, strings.Join(substatusesOf(status), ", "))
	}
	return nil
}

// checkTransition enforces the transition table between the stored
// referral cur and the proposed next, plus the rules around it: closed
// referrals are immutable, only the service expires referrals, and a
// decline needs a reason.
func (s *Server) checkTransition(cur, next map[string]any) *apiError {
	from := getString(cur, "status")
	if from == "Closed" {
		return &apiError{Status: s.cfg.ClosedWriteStatus, Code: codeInvalidRequest, Target: "status",
			Message: "The referral is closed (" + getString(cur, "substatus") + ") and can no longer be updated."}
	}
	to, sub := getString(next, "status"), getString(next, "substatus")
	if !slices.Contains(nextStatuses(from), to) {
		return badRequest("status", "Status cannot change from '%s' to '%s'; allowed: %s.",
			from, to, strings.Join(nextStatuses(from), ", "))
	}
	if !slices.Contains(substatusesOf(to), sub) {
		return badRequest("substatus", "Substatus '%s' is not valid for status '%s'; allowed: %s.",
			sub, to, strings.Join(substatusesOf(to), ", "))
	}
	if sub == "Expired" {
		return badRequest("substatus", "Only Partner Center expires a referral; 'Expired' cannot be set by a client.")
	}
	if sub == "Declined" && strings.TrimSpace(getString(next, "statusReason")) == "" {
		return badRequest("statusReason", "A reason (statusReason) is required to decline a referral.")
	}
	return nil
}

// applyStatusTimestamps records when a referral became active or closed.
func applyStatusTimestamps(cur, next map[string]any, now string) {
	from, to := getString(cur, "status"), getString(next, "status")
	if to == "Active" && from != "Active" && next["acceptedDateTime"] == nil {
		next["acceptedDateTime"] = now
	}
	if to == "Closed" && from != "Closed" {
		next["closedDateTime"] = now
	}
}

func isCurrencyCode(c string) bool {
	if len(c) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		if c[i] < 'A' || c[i] > 'Z' {
			return false
		}
	}
	return true
}

// canWrite reports whether the signed-in partner may change doc: only
// referrals owned by the emulated partner organisation are writable through
// the API; Microsoft's side of an engagement is read-only to partners.
func (s *Server) canWrite(doc map[string]any) *apiError {
	if getString(doc, "organizationId") == s.cfg.OrganizationID {
		return nil
	}
	return &apiError{Status: http.StatusForbidden, Code: codeAccessDenied, Target: "referral",
		Message: "Caller is not authorized to access the resource.",
		Inner:   &innerError{Code: "accessDenied", Message: "The referral belongs to another organization."}}
}
