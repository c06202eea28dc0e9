package partnercenter

import (
	"crypto/rsa"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// jwksKey fetches the emulator's signing key from its JWKS endpoint.
func jwksKey(t *testing.T, e *env) *rsa.PublicKey {
	t.Helper()
	r := e.do(http.MethodGet, "/common/discovery/keys", nil)
	if r.status != http.StatusOK {
		t.Fatalf("jwks: %d", r.status)
	}
	k := r.json(t)["keys"].([]any)[0].(map[string]any)
	n, err := base64.RawURLEncoding.DecodeString(k["n"].(string))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := base64.RawURLEncoding.DecodeString(k["e"].(string))
	if err != nil {
		t.Fatal(err)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(ex).Int64())}
}

func TestPasswordGrantReturnsV1TokenWithSignedJWT(t *testing.T) {
	e := newEnv(t, nil)
	tok := e.passwordToken(AudienceReferrals)
	for _, f := range []string{"token_type", "scope", "expires_in", "ext_expires_in", "expires_on", "not_before", "resource", "access_token", "refresh_token", "id_token"} {
		if _, ok := tok[f].(string); !ok {
			t.Errorf("token JSON field %s missing or not a string: %v", f, tok[f])
		}
	}
	if tok["token_type"] != "Bearer" || tok["resource"] != AudienceReferrals || tok["expires_in"] != "3600" {
		t.Errorf("unexpected token JSON: %v", tok)
	}
	wantExp := e.clock.Now().Add(time.Hour).Unix()
	if tok["expires_on"] != strconv.FormatInt(wantExp, 10) {
		t.Errorf("expires_on = %v, want %d", tok["expires_on"], wantExp)
	}
	key := jwksKey(t, e)
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok["access_token"].(string), claims, func(*jwt.Token) (any, error) { return key, nil },
		jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(e.clock.Now), jwt.WithAudience(AudienceReferrals))
	if err != nil {
		t.Fatalf("access token does not verify with the JWKS key: %v", err)
	}
	cfg := e.srv.Config()
	if claims["upn"] != cfg.Username || claims["appid"] != cfg.ClientID || claims["tid"] != cfg.TenantID {
		t.Errorf("claims = %v", claims)
	}
}

// TestAccessTokenLifetimeIsConfigurable checks that Config.AccessTokenLifetime
// (-access-token-lifetime) drives expires_in, expires_on, the JWT exp claim
// and the moment the API starts answering 401.
func TestAccessTokenLifetimeIsConfigurable(t *testing.T) {
	for _, lifetime := range []time.Duration{5 * time.Minute, 90 * time.Minute} {
		t.Run(lifetime.String(), func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.AccessTokenLifetime = lifetime })
			tok := e.passwordToken(AudienceReferrals)
			exp := e.clock.Now().Add(lifetime).Unix()
			secs := strconv.FormatInt(int64(lifetime/time.Second), 10)
			if tok["expires_in"] != secs || tok["ext_expires_in"] != secs || tok["expires_on"] != strconv.FormatInt(exp, 10) {
				t.Errorf("token JSON expires_in %v ext_expires_in %v expires_on %v, want %s, %s, %d",
					tok["expires_in"], tok["ext_expires_in"], tok["expires_on"], secs, secs, exp)
			}
			claims := jwt.MapClaims{}
			key := jwksKey(t, e)
			if _, err := jwt.ParseWithClaims(tok["access_token"].(string), claims, func(*jwt.Token) (any, error) { return key, nil },
				jwt.WithValidMethods([]string{"RS256"}), jwt.WithTimeFunc(e.clock.Now)); err != nil {
				t.Fatalf("access token: %v", err)
			}
			if claims["exp"] != float64(exp) {
				t.Errorf("exp claim = %v, want %d", claims["exp"], exp)
			}

			e.token = tok["access_token"].(string)
			e.clock.Advance(lifetime - time.Second)
			if r := e.api(http.MethodGet, collection, nil); r.status != http.StatusOK {
				t.Fatalf("one second before expiry: %d %s", r.status, r.body)
			}
			e.clock.Advance(time.Second)
			if r := e.api(http.MethodGet, collection, nil); r.status != http.StatusUnauthorized {
				t.Fatalf("at expiry: %d, want 401: %s", r.status, r.body)
			}
		})
	}
}

func TestTokenErrorsUseEntraErrorJSON(t *testing.T) {
	e := newEnv(t, nil)
	cases := []struct {
		name   string
		edit   func(url.Values)
		status int
		code   string
		aadsts float64
	}{
		{"bad password", func(v url.Values) { v.Set("password", "nope") }, 400, "invalid_grant", 50126},
		{"unknown user", func(v url.Values) { v.Set("username", "x@y.example") }, 400, "invalid_grant", 50126},
		{"bad secret", func(v url.Values) { v.Set("client_secret", "nope") }, 401, "invalid_client", 7000215},
		{"no secret", func(v url.Values) { v.Del("client_secret") }, 401, "invalid_client", 7000218},
		{"unknown client", func(v url.Values) { v.Set("client_id", "00000000-0000-0000-0000-000000000000") }, 400, "unauthorized_client", 700016},
		{"no resource", func(v url.Values) { v.Del("resource") }, 400, "invalid_request", 50001},
		{"unknown resource", func(v url.Values) { v.Set("resource", "https://graph.microsoft.com") }, 400, "invalid_resource", 500011},
		{"unsupported grant", func(v url.Values) { v.Set("grant_type", "client_credentials") }, 400, "unsupported_grant_type", 70003},
		{"no grant", func(v url.Values) { v.Del("grant_type") }, 400, "invalid_request", 900144},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := e.passwordForm(AudienceReferrals)
			c.edit(v)
			r := e.form("/common/oauth2/token", v)
			if r.status != c.status {
				t.Fatalf("status = %d, want %d: %s", r.status, c.status, r.body)
			}
			m := r.json(t)
			if m["error"] != c.code {
				t.Errorf("error = %v, want %s", m["error"], c.code)
			}
			codes, _ := m["error_codes"].([]any)
			if len(codes) != 1 || codes[0] != c.aadsts {
				t.Errorf("error_codes = %v, want [%v]", m["error_codes"], c.aadsts)
			}
			desc, _ := m["error_description"].(string)
			if !strings.HasPrefix(desc, "AADSTS"+strconv.Itoa(int(c.aadsts))+":") {
				t.Errorf("error_description = %q", desc)
			}
			for _, f := range []string{"timestamp", "trace_id", "correlation_id"} {
				if s, _ := m[f].(string); s == "" {
					t.Errorf("%s missing", f)
				}
			}
		})
	}
}

func TestRefreshTokenRotatesAndOldOneIsRejected(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.srv.Config()
	first := e.passwordToken(AudienceReferrals)
	refresh := func(rt, resource string) response {
		return e.form("/common/oauth2/token", url.Values{
			"grant_type": {"refresh_token"}, "refresh_token": {rt}, "resource": {resource},
			"client_id": {cfg.ClientID}, "client_secret": {cfg.ClientSecret},
		})
	}
	r := refresh(first["refresh_token"].(string), AudienceWebhooks)
	if r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	second := r.json(t)
	if second["refresh_token"] == first["refresh_token"] || second["access_token"] == first["access_token"] {
		t.Fatal("refresh did not issue new tokens")
	}
	if second["resource"] != AudienceWebhooks {
		t.Errorf("resource = %v", second["resource"])
	}
	// The old refresh token was consumed.
	r = refresh(first["refresh_token"].(string), AudienceReferrals)
	if r.status != http.StatusBadRequest || r.json(t)["error"] != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %s", r.status, r.body)
	}
	// The new one works once.
	if r = refresh(second["refresh_token"].(string), AudienceReferrals); r.status != http.StatusOK {
		t.Fatalf("rotated refresh token: %d %s", r.status, r.body)
	}
	// A refresh token past its lifetime is refused.
	third := r.json(t)
	e.clock.Advance(cfg.RefreshTokenLifetime + time.Second)
	r = refresh(third["refresh_token"].(string), AudienceReferrals)
	if r.status != http.StatusBadRequest || r.json(t)["error"] != "invalid_grant" {
		t.Fatalf("expired refresh token: %d %s", r.status, r.body)
	}
}

func TestAPIRequiresValidUnexpiredBearerForItsAudience(t *testing.T) {
	e := newEnv(t, nil)
	list := "/v1.0/engagements/referrals"
	if r := e.api(http.MethodGet, list, nil); r.status != http.StatusOK {
		t.Fatalf("valid token: %d %s", r.status, r.body)
	}
	check401 := func(name string, r response) {
		t.Helper()
		if r.status != http.StatusUnauthorized {
			t.Fatalf("%s: status %d, want 401: %s", name, r.status, r.body)
		}
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: no WWW-Authenticate header", name)
		}
	}
	r := e.do(http.MethodGet, list, nil)
	check401("no header", r)
	if code, _ := apiErr(t, r); code != "unauthenticated" {
		t.Errorf("code = %s", code)
	}
	check401("garbage", e.do(http.MethodGet, list, nil, "Authorization", "Bearer abc.def.ghi"))
	wh := e.passwordToken(AudienceWebhooks)["access_token"].(string)
	check401("webhooks audience on referrals", e.do(http.MethodGet, list, nil, "Authorization", "Bearer "+wh))
	check401("referrals audience on webhooks", e.api(http.MethodGet, "/webhooks/v1/registration/events", nil))
	if r := e.do(http.MethodGet, "/webhooks/v1/registration/events", nil, "Authorization", "Bearer "+wh); r.status != http.StatusOK {
		t.Fatalf("webhooks token on webhooks: %d %s", r.status, r.body)
	}

	// Expiry by the clock.
	e.clock.Advance(time.Hour)
	check401("expired", e.api(http.MethodGet, list, nil))

	// Expiry and revocation through the control API.
	e.token = e.passwordToken(AudienceReferrals)["access_token"].(string)
	if r := e.do(http.MethodPost, "/_emulator/tokens/expire", nil); r.status != http.StatusOK || r.json(t)["expired"].(float64) < 1 {
		t.Fatalf("tokens/expire: %d %s", r.status, r.body)
	}
	check401("expired by control", e.api(http.MethodGet, list, nil))
	tok := e.passwordToken(AudienceReferrals)
	e.token = tok["access_token"].(string)
	if r := e.do(http.MethodPost, "/_emulator/tokens/revoke", nil); r.status != http.StatusNoContent {
		t.Fatalf("tokens/revoke: %d", r.status)
	}
	check401("revoked", e.api(http.MethodGet, list, nil))
	cfg := e.srv.Config()
	r = e.form("/common/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)},
		"resource": {AudienceReferrals}, "client_id": {cfg.ClientID}, "client_secret": {cfg.ClientSecret}})
	if r.status != http.StatusBadRequest {
		t.Fatalf("revoked refresh token: %d %s", r.status, r.body)
	}
}

func TestDeviceCodeFlow(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.srv.Config()
	start := func() map[string]any {
		r := e.form("/organizations/oauth2/devicecode", url.Values{"client_id": {cfg.ClientID}, "resource": {AudienceReferrals}})
		if r.status != http.StatusOK {
			t.Fatalf("devicecode: %d %s", r.status, r.body)
		}
		return r.json(t)
	}
	poll := func(grant, param, code string) response {
		return e.form("/organizations/oauth2/token", url.Values{"grant_type": {grant}, param: {code}, "client_id": {cfg.ClientID}, "resource": {AudienceReferrals}})
	}
	dc := start()
	for _, f := range []string{"user_code", "device_code", "verification_url", "expires_in", "interval", "message"} {
		if s, _ := dc[f].(string); s == "" {
			t.Errorf("devicecode field %s missing", f)
		}
	}
	r := poll("device_code", "code", dc["device_code"].(string))
	if r.status != http.StatusBadRequest || r.json(t)["error"] != "authorization_pending" {
		t.Fatalf("before approval: %d %s", r.status, r.body)
	}
	if r := e.do(http.MethodPost, "/_emulator/devicecode/approve", map[string]any{"user_code": "NOPE"}); r.status != http.StatusNotFound {
		t.Fatalf("approve unknown code: %d", r.status)
	}
	if r := e.do(http.MethodPost, "/_emulator/devicecode/approve", map[string]any{"user_code": dc["user_code"]}); r.status != http.StatusOK {
		t.Fatalf("approve: %d %s", r.status, r.body)
	}
	r = poll("urn:ietf:params:oauth:grant-type:device_code", "device_code", dc["device_code"].(string))
	if r.status != http.StatusOK {
		t.Fatalf("after approval: %d %s", r.status, r.body)
	}
	e.token = r.json(t)["access_token"].(string)
	if r := e.api(http.MethodGet, "/v1.0/engagements/referrals", nil); r.status != http.StatusOK {
		t.Fatalf("device-code token on API: %d", r.status)
	}
	// A device code yields tokens once.
	if r := poll("device_code", "code", dc["device_code"].(string)); r.status != http.StatusBadRequest || r.json(t)["error"] != "bad_verification_code" {
		t.Fatalf("second redemption: %d %s", r.status, r.body)
	}

	declined := start()
	e.do(http.MethodPost, "/_emulator/devicecode/decline", map[string]any{"user_code": declined["user_code"]})
	if r := poll("device_code", "code", declined["device_code"].(string)); r.json(t)["error"] != "authorization_declined" {
		t.Fatalf("declined: %d %s", r.status, r.body)
	}

	expired := start()
	e.clock.Advance(cfg.DeviceCodeLifetime)
	if r := poll("device_code", "code", expired["device_code"].(string)); r.json(t)["error"] != "expired_token" {
		t.Fatalf("expired: %d %s", r.status, r.body)
	}
}
