package salesforce

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func TestClientCredentialsTokenResponse(t *testing.T) {
	h := newHarness(t)
	resp, body := h.form("/services/oauth2/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
	})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var raw map[string]any
	mustUnmarshal(t, body, &raw)
	for _, k := range []string{"access_token", "signature", "scope", "instance_url", "id", "token_type", "issued_at"} {
		if _, ok := raw[k].(string); !ok {
			t.Errorf("field %s missing or not a string in %s", k, body)
		}
	}
	var tr tokenResponse
	mustUnmarshal(t, body, &tr)
	if tr.TokenType != "Bearer" || tr.InstanceURL != h.ts.URL || tr.Scope != "api" {
		t.Errorf("unexpected token response %+v", tr)
	}
	if !strings.HasPrefix(tr.AccessToken, h.srv.OrgID()[:15]+"!") {
		t.Errorf("access token %q should start with the 15-char org id and '!'", tr.AccessToken)
	}
	if want := h.ts.URL + "/id/" + h.srv.OrgID() + "/" + h.srv.IntegrationUserID(); tr.ID != want {
		t.Errorf("id = %q, want %q", tr.ID, want)
	}
	if ms, err := strconv.ParseInt(tr.IssuedAt, 10, 64); err != nil || ms != h.clock.Now().UnixMilli() {
		t.Errorf("issued_at = %q, want epoch ms %d", tr.IssuedAt, h.clock.Now().UnixMilli())
	}
	mac := hmac.New(sha256.New, []byte(DefaultClientSecret))
	mac.Write([]byte(tr.ID + tr.IssuedAt))
	if want := base64.StdEncoding.EncodeToString(mac.Sum(nil)); tr.Signature != want {
		t.Errorf("signature = %q, want HMAC-SHA256(id+issued_at) %q", tr.Signature, want)
	}
	// The token works against REST and the identity URL.
	h.doToken(tr.AccessToken, http.MethodGet, v+"/limits", nil)
	r2, b2 := h.doToken(tr.AccessToken, http.MethodGet, strings.TrimPrefix(tr.ID, h.ts.URL), nil)
	if r2.StatusCode != http.StatusOK || !strings.Contains(string(b2), DefaultUsername) {
		t.Errorf("identity URL: %d %s", r2.StatusCode, b2)
	}
}

func TestClientCredentialsBasicAuthAndErrors(t *testing.T) {
	h := newHarness(t)
	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/services/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(DefaultClientID, DefaultClientSecret)
	if resp, body := h.send(req); resp.StatusCode != http.StatusOK {
		t.Fatalf("basic auth: %d %s", resp.StatusCode, body)
	}
	cases := []struct {
		name   string
		form   url.Values
		status int
		code   string
	}{
		{"unknown client", url.Values{"grant_type": {"client_credentials"}, "client_id": {"nope"}, "client_secret": {DefaultClientSecret}}, 400, "invalid_client_id"},
		{"bad secret", url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {"wrong"}}, 401, "invalid_client"},
		{"password grant", url.Values{"grant_type": {"password"}, "username": {"u"}, "password": {"p"}}, 400, "unsupported_grant_type"},
		{"no grant", url.Values{}, 400, "unsupported_grant_type"},
		{"jwt without assertion", url.Values{"grant_type": {grantJWTBearer}}, 400, "invalid_request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.form("/services/oauth2/token", c.form)
			var e oauthError
			mustUnmarshal(t, body, &e)
			if resp.StatusCode != c.status || e.Error != c.code || e.Description == "" {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, body, c.status, c.code)
			}
		})
	}
}

func TestJWTBearer(t *testing.T) {
	h := newHarness(t)
	now := h.clock.Now()
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"iss": DefaultClientID, "sub": DefaultUsername, "aud": "https://login.salesforce.com", "exp": now.Add(3 * time.Minute).Unix()}
	}
	other, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		token  func() string
		status int
		code   string
	}{
		{"valid login audience", func() string { return assertion(t, h.keys.key, jwt.SigningMethodRS256, good()) }, 200, ""},
		{"valid sandbox audience, prn, five minutes", func() string {
			c := good()
			delete(c, "sub")
			c["prn"], c["aud"], c["exp"] = DefaultUsername, "https://test.salesforce.com", now.Add(5*time.Minute).Unix()
			return assertion(t, h.keys.key, jwt.SigningMethodRS256, c)
		}, 200, ""},
		{"audience list", func() string {
			c := good()
			c["aud"] = []string{"https://example.com", audTest}
			return assertion(t, h.keys.key, jwt.SigningMethodRS256, c)
		}, 200, ""},
		{"audience with trailing slash", func() string {
			c := good()
			c["aud"] = audLogin + "/"
			return assertion(t, h.keys.key, jwt.SigningMethodRS256, c)
		}, 400, "invalid_grant"},
		{"wrong issuer", func() string {
			c := good()
			c["iss"] = "someone-else"
			return assertion(t, h.keys.key, jwt.SigningMethodRS256, c)
		}, 400, "invalid_client_id"},
		{"my domain audience", func() string {
			c := good()
			c["aud"] = h.ts.URL
			return assertion(t, h.keys.key, jwt.SigningMethodRS256, c)
		}, 400, "invalid_grant"},
		{"expired", func() string {
			c := good()
			c["exp"] = now.Add(-time.Second).Unix()
			return assertion(t, h.keys.key, jwt.SigningMethodRS256, c)
		}, 400, "invalid_grant"},
		{"exp too far ahead", func() string {
			c := good()
			c["exp"] = now.Add(time.Hour).Unix()
			return assertion(t, h.keys.key, jwt.SigningMethodRS256, c)
		}, 400, "invalid_grant"},
		{"no exp", func() string {
			c := good()
			delete(c, "exp")
			return assertion(t, h.keys.key, jwt.SigningMethodRS256, c)
		}, 400, "invalid_grant"},
		{"other user", func() string {
			c := good()
			c["sub"] = DefaultSellerName
			return assertion(t, h.keys.key, jwt.SigningMethodRS256, c)
		}, 400, "invalid_grant"},
		{"signed with another key", func() string { return assertion(t, other, jwt.SigningMethodRS256, good()) }, 400, "invalid_grant"},
		{"HS256", func() string { return assertion(t, []byte(DefaultClientSecret), jwt.SigningMethodHS256, good()) }, 400, "invalid_grant"},
		{"garbage", func() string { return "not.a.jwt" }, 400, "invalid_grant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := h.form("/services/oauth2/token", url.Values{"grant_type": {grantJWTBearer}, "assertion": {c.token()}})
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if c.status == 200 {
				var tr tokenResponse
				mustUnmarshal(t, body, &tr)
				if tr.InstanceURL != h.ts.URL || tr.AccessToken == "" || tr.Signature == "" {
					t.Fatalf("token response %s", body)
				}
				if r, b := h.doToken(tr.AccessToken, http.MethodGet, v+"/limits", nil); r.StatusCode != 200 {
					t.Fatalf("token unusable: %d %s", r.StatusCode, b)
				}
				return
			}
			var e oauthError
			mustUnmarshal(t, body, &e)
			if e.Error != c.code {
				t.Fatalf("error %q, want %q (%s)", e.Error, c.code, body)
			}
		})
	}
}

func TestJWTBearerDisabledWithoutCertificate(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.JWTCerts = nil })
	claims := jwt.MapClaims{"iss": DefaultClientID, "sub": DefaultUsername, "aud": audLogin, "exp": h.clock.Now().Add(time.Minute).Unix()}
	resp, body := h.form("/services/oauth2/token", url.Values{"grant_type": {grantJWTBearer}, "assertion": {assertion(t, h.keys.key, jwt.SigningMethodRS256, claims)}})
	if resp.StatusCode != 400 || !strings.Contains(string(body), "invalid_grant") {
		t.Fatalf("got %d %s", resp.StatusCode, body)
	}
}

func TestSessionInvalidAndExpiry(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TokenLifetime = time.Hour })
	wantInvalid := func(token string) {
		t.Helper()
		resp, body := h.doToken(token, http.MethodGet, v+"/limits", nil)
		if resp.StatusCode != http.StatusUnauthorized || strings.TrimSpace(string(body)) != `[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]` {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
	}
	wantInvalid("")
	wantInvalid("00D000000000001!bogus")

	// The timeout is one of inactivity: use within the hour keeps it alive.
	h.clock.Advance(50 * time.Minute)
	h.expect(http.MethodGet, v+"/limits", nil, 200, nil)
	h.clock.Advance(50 * time.Minute)
	h.expect(http.MethodGet, v+"/limits", nil, 200, nil)
	h.clock.Advance(time.Hour + time.Second)
	wantInvalid(h.token)

	// A new token works; the OAuth revoke endpoint ends it.
	tok := h.clientCredentials()
	if r, _ := h.doToken(tok, http.MethodGet, v+"/limits", nil); r.StatusCode != 200 {
		t.Fatalf("fresh token rejected: %d", r.StatusCode)
	}
	if r, b := h.form("/services/oauth2/revoke", url.Values{"token": {tok}}); r.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", r.StatusCode, b)
	}
	wantInvalid(tok)
	if r, _ := h.form("/services/oauth2/revoke", url.Values{"token": {tok}}); r.StatusCode != 400 {
		t.Fatalf("second revoke: %d, want 400", r.StatusCode)
	}
}

func TestUserInfo(t *testing.T) {
	h := newHarness(t)
	var info map[string]any
	h.expect(http.MethodGet, "/services/oauth2/userinfo", nil, 200, &info)
	if info["user_id"] != h.srv.IntegrationUserID() || info["organization_id"] != h.srv.OrgID() || info["preferred_username"] != DefaultUsername {
		t.Fatalf("userinfo %v", info)
	}
	resp, _ := h.doToken("bad", http.MethodGet, "/services/oauth2/userinfo", nil)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("bad token: %d", resp.StatusCode)
	}
}

func TestDeadSessionsAreSwept(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TokenLifetime = time.Minute })
	h.clock.Advance(2 * time.Minute) // the harness's first token is now dead
	for i := 0; i < sweepEvery; i++ {
		h.clientCredentials()
	}
	// sweepEvery+1 tokens were issued; the sweep dropped the dead one.
	if n := h.srv.tokens.count(); n != sweepEvery {
		t.Fatalf("%d sessions kept after a sweep, want %d", n, sweepEvery)
	}
	if r, _ := h.do(http.MethodGet, v+"/limits", nil); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("swept session: %d", r.StatusCode)
	}
}
