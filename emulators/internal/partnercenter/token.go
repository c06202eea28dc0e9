package partnercenter

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cosell/cosell/emulators/internal/emucore"
)

// Audiences the emulator issues tokens for. The Referrals API accepts only
// the first; the webhook registration API (a different Partner Center host)
// accepts only the second, as in production.
const (
	AudienceReferrals = "https://api.partner.microsoft.com"
	AudienceWebhooks  = "https://api.partnercenter.microsoft.com"
)

// deviceCodeVerificationURL is the page Entra tells users to open. Nobody can
// open it against the emulator; approval goes through the control API.
const deviceCodeVerificationURL = "https://microsoft.com/devicelogin"

// accessGrant is what the emulator remembers about an access token it
// issued: looking the raw token up is cheaper than verifying an RSA
// signature on every API call and just as strict, since only tokens minted
// here can be valid.
type accessGrant struct {
	audience string
	issued   time.Time
	expires  time.Time
}

// refreshGrant is one live refresh token. Redeeming it deletes it
// (rotation), so a replayed refresh token is rejected.
type refreshGrant struct {
	clientID string
	scope    string
	issued   time.Time
	expires  time.Time
}

// deviceGrant is one pending device-code sign-in.
type deviceGrant struct {
	userCode string
	clientID string
	resource string
	expires  time.Time
	approved bool
	declined bool
}

// tokens is the emulator's Entra ID: it mints RS256 JWTs and tracks
// refresh tokens and device codes.
type tokens struct {
	cfg *Config
	key *rsa.PrivateKey
	kid string

	mu            sync.RWMutex
	access        map[string]accessGrant
	refresh       map[string]refreshGrant
	device        map[string]*deviceGrant // by device_code
	userCodes     map[string]string       // user_code -> device_code
	revokedBefore time.Time
	issuedCount   int
}

// generateSigningKey makes the RS256 key access tokens are signed with.
func generateSigningKey() (*rsa.PrivateKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate token signing key: %w", err)
	}
	return key, nil
}

func newTokens(cfg *Config, key *rsa.PrivateKey) *tokens {
	sum := sha256.Sum256(key.N.Bytes())
	return &tokens{
		cfg:       cfg,
		key:       key,
		kid:       base64.RawURLEncoding.EncodeToString(sum[:15]),
		access:    map[string]accessGrant{},
		refresh:   map[string]refreshGrant{},
		device:    map[string]*deviceGrant{},
		userCodes: map[string]string{},
	}
}

// oauthError is an Entra ID token endpoint failure.
type oauthError struct {
	status int
	code   string // OAuth error, e.g. invalid_grant
	aadsts int    // Entra's numeric code
	desc   string
}

func (e *oauthError) Error() string { return fmt.Sprintf("%s: AADSTS%d: %s", e.code, e.aadsts, e.desc) }

// writeOAuthError renders the standard Entra ID error JSON.
func writeOAuthError(w http.ResponseWriter, r *http.Request, now time.Time, e *oauthError) {
	trace := newID()
	corr := r.Header.Get("client-request-id")
	if corr == "" {
		corr = newID()
	}
	ts := now.UTC().Format("2006-01-02 15:04:05Z")
	emucore.WriteJSON(w, e.status, map[string]any{
		"error": e.code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
			e.aadsts, e.desc, trace, corr, ts),
		"error_codes":    []int{e.aadsts},
		"timestamp":      ts,
		"trace_id":       trace,
		"correlation_id": corr,
		"error_uri":      fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", e.aadsts),
	})
}

func invalidRequest(aadsts int, format string, args ...any) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_request", aadsts: aadsts, desc: fmt.Sprintf(format, args...)}
}

func invalidGrant(aadsts int, desc string) *oauthError {
	return &oauthError{status: http.StatusBadRequest, code: "invalid_grant", aadsts: aadsts, desc: desc}
}

// handleToken serves POST /{tenant}/oauth2/token (Entra ID v1).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	resp, oerr := s.token(r, now)
	if oerr != nil {
		s.log.Info("token request refused", "error", oerr.code, "aadsts", oerr.aadsts)
		writeOAuthError(w, r, now, oerr)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	emucore.WriteJSON(w, http.StatusOK, resp)
}

func (s *Server) token(r *http.Request, now time.Time) (map[string]any, *oauthError) {
	if err := parseForm(r); err != nil {
		return nil, err
	}
	f := r.PostForm
	grant := f.Get("grant_type")
	if grant == "" {
		return nil, invalidRequest(900144, "The request body must contain the following parameter: 'grant_type'.")
	}
	clientID := f.Get("client_id")
	if clientID == "" {
		return nil, invalidRequest(900144, "The request body must contain the following parameter: 'client_id'.")
	}
	if clientID != s.cfg.ClientID {
		return nil, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", aadsts: 700016,
			desc: fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clientID, s.cfg.TenantID)}
	}
	secret, hasSecret := f["client_secret"]
	if hasSecret && (len(secret) != 1 || secret[0] != s.cfg.ClientSecret) {
		return nil, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 7000215,
			desc: "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."}
	}
	scope := f.Get("scope")
	switch grant {
	case "password":
		if !hasSecret {
			return nil, &oauthError{status: http.StatusUnauthorized, code: "invalid_client", aadsts: 7000218,
				desc: "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
		}
		resource, oerr := s.resource(f.Get("resource"))
		if oerr != nil {
			return nil, oerr
		}
		user, pass := f.Get("username"), f.Get("password")
		if user == "" || pass == "" {
			return nil, invalidRequest(900144, "The request body must contain the following parameter: 'username' and 'password'.")
		}
		if !strings.EqualFold(user, s.cfg.Username) || pass != s.cfg.Password {
			return nil, invalidGrant(50126, "Error validating credentials due to invalid username or password.")
		}
		return s.tokens.issue(clientID, resource, scope, now)
	case "refresh_token":
		rt := f.Get("refresh_token")
		if rt == "" {
			return nil, invalidRequest(900144, "The request body must contain the following parameter: 'refresh_token'.")
		}
		// The refresh token is multi-resource: it may be redeemed for any
		// resource the app may call, defaulting to the original scope's.
		resource, oerr := s.resource(f.Get("resource"))
		if oerr != nil {
			return nil, oerr
		}
		g, oerr := s.tokens.redeemRefresh(rt, clientID, now)
		if oerr != nil {
			return nil, oerr
		}
		if scope == "" {
			scope = g.scope
		}
		return s.tokens.issue(clientID, resource, scope, now)
	case "urn:ietf:params:oauth:grant-type:device_code", "device_code":
		code := f.Get("code") // v1 name
		if code == "" {
			code = f.Get("device_code") // v2 name, accepted too
		}
		if code == "" {
			return nil, invalidRequest(900144, "The request body must contain the following parameter: 'code'.")
		}
		resource, oerr := s.tokens.redeemDevice(code, clientID, now)
		if oerr != nil {
			return nil, oerr
		}
		if v := f.Get("resource"); v != "" {
			if resource, oerr = s.resource(v); oerr != nil {
				return nil, oerr
			}
		}
		return s.tokens.issue(clientID, resource, scope, now)
	default:
		return nil, &oauthError{status: http.StatusBadRequest, code: "unsupported_grant_type", aadsts: 70003,
			desc: fmt.Sprintf("The app requested an unsupported grant type '%s'.", grant)}
	}
}

// parseForm reads an application/x-www-form-urlencoded body of at most 64 KiB.
func parseForm(r *http.Request) *oauthError {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	if !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return invalidRequest(900144, "The request body must contain the following parameter: 'grant_type'.")
	}
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return invalidRequest(90014, "The request body is not a valid form: %v", err)
	}
	return nil
}

// resource checks the v1 `resource` parameter against the two Partner
// Center audiences.
func (s *Server) resource(v string) (string, *oauthError) {
	if v == "" {
		return "", invalidRequest(50001, "The request body must contain the following parameter: 'resource'.")
	}
	switch strings.TrimSuffix(v, "/") {
	case AudienceReferrals:
		return AudienceReferrals, nil
	case AudienceWebhooks:
		return AudienceWebhooks, nil
	}
	return "", &oauthError{status: http.StatusBadRequest, code: "invalid_resource", aadsts: 500011,
		desc: fmt.Sprintf("The resource principal named %s was not found in the tenant named %s.", v, s.cfg.TenantID)}
}

// issue mints an access token for resource plus a fresh refresh token and
// returns the v1 token JSON (numbers as strings, as Entra v1 sends them).
func (t *tokens) issue(clientID, resource, scope string, now time.Time) (map[string]any, *oauthError) {
	cfg := t.cfg
	exp := now.Add(cfg.AccessTokenLifetime)
	claims := jwt.MapClaims{
		"aud":         resource,
		"iss":         "https://sts.windows.net/" + cfg.TenantID + "/",
		"iat":         now.Unix(),
		"nbf":         now.Unix(),
		"exp":         exp.Unix(),
		"appid":       clientID,
		"appidacr":    "1",
		"tid":         cfg.TenantID,
		"oid":         cfg.UserObjectID,
		"upn":         cfg.Username,
		"unique_name": cfg.Username,
		"scp":         "user_impersonation",
		"ver":         "1.0",
		"uti":         randomToken(16),
	}
	at, err := t.sign(claims)
	if err != nil {
		return nil, &oauthError{status: http.StatusInternalServerError, code: "server_error", aadsts: 90033, desc: "A transient error has occurred. Please try again."}
	}
	rt := "0.A" + randomToken(48)
	t.mu.Lock()
	t.access[at] = accessGrant{audience: resource, issued: now, expires: exp}
	t.refresh[rt] = refreshGrant{clientID: clientID, scope: scope, issued: now, expires: now.Add(cfg.RefreshTokenLifetime)}
	t.issuedCount++
	if t.issuedCount%256 == 0 {
		t.pruneLocked(now)
	}
	t.mu.Unlock()

	secs := strconv.FormatInt(int64(cfg.AccessTokenLifetime/time.Second), 10)
	out := map[string]any{
		"token_type":     "Bearer",
		"scope":          "user_impersonation",
		"expires_in":     secs,
		"ext_expires_in": secs,
		"expires_on":     strconv.FormatInt(exp.Unix(), 10),
		"not_before":     strconv.FormatInt(now.Unix(), 10),
		"resource":       resource,
		"access_token":   at,
		"refresh_token":  rt,
	}
	if hasScope(scope, "openid") {
		id, err := t.sign(jwt.MapClaims{
			"aud": clientID, "iss": "https://sts.windows.net/" + cfg.TenantID + "/",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(),
			"tid": cfg.TenantID, "oid": cfg.UserObjectID, "upn": cfg.Username, "unique_name": cfg.Username,
			"ver": "1.0",
		})
		if err == nil {
			out["id_token"] = id
		}
	}
	return out, nil
}

func (t *tokens) sign(claims jwt.MapClaims) (string, error) {
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = t.kid
	s, err := tok.SignedString(t.key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// pruneLocked drops expired grants so a long-running emulator does not grow
// without bound. The caller holds t.mu.
func (t *tokens) pruneLocked(now time.Time) {
	for k, g := range t.access {
		if !now.Before(g.expires) {
			delete(t.access, k)
		}
	}
	for k, g := range t.refresh {
		if !now.Before(g.expires) {
			delete(t.refresh, k)
		}
	}
	for k, g := range t.device {
		if !now.Before(g.expires) {
			delete(t.device, k)
			delete(t.userCodes, g.userCode)
		}
	}
}

func (t *tokens) redeemRefresh(rt, clientID string, now time.Time) (refreshGrant, *oauthError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.refresh[rt]
	if !ok || g.issued.Before(t.revokedBefore) {
		return refreshGrant{}, invalidGrant(70000, "Provided grant is invalid or malformed.")
	}
	delete(t.refresh, rt) // rotation: a refresh token is good for one use
	if !now.Before(g.expires) {
		return refreshGrant{}, invalidGrant(700082, "The refresh token has expired due to inactivity.")
	}
	if g.clientID != clientID {
		return refreshGrant{}, invalidGrant(70000, "Provided grant is invalid or malformed.")
	}
	return g, nil
}

// handleDeviceCode serves POST /{tenant}/oauth2/devicecode (Entra ID v1).
func (s *Server) handleDeviceCode(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	if oerr := parseForm(r); oerr != nil {
		writeOAuthError(w, r, now, oerr)
		return
	}
	clientID := r.PostForm.Get("client_id")
	if clientID != s.cfg.ClientID {
		writeOAuthError(w, r, now, &oauthError{status: http.StatusBadRequest, code: "unauthorized_client", aadsts: 700016,
			desc: fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clientID, s.cfg.TenantID)})
		return
	}
	resource, oerr := s.resource(r.PostForm.Get("resource"))
	if oerr != nil {
		writeOAuthError(w, r, now, oerr)
		return
	}
	g := &deviceGrant{userCode: userCode(), clientID: clientID, resource: resource, expires: now.Add(s.cfg.DeviceCodeLifetime)}
	dc := "DAQABAAEAAA" + randomToken(48)
	s.tokens.mu.Lock()
	s.tokens.device[dc] = g
	s.tokens.userCodes[g.userCode] = dc
	s.tokens.mu.Unlock()
	interval := int64(s.cfg.DeviceCodeInterval / time.Second)
	if interval < 1 {
		interval = 1
	}
	emucore.WriteJSON(w, http.StatusOK, map[string]any{
		"user_code":        g.userCode,
		"device_code":      dc,
		"verification_url": deviceCodeVerificationURL,
		"expires_in":       strconv.FormatInt(int64(s.cfg.DeviceCodeLifetime/time.Second), 10),
		"interval":         strconv.FormatInt(interval, 10),
		"message": fmt.Sprintf("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.",
			deviceCodeVerificationURL, g.userCode),
	})
}

func (t *tokens) redeemDevice(code, clientID string, now time.Time) (string, *oauthError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, ok := t.device[code]
	if !ok || g.clientID != clientID {
		return "", &oauthError{status: http.StatusBadRequest, code: "bad_verification_code", aadsts: 70000,
			desc: "The provided value for the input parameter 'device_code' is not valid."}
	}
	switch {
	case !now.Before(g.expires):
		delete(t.device, code)
		delete(t.userCodes, g.userCode)
		return "", &oauthError{status: http.StatusBadRequest, code: "expired_token", aadsts: 70020,
			desc: "The provided value for the input parameter 'device_code' is not valid. This device code has expired."}
	case g.declined:
		delete(t.device, code)
		delete(t.userCodes, g.userCode)
		return "", &oauthError{status: http.StatusBadRequest, code: "authorization_declined", aadsts: 70000,
			desc: "The user declined the authorization request."}
	case !g.approved:
		return "", &oauthError{status: http.StatusBadRequest, code: "authorization_pending", aadsts: 70016,
			desc: "OAuth 2.0 device flow error. Authorization is pending. Continue polling."}
	}
	delete(t.device, code) // a device code yields tokens once
	delete(t.userCodes, g.userCode)
	return g.resource, nil
}

// decideDevice approves or declines the pending sign-in with userCode, as
// the user would on the verification page. It reports whether the code
// exists and is still pending.
func (t *tokens) decideDevice(userCode string, approve bool, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	dc, ok := t.userCodes[strings.ToUpper(strings.TrimSpace(userCode))]
	if !ok {
		return false
	}
	g := t.device[dc]
	if g == nil || !now.Before(g.expires) || g.approved || g.declined {
		return false
	}
	g.approved, g.declined = approve, !approve
	return true
}

// check validates a bearer token for audience at now. The message explains a
// refusal for the 401 body.
func (t *tokens) check(raw, audience string, now time.Time) (ok bool, msg string) {
	t.mu.RLock()
	g, found := t.access[raw]
	revoked := found && g.issued.Before(t.revokedBefore)
	t.mu.RUnlock()
	switch {
	case !found:
		return false, "The access token is invalid."
	case revoked:
		return false, "The access token has been revoked."
	case !now.Before(g.expires):
		return false, "The access token has expired."
	case g.audience != audience:
		return false, fmt.Sprintf("The access token audience is %s; this API requires %s.", g.audience, audience)
	}
	return true, ""
}

// revokeAll invalidates every access and refresh token issued up to now, so
// clients must sign in again (simulates a password reset or an admin
// revocation).
func (t *tokens) revokeAll(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// Strictly after every token issued so far, including those minted in
	// this very clock tick.
	t.revokedBefore = now.Add(time.Nanosecond)
	t.access = map[string]accessGrant{}
	t.refresh = map[string]refreshGrant{}
}

// expireAccess makes every issued access token expired while keeping refresh
// tokens valid, the situation a client meets after an idle hour.
func (t *tokens) expireAccess(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for k, g := range t.access {
		if now.Before(g.expires) {
			g.expires = now
			t.access[k] = g
			n++
		}
	}
	return n
}

// jwks returns the signing key as a JSON Web Key Set so clients can verify
// the tokens if they wish.
func (t *tokens) jwks() map[string]any {
	pub := t.key.PublicKey
	return map[string]any{"keys": []map[string]any{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": t.kid,
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}}}
}

func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	emucore.WriteJSON(w, http.StatusOK, s.tokens.jwks())
}

func hasScope(scope, want string) bool {
	for _, s := range strings.Fields(scope) {
		if strings.EqualFold(s, want) {
			return true
		}
	}
	return false
}

// randomToken returns n random bytes, URL-safe base64 encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms.
	return base64.RawURLEncoding.EncodeToString(b)
}

// userCode returns a nine-letter code like Entra's (e.g. F2CLDPXBK).
func userCode() string {
	const letters = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 9)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms.
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// bearer extracts the token of an "Authorization: Bearer …" header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
