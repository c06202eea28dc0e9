package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"go.opentelemetry.io/otel/metric"

	"github.com/cosell/cosell/libs/telemetry"
)

// MetricTokenRefreshes is the counter of token grants (Prometheus:
// partnercenter_adapter_token_refreshes_total). Every call of a Grant is
// one sample under a telemetry.OutcomeCounter: outcome "ok", "error" (with
// one of the reasons below) or "canceled" (the caller gave up, e.g. at
// shutdown).
const MetricTokenRefreshes = "partnercenter_adapter.token.refreshes"

// Reasons of a failed grant: a small fixed set, so that neither a token
// nor Entra's error text can reach a metric label.
const (
	// ReasonNoRefreshToken: nobody has consented yet (ErrNoRefreshToken).
	ReasonNoRefreshToken = "no_refresh_token"
	// ReasonTokenKey: the stored refresh token does not open with
	// PC_TOKEN_KEY (ErrRefreshTokenUnreadable).
	ReasonTokenKey = "token_key"
	// ReasonStore: the refresh token's row could not be read, locked or
	// written (Postgres).
	ReasonStore = "store"
	// ReasonInvalidGrant: Entra refused the refresh token or the password
	// (revoked, expired, reused consent; wrong password).
	ReasonInvalidGrant = "invalid_grant"
	// ReasonInvalidClient: Entra refused the application's credentials
	// (wrong or expired PC_CLIENT_SECRET).
	ReasonInvalidClient = "invalid_client"
	// ReasonRejected: any other refusal of the token endpoint (4xx).
	ReasonRejected = "rejected"
	// ReasonUnavailable: the token endpoint could not be reached or kept
	// answering 5xx or 429, retries included.
	ReasonUnavailable = "unavailable"
	// ReasonBadResponse: the token endpoint answered 200 with something
	// that is not a usable token.
	ReasonBadResponse = "bad_response"
	// ReasonOther: anything else.
	ReasonOther = "other"
)

// reasons lists every reason a failed grant is counted under.
var reasons = []string{
	ReasonNoRefreshToken, ReasonTokenKey, ReasonStore, ReasonInvalidGrant, ReasonInvalidClient,
	ReasonRejected, ReasonUnavailable, ReasonBadResponse, ReasonOther,
}

// failure tags an error with the reason it is counted under, keeping its
// text: it is how the endpoint and SAMGrant tell Metered what they know
// about a failure that carries no type of its own.
type failure struct {
	reason string
	err    error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// Metered returns a Grant that counts every call of g in the counter
// MetricTokenRefreshes of meter, by outcome and, for errors, by reason.
// Every outcome and reason is counted at zero from the start, so the
// series exist (and alerts on them evaluate) before the first failure.
func Metered(g Grant, meter metric.Meter) (Grant, error) {
	refreshes, err := telemetry.NewOutcomeCounter(meter, MetricTokenRefreshes,
		"Entra ID token grants (refresh-token redemptions, password grants), by outcome and, for errors, reason.",
		"{grant}", reasons)
	if err != nil {
		return nil, fmt.Errorf("auth: metric: %w", err)
	}
	return func(ctx context.Context, resource string) (Token, error) {
		tok, err := g(ctx, resource)
		why := ""
		if err != nil {
			why = reason(err)
		}
		refreshes.Record(ctx, err, why)
		return tok, err
	}, nil
}

// reason classifies a grant's error into one of reasons.
func reason(err error) string {
	var oe *OAuthError
	var f *failure
	switch {
	case errors.Is(err, ErrNoRefreshToken):
		return ReasonNoRefreshToken
	case errors.Is(err, ErrRefreshTokenUnreadable):
		return ReasonTokenKey
	case errors.As(err, &oe):
		switch {
		case oe.Status == http.StatusTooManyRequests || oe.Status >= 500:
			return ReasonUnavailable
		case oe.Code == "invalid_grant":
			return ReasonInvalidGrant
		case oe.Code == "invalid_client":
			return ReasonInvalidClient
		default:
			return ReasonRejected
		}
	case errors.As(err, &f):
		return f.reason
	default:
		return ReasonOther
	}
}
