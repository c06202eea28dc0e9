// Package auth obtains the bearer tokens Partner Center needs: app + user
// tokens from Entra ID (v1 endpoint), per audience, cached until shortly
// before they expire.
//
// Two grants are supported. The Secure Application Model (SAM), which
// MFA-protected partner accounts need: an operator consents once with the
// device-code flow (Login), and the adapter then redeems the stored refresh
// token, which Entra rotates on every redemption, so each redemption writes
// the new token back in the same locked step (see RefreshStore). The
// resource-owner password grant is only for test tenants without MFA.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Grant types of the v1 token endpoint.
const (
	grantPassword     = "password"
	grantRefreshToken = "refresh_token"
	grantDeviceCode   = "urn:ietf:params:oauth:grant-type:device_code"
)

// Token is what the token endpoint returned.
type Token struct {
	// AccessToken is the bearer token.
	AccessToken string
	// RefreshToken is the new refresh token, if one was returned.
	RefreshToken string
	// ExpiresAt is when AccessToken stops working.
	ExpiresAt time.Time
	// Resource is the audience the token is for.
	Resource string
}

// OAuthError is an error answer of the token endpoint, e.g. invalid_grant.
// The description comes from Entra ID and names no secret.
type OAuthError struct {
	// Status is the HTTP status.
	Status int
	// Code is the OAuth error code, e.g. "authorization_pending".
	Code string
	// Description is Entra's text (AADSTSnnnn: …).
	Description string
}

// Error implements error.
func (e *OAuthError) Error() string {
	desc, _, _ := strings.Cut(e.Description, "\r\n")
	return fmt.Sprintf("token endpoint: HTTP %d %s: %s", e.Status, e.Code, desc)
}

// Endpoint talks to the Entra ID v1 token and device-code endpoints.
type Endpoint struct {
	// TokenURL is {login}/{tenant}/oauth2/token.
	TokenURL string
	// DeviceCodeURL is {login}/{tenant}/oauth2/devicecode.
	DeviceCodeURL string
	// ClientID and ClientSecret identify the application; the secret is
	// optional for the refresh and device-code grants.
	ClientID, ClientSecret string
	// HTTP makes the calls; nil means http.DefaultClient.
	HTTP *http.Client
	// Attempts bounds attempts on 5xx, 429 and transport errors (default 3).
	Attempts int
}

// tokenResponse is the v1 token JSON, in which every number is a string.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    string `json:"expires_in"`
	ExpiresOn    string `json:"expires_on"`
	Resource     string `json:"resource"`
}

// Password redeems a username and password (test tenants only).
func (e *Endpoint) Password(ctx context.Context, resource, username, password string) (Token, error) {
	form := url.Values{
		"grant_type": {grantPassword}, "resource": {resource}, "scope": {"openid"},
		"client_id": {e.ClientID}, "client_secret": {e.ClientSecret},
		"username": {username}, "password": {password},
	}
	return e.token(ctx, resource, form)
}

// Refresh redeems a refresh token; the answer carries the rotated one.
func (e *Endpoint) Refresh(ctx context.Context, resource, refreshToken string) (Token, error) {
	form := url.Values{
		"grant_type": {grantRefreshToken}, "resource": {resource},
		"client_id": {e.ClientID}, "refresh_token": {refreshToken},
	}
	if e.ClientSecret != "" {
		form.Set("client_secret", e.ClientSecret)
	}
	return e.token(ctx, resource, form)
}

// DeviceCode is an answer of the device-code endpoint.
type DeviceCode struct {
	// DeviceCode is what the client polls with; never shown.
	DeviceCode string
	// UserCode is what the operator types at VerificationURL.
	UserCode string
	// VerificationURL is where the operator signs in.
	VerificationURL string
	// Message is Entra's instruction text.
	Message string
	// Interval is the advertised polling interval.
	Interval time.Duration
	// ExpiresAt is when the device code stops working.
	ExpiresAt time.Time
}

// StartDeviceCode begins a device-code sign-in for resource.
func (e *Endpoint) StartDeviceCode(ctx context.Context, resource string) (DeviceCode, error) {
	form := url.Values{"client_id": {e.ClientID}, "resource": {resource}}
	body, err := e.post(ctx, e.DeviceCodeURL, form)
	if err != nil {
		return DeviceCode{}, fmt.Errorf("start device code: %w", err)
	}
	var r struct {
		DeviceCode      string `json:"device_code"`
		UserCode        string `json:"user_code"`
		VerificationURL string `json:"verification_url"`
		VerificationURI string `json:"verification_uri"`
		Message         string `json:"message"`
		Interval        string `json:"interval"`
		ExpiresIn       string `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return DeviceCode{}, fmt.Errorf("start device code: decode: %w", err)
	}
	if r.DeviceCode == "" || r.UserCode == "" {
		return DeviceCode{}, errors.New("start device code: answer without device_code or user_code")
	}
	dc := DeviceCode{
		DeviceCode: r.DeviceCode, UserCode: r.UserCode, VerificationURL: r.VerificationURL, Message: r.Message,
		Interval: 5 * time.Second, ExpiresAt: time.Now().Add(15 * time.Minute),
	}
	if dc.VerificationURL == "" {
		dc.VerificationURL = r.VerificationURI
	}
	if n, err := strconv.Atoi(r.Interval); err == nil && n > 0 {
		dc.Interval = time.Duration(n) * time.Second
	}
	if n, err := strconv.Atoi(r.ExpiresIn); err == nil && n > 0 {
		dc.ExpiresAt = time.Now().Add(time.Duration(n) * time.Second)
	}
	return dc, nil
}

// PollDeviceCode polls the token endpoint until the sign-in is approved,
// declined or expired, or ctx ends.
func (e *Endpoint) PollDeviceCode(ctx context.Context, resource string, dc DeviceCode) (Token, error) {
	interval := dc.Interval
	for {
		form := url.Values{"grant_type": {grantDeviceCode}, "client_id": {e.ClientID}, "code": {dc.DeviceCode}, "resource": {resource}}
		tok, err := e.token(ctx, resource, form)
		var oe *OAuthError
		switch {
		case err == nil:
			return tok, nil
		case errors.As(err, &oe) && oe.Code == "authorization_pending":
		case errors.As(err, &oe) && oe.Code == "slow_down":
			interval += 5 * time.Second
		default:
			return Token{}, fmt.Errorf("device code sign-in: %w", err)
		}
		if time.Now().After(dc.ExpiresAt) {
			return Token{}, errors.New("device code sign-in: the code expired before anyone approved it")
		}
		if err := sleep(ctx, interval); err != nil {
			return Token{}, fmt.Errorf("device code sign-in: %w", err)
		}
	}
}

// token posts a token request and decodes the answer.
func (e *Endpoint) token(ctx context.Context, resource string, form url.Values) (Token, error) {
	body, err := e.post(ctx, e.TokenURL, form)
	if err != nil {
		return Token{}, err
	}
	var r tokenResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return Token{}, &failure{ReasonBadResponse, fmt.Errorf("token endpoint: decode answer: %w", err)}
	}
	if r.AccessToken == "" {
		return Token{}, &failure{ReasonBadResponse, errors.New("token endpoint: answer without access_token")}
	}
	t := Token{AccessToken: r.AccessToken, RefreshToken: r.RefreshToken, Resource: resource}
	if n, err := strconv.ParseInt(r.ExpiresOn, 10, 64); err == nil && n > 0 {
		t.ExpiresAt = time.Unix(n, 0)
	} else if n, err := strconv.Atoi(r.ExpiresIn); err == nil && n > 0 {
		t.ExpiresAt = time.Now().Add(time.Duration(n) * time.Second)
	} else {
		t.ExpiresAt = time.Now().Add(time.Hour)
	}
	return t, nil
}

// post sends a form, retrying 5xx, 429 and transport errors a few times,
// and returns the body of a 200 or an *OAuthError.
func (e *Endpoint) post(ctx context.Context, endpoint string, form url.Values) ([]byte, error) {
	client := e.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	attempts := e.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	enc := form.Encode()
	var lastErr error
	for attempt := 1; attempt <= attempts; attempt++ {
		if attempt > 1 {
			if err := sleep(ctx, time.Duration(attempt-1)*500*time.Millisecond); err != nil {
				return nil, err
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(enc))
		if err != nil {
			return nil, fmt.Errorf("token endpoint: build request: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Accept", "application/json")
		res, err := client.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("token endpoint: %w", ctx.Err())
			}
			lastErr = &failure{ReasonUnavailable, fmt.Errorf("token endpoint: %w", err)}
			continue
		}
		body, rerr := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		res.Body.Close()
		if rerr != nil {
			lastErr = &failure{ReasonUnavailable, fmt.Errorf("token endpoint: read answer: %w", rerr)}
			continue
		}
		if res.StatusCode == http.StatusOK {
			return body, nil
		}
		oe := &OAuthError{Status: res.StatusCode}
		var eb struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &eb) == nil {
			oe.Code, oe.Description = eb.Error, eb.Description
		}
		if res.StatusCode == http.StatusTooManyRequests || res.StatusCode >= 500 {
			lastErr = oe
			continue
		}
		return nil, oe
	}
	return nil, lastErr
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
