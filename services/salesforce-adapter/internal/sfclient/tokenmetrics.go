package sfclient

import (
	"fmt"

	"go.opentelemetry.io/otel/metric"

	"github.com/cosell/cosell/libs/telemetry"
)

// MetricTokenRefreshes is the counter of token requests (Prometheus:
// cosell_salesforce_token_refreshes_total): every session the client
// mints, at the first call and after each INVALID_SESSION_ID, is one
// sample under a telemetry.OutcomeCounter: outcome "ok", "error" (with
// one of the reasons below) or "canceled" (the caller gave up, e.g. at
// shutdown). A failed request sends no REST call,
// so only this counter shows it.
const MetricTokenRefreshes = "cosell.salesforce.token.refreshes"

// Reasons of a failed token request: a small fixed set, so that neither a
// token nor Salesforce's error text can reach a metric label.
const (
	// ReasonInvalidGrant: Salesforce refused the assertion or the user
	// (certificate not the connected app's, wrong audience, user not
	// pre-authorised, inactive or locked).
	ReasonInvalidGrant = "invalid_grant"
	// ReasonInvalidClient: an unknown consumer key or a wrong consumer
	// secret (invalid_client_id, invalid_client).
	ReasonInvalidClient = "invalid_client"
	// ReasonRejected: any other refusal of the token endpoint (4xx).
	ReasonRejected = "rejected"
	// ReasonUnavailable: the token endpoint could not be reached or
	// answered 5xx, 429 or temporarily_unavailable.
	ReasonUnavailable = "unavailable"
	// ReasonBadResponse: a 200 without a usable token or instance URL.
	ReasonBadResponse = "bad_response"
	// ReasonOther: anything else (e.g. the assertion could not be signed).
	ReasonOther = "other"
)

// tokenReasons lists every reason a failed request is counted under.
var tokenReasons = []string{ReasonInvalidGrant, ReasonInvalidClient, ReasonRejected, ReasonUnavailable, ReasonBadResponse, ReasonOther}

// newTokenRefreshes creates the token counter with every outcome and
// reason at zero, so the series exist (and alerts on them evaluate) before
// the first failure.
func newTokenRefreshes(m metric.Meter) (*telemetry.OutcomeCounter, error) {
	c, err := telemetry.NewOutcomeCounter(m, MetricTokenRefreshes,
		"Salesforce OAuth token requests (JWT bearer or client credentials), by outcome and, for errors, reason.",
		"{request}", tokenReasons)
	if err != nil {
		return nil, fmt.Errorf("token metric: %w", err)
	}
	return c, nil
}
