package sfclient

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cosell/cosell/libs/telemetry"
)

// Auth modes.
const (
	// AuthJWT is the OAuth 2.0 JWT bearer flow: an RS256 assertion signed
	// with the key whose certificate the connected app holds.
	AuthJWT = "jwt"
	// AuthClientCredentials is the OAuth 2.0 client credentials flow, run
	// as the connected app's integration user.
	AuthClientCredentials = "client_credentials"
)

// Grant types of the token endpoint.
const (
	grantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	grantClientCredentials = "client_credentials"
)

// assertionLifetime is how far in the future a JWT assertion expires.
// Salesforce accepts at most three minutes; a little less leaves room for
// clock skew between us and the login host.
const assertionLifetime = 170 * time.Second

// Credentials are what the token endpoint needs for either flow.
type Credentials struct {
	// Mode is AuthJWT or AuthClientCredentials.
	Mode string
	// LoginURL is where the token endpoint lives: the login host or the
	// org's My Domain.
	LoginURL string
	// Audience is the JWT aud: https://login.salesforce.com for production,
	// https://test.salesforce.com for sandboxes. Never the My Domain URL.
	Audience string
	// ClientID is the connected app's consumer key.
	ClientID string
	// ClientSecret is the consumer secret (client credentials only).
	ClientSecret string
	// Username is the integration user (JWT sub).
	Username string
	// Key signs JWT assertions.
	Key *rsa.PrivateKey
}

// validate reports what is missing for the chosen mode.
func (c Credentials) validate() error {
	var missing []string
	if c.LoginURL == "" {
		missing = append(missing, "login URL")
	}
	if c.ClientID == "" {
		missing = append(missing, "client id")
	}
	switch c.Mode {
	case AuthJWT:
		if c.Username == "" {
			missing = append(missing, "username")
		}
		if c.Audience == "" {
			missing = append(missing, "audience")
		}
		if c.Key == nil {
			missing = append(missing, "signing key")
		}
	case AuthClientCredentials:
		if c.ClientSecret == "" {
			missing = append(missing, "client secret")
		}
	default:
		return fmt.Errorf("unknown auth mode %q (want %s or %s)", c.Mode, AuthJWT, AuthClientCredentials)
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s auth needs: %s", c.Mode, strings.Join(missing, ", "))
	}
	return nil
}

// ParsePrivateKey decodes a PEM RSA private key in PKCS#1 ("RSA PRIVATE
// KEY") or PKCS#8 ("PRIVATE KEY") form.
func ParsePrivateKey(pemBytes []byte) (*rsa.PrivateKey, error) {
	for {
		var block *pem.Block
		block, pemBytes = pem.Decode(pemBytes)
		if block == nil {
			return nil, errors.New("parse private key: no PEM private key block found")
		}
		switch block.Type {
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse PKCS#1 private key: %w", err)
			}
			return k, nil
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("parse PKCS#8 private key: %w", err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("parse PKCS#8 private key: %T is not an RSA key (RS256 needs RSA)", k)
			}
			return rk, nil
		}
	}
}

// session is an access token and the instance it is valid for.
type session struct {
	token       string
	instanceURL string
}

// tokenSource obtains access tokens and keeps the current one. Salesforce
// issues no refresh token for either flow and no expiry, so the token is
// reused until a call is refused with INVALID_SESSION_ID, and then a new one
// is minted.
type tokenSource struct {
	creds Credentials
	http  *http.Client
	now   func() time.Time
	// refreshes counts every fetch by outcome and reason (MetricTokenRefreshes).
	refreshes *telemetry.OutcomeCounter

	mu      sync.Mutex
	current *session
}

// get returns the current session, fetching one if there is none. Callers
// that arrive while a fetch is in progress wait for it instead of fetching
// their own.
func (ts *tokenSource) get(ctx context.Context) (*session, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.current != nil {
		return ts.current, nil
	}
	s, reason, err := ts.fetch(ctx)
	ts.refreshes.Record(ctx, err, reason)
	if err != nil {
		return nil, err
	}
	ts.current = s
	return s, nil
}

// invalidate forgets s if it is still the current session, so the next get
// fetches a new one; a session already replaced by another caller's
// re-authentication is left alone.
func (ts *tokenSource) invalidate(s *session) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.current == s {
		ts.current = nil
	}
}

// tokenResponse is the token endpoint's success body; signature, issued_at
// and scope are optional and unused.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	InstanceURL string `json:"instance_url"`
	TokenType   string `json:"token_type"`
}

// fetch runs the configured flow against the token endpoint. A failure
// comes with its reason (one of tokenReasons) for the metric.
func (ts *tokenSource) fetch(ctx context.Context) (*session, string, error) {
	form := url.Values{}
	switch ts.creds.Mode {
	case AuthJWT:
		assertion, err := signAssertion(ts.creds, ts.now())
		if err != nil {
			return nil, ReasonOther, err
		}
		form.Set("grant_type", grantJWTBearer)
		form.Set("assertion", assertion)
	case AuthClientCredentials:
		form.Set("grant_type", grantClientCredentials)
		form.Set("client_id", ts.creds.ClientID)
		form.Set("client_secret", ts.creds.ClientSecret)
	default:
		return nil, ReasonOther, fmt.Errorf("salesforce token request: unknown auth mode %q", ts.creds.Mode)
	}
	endpoint := strings.TrimRight(ts.creds.LoginURL, "/") + "/services/oauth2/token"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, ReasonOther, fmt.Errorf("salesforce token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := ts.http.Do(req)
	if err != nil {
		return nil, ReasonUnavailable, fmt.Errorf("salesforce token request: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, ReasonUnavailable, fmt.Errorf("salesforce token request: read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		ae := &AuthError{Status: resp.StatusCode}
		var oe struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(body, &oe) == nil {
			ae.Code, ae.Description = oe.Error, oe.Description
		}
		return nil, ae.reason(), ae
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, ReasonBadResponse, fmt.Errorf("salesforce token request: decode response: %w", err)
	}
	if tr.AccessToken == "" || tr.InstanceURL == "" {
		return nil, ReasonBadResponse, errors.New("salesforce token request: response lacks access_token or instance_url")
	}
	if _, err := url.Parse(tr.InstanceURL); err != nil {
		return nil, ReasonBadResponse, fmt.Errorf("salesforce token request: instance_url: %w", err)
	}
	return &session{token: tr.AccessToken, instanceURL: strings.TrimRight(tr.InstanceURL, "/")}, "", nil
}

// signAssertion builds the RS256 JWT of the JWT bearer flow: iss = client
// id, sub = username, aud = the login host, exp a little under three
// minutes ahead.
func signAssertion(c Credentials, now time.Time) (string, error) {
	header, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT"})
	if err != nil {
		return "", fmt.Errorf("sign jwt assertion: %w", err)
	}
	claims, err := json.Marshal(struct {
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
	}{c.ClientID, c.Username, strings.TrimRight(c.Audience, "/"), now.Add(assertionLifetime).Unix()})
	if err != nil {
		return "", fmt.Errorf("sign jwt assertion: %w", err)
	}
	enc := base64.RawURLEncoding
	signingInput := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signingInput))
	sig, err := rsa.SignPKCS1v15(rand.Reader, c.Key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign jwt assertion: %w", err)
	}
	return signingInput + "." + enc.EncodeToString(sig), nil
}
